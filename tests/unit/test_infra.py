"""Shared infrastructure that needs no server: settings, SSRF guard, webhook signing, log scrubbing."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path

import msgspec
import pytest
from standardwebhooks.webhooks import Webhook

from infra.logs import JsonFormatter
from infra.netguard import BlockedDestination, check_literal, resolve_public
from infra.settings import Settings, SettingsError, load_settings
from infra.webhooks import InvalidSignature, new_secret, sign, signature_headers, verify
from pipeline.dsl import Limits

ROOT = Path(__file__).resolve().parents[2]


def test_settings_parse_types_and_reject_typos() -> None:
    s = load_settings({"PIXELFLOW_WORKER_CONCURRENCY": "4", "PIXELFLOW_WEBHOOK_ALLOW_PRIVATE": "true", "HOME": "/x"})
    assert s.worker_concurrency == 4 and s.webhook_allow_private is True
    with pytest.raises(SettingsError, match="unknown setting PIXELFLOW_WORKER_CONCURENCY"):
        load_settings({"PIXELFLOW_WORKER_CONCURENCY": "4"})
    with pytest.raises(SettingsError, match="PIXELFLOW_WORKER_CONCURRENCY"):
        load_settings({"PIXELFLOW_WORKER_CONCURRENCY": "0"})
    with pytest.raises(SettingsError, match="URL_SIGNING_SECRET is required"):
        load_settings({"PIXELFLOW_STORAGE": "local"})
    with pytest.raises(SettingsError, match="RECYCLE_RSS_MB must not exceed"):
        load_settings({"PIXELFLOW_ENGINE_RECYCLE_RSS_MB": "4096", "PIXELFLOW_ENGINE_MEMORY_LIMIT_MB": "1024"})
    with pytest.raises(SettingsError, match="unknown setting PIXELFLOW_JOB_TIMEOUT_SECONDS"):
        load_settings({"PIXELFLOW_JOB_TIMEOUT_SECONDS": "120"})  # derived from the deadline now
    assert load_settings({"PIXELFLOW_DEADLINE_SECONDS": "200"}).job_timeout_seconds > 200
    # the remote commands' variables are not the service's, and not typos either
    assert load_settings({"PIXELFLOW_API_URL": "http://x", "PIXELFLOW_API_KEY": "pf_x"}) == load_settings({})


def test_settings_carry_every_engine_limit_with_its_default() -> None:
    assert {f.name for f in msgspec.structs.fields(Limits)} <= {f.name for f in msgspec.structs.fields(Settings)}
    assert load_settings({}).limits == Limits()
    assert load_settings({"PIXELFLOW_MAX_STEPS": "3", "PIXELFLOW_DEADLINE_SECONDS": "2.5"}).limits == Limits(
        max_steps=3, deadline_seconds=2.5
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://10.0.0.5/x",
        "http://192.168.1.1/x",
        "http://172.16.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://localhost/x",
        "http://api.localhost/x",
        "http://0.0.0.0/x",
        "ftp://example.com/x",
    ],
)
def test_private_destinations_are_blocked(url: str) -> None:
    with pytest.raises(BlockedDestination):
        check_literal(url, allow_private=False)


def test_public_and_allowed_destinations_pass() -> None:
    check_literal("https://93.184.215.14/hook", allow_private=False)
    check_literal("https://hooks.example.com/x", allow_private=False)  # resolved at send time
    check_literal("http://127.0.0.1:8080/x", allow_private=True)


async def test_send_time_resolution_blocks_names_that_resolve_privately() -> None:
    with pytest.raises(BlockedDestination, match=r"non-public|loopback"):
        await resolve_public("http://localhost:9/x", allow_private=False)


def test_our_signatures_verify_with_the_standardwebhooks_package() -> None:
    secret, body, ts = new_secret(), b'{"type":"job.succeeded"}', int(time.time())
    headers = signature_headers([secret], "msg_1", ts, body)
    assert Webhook(secret).verify(body, headers) == {"type": "job.succeeded"}
    verify(secret, headers, body)


def test_rotation_sends_every_active_signature() -> None:
    old, new, body, ts = new_secret(), new_secret(), b"{}", int(time.time())
    headers = signature_headers([new, old], "msg_2", ts, body)
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        Webhook(secret).verify(body, headers)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h, b: (h, b + b" "), "no signature matches"),
        (lambda h, b: ({**h, "webhook-id": "other"}, b), "no signature matches"),
        (lambda h, b: ({**h, "webhook-timestamp": str(int(time.time()) - 600)}, b), "tolerance"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), "missing"),
    ],
)
def test_verify_rejects_tampering_and_replays(mutate, reason: str) -> None:
    secret, body = new_secret(), b'{"a":1}'
    headers = signature_headers([secret], "msg_3", int(time.time()), body)
    h, b = mutate(headers, body)
    with pytest.raises(InvalidSignature, match=reason):
        verify(secret, h, b)


def test_known_answer_signature() -> None:
    # Standard Webhooks' published test vector
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_logs_never_carry_keys_or_secrets() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("pixelflow.test")
    log.addHandler(handler)
    log.propagate = False
    try:
        key, secret = "pf_" + "a" * 32, new_secret()
        log.warning("auth header was Bearer %s and secret %s", key, secret, extra={"api_key": key, "job_id": "j1"})
    finally:
        log.removeHandler(handler)
    line = stream.getvalue()
    record = json.loads(line)
    assert key not in line and secret not in line
    assert record["api_key"] == "[redacted]" and record["job_id"] == "j1"
    assert "Bearer [redacted]" in record["msg"]


def test_every_setting_is_documented() -> None:
    import msgspec

    from infra.settings import CLIENT_VARIABLES, Settings

    doc = (ROOT / "docs" / "OPERATIONS.md").read_text()
    names = [f"PIXELFLOW_{f.name.upper()}" for f in msgspec.structs.fields(Settings)] + list(CLIENT_VARIABLES)
    assert [name for name in names if f"| `{name}` |" not in doc] == []


def test_cors_origins_are_origins() -> None:
    assert load_settings({"PIXELFLOW_S3_CORS_ORIGINS": "https://a.example, http://127.0.0.1:8000"}).cors_origins == (
        "https://a.example",
        "http://127.0.0.1:8000",
    )
    assert load_settings({"PIXELFLOW_S3_CORS_ORIGINS": "*"}).cors_origins == ("*",)
    assert load_settings({}).cors_origins == ()
    for bad in ("https://a.example/path", "a.example", "ftp://a.example", "https://a.example:99999x"):
        with pytest.raises(SettingsError, match="PIXELFLOW_S3_CORS_ORIGINS"):
            load_settings({"PIXELFLOW_S3_CORS_ORIGINS": bad})


def test_cdn_base_url_is_a_base_url() -> None:
    assert load_settings({}).cdn_base_url is None
    for good in ("https://images.example.com", "http://127.0.0.1:4566/bucket"):
        assert load_settings({"PIXELFLOW_CDN_BASE_URL": good}).cdn_base_url == good
    for bad in ("https://images.example.com/", "images.example.com", "ftp://x.example", "https://x.example/a?b=1"):
        with pytest.raises(SettingsError, match="PIXELFLOW_CDN_BASE_URL"):
            load_settings({"PIXELFLOW_CDN_BASE_URL": bad})


def test_each_queue_has_its_own_sweep_ticks() -> None:
    """arq names a unique cron's tick `<name>:<time>` in one keyspace for every queue, so two
    deployments sharing a Redis must not share tick names: the first to queue a tick would run
    its own sweep and the other's would never run (its lost jobs stuck)."""
    from types import SimpleNamespace

    from data_plane.worker import build_workers

    names = []
    for queue in ("pixelflow:a", "pixelflow:b"):
        settings = Settings(queue_name=queue)
        images, hooks, *_ = build_workers(settings, SimpleNamespace(queue=None))  # type: ignore[arg-type]
        names.append({c.name for w in (images, hooks) for c in w.cron_jobs})
        assert len(names[-1]) == 3 and all(queue in n for n in names[-1]), names[-1]
        burst = build_workers(settings, SimpleNamespace(queue=None), burst=True)  # type: ignore[arg-type]
        assert not any(w.cron_jobs for w in burst), "a burst worker's own ticks would keep its queue from emptying"
    assert not names[0] & names[1]
