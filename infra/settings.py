"""Settings from ``PIXELFLOW_*`` environment variables, validated once per process.

Every field maps to ``PIXELFLOW_<FIELD>`` (upper-case). ``load_settings()`` is called by each
composition root (API app, worker, CLI); nothing reads the environment at import time.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from infra.output_keys import DEFAULT_OUTPUT_KEY_TEMPLATE, check_output_key_template
from infra.url_policy import parse_origins, parse_widths
from pipeline.dsl import Limits

__all__ = ["CLIENT_VARIABLES", "Settings", "SettingsError", "load_settings"]

PREFIX = "PIXELFLOW_"
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_BASE_URL = re.compile(_ORIGIN.pattern + r"(/[A-Za-z0-9._~%-]+)*")
# Read by the commands that talk to a running service (`pixelflow submit`, `pixelflow jobs`), never by
# the service: after pasting `pixelflow up`'s export lines, `pixelflow run` and the servers still start.
CLIENT_VARIABLES = ("PIXELFLOW_API_URL", "PIXELFLOW_API_KEY")
Seconds = Annotated[float, Meta(gt=0)]
PositiveInt = Annotated[int, Meta(ge=1)]


class SettingsError(ValueError):
    pass


class Settings(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # connections
    database_url: str = "postgresql://postgres@127.0.0.1:5432/pixelflow"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # object storage: "s3" (MinIO, AWS, any S3 API) or "local" (a directory; URLs served by the API)
    storage: Literal["s3", "local"] = "s3"
    s3_endpoint: str = "127.0.0.1:9000"  # host:port the services use
    s3_public_endpoint: str | None = None  # host:port clients use in presigned URLs (signature covers it)
    s3_secure: bool = False
    s3_public_secure: bool | None = None
    s3_access_key: str = "minioadmin"
    s3_secret_key: str = "minioadmin"  # noqa: S105 - MinIO's documented development default
    s3_region: str = "us-east-1"
    s3_bucket: str = "pixelflow"
    # browser origins (`https://app.example.com`, comma-separated, or `*`) allowed to PUT/POST to
    # presigned upload URLs and read variants: set as the bucket's CORS rule at start-up; empty: left alone
    s3_cors_origins: str = ""
    local_storage_dir: str = ".pixelflow/storage"
    # where a CDN serves the bucket (`https://images.example.com`, its path mapped to object keys):
    # job results and webhooks then carry `<this>/<key>`, stable, instead of expiring presigned URLs
    cdn_base_url: str | None = None
    # where each variant goes under outputs/ (infra/objects.py: {client}, {job}, {variant}, {ext});
    # a client's policy may set its own (`pixelflow clients limits NAME --output-key-template ...`)
    output_key_template: str = DEFAULT_OUTPUT_KEY_TEMPLATE
    # stored-data retention: days after a job ended until the sweeper deletes its original / its
    # variants (unset: kept until the job is deleted); a client's policy may set its own
    retain_originals_days: PositiveInt | None = None
    retain_outputs_days: PositiveInt | None = None
    # HTTP API server (`pixelflow api`): slow or idle clients are cut off, connections capped
    api_header_timeout_seconds: Seconds = 10.0  # request line + headers must arrive within this
    api_body_timeout_seconds: Seconds = 60.0  # the whole body must arrive within this once headers are in
    api_keepalive_timeout_seconds: Seconds = 5.0  # idle keep-alive connections are closed after this
    api_max_connections: PositiveInt = 1000  # per API process; above it new requests get 503
    # API metrics: a separate listener and/or a bearer token for /metrics on the API port
    api_metrics_port: Annotated[int, Meta(ge=0, le=65535)] = 0  # 0: no separate listener
    api_metrics_host: str = "127.0.0.1"
    metrics_token: str | None = None  # unset: no /metrics on the API port
    # reverse proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For, Forwarded and
    # X-Forwarded-Proto are believed (control_plane/auth/peers.py); from any other peer they are ignored.
    # Empty: none, so every per-address limit counts the TCP peer
    trusted_proxies: str = ""
    # HTTP API
    public_base_url: str = "http://127.0.0.1:8000"  # how clients reach the API (local-storage URLs)
    url_signing_secret: str | None = None  # signs local-storage URLs; required with storage=local
    presign_expiry_seconds: Annotated[int, Meta(ge=60, le=7 * 24 * 3600)] = 3600
    max_request_body_bytes: PositiveInt = 1024 * 1024
    max_inline_upload_bytes: PositiveInt = 10 * 1024 * 1024
    # per-client rate limit for job creation (GCRA), shared by all its keys: `rate_limit_per_minute`
    # sustained, bursts of `rate_limit_burst`
    rate_limit_per_minute: PositiveInt = 120
    rate_limit_burst: PositiveInt = 30
    max_concurrent_jobs_per_client: PositiveInt = 50
    # dashboard accounts: `open` lets anyone sign up (each sign-up creates a client); `closed` (the
    # default, for production) leaves accounts to `pixelflow users create`
    signup: Literal["open", "closed"] = "closed"
    session_hours: Annotated[float, Meta(gt=0, le=24 * 30)] = 12.0  # a browser session's absolute lifetime
    # fair scheduling between clients (docs/OPERATIONS.md, "Fair shares and lanes")
    scheduling_weight: PositiveInt = 1  # a client's share of engine slots, relative to the others'
    max_running_jobs_per_client: PositiveInt = 1000  # a client's jobs processing at once, all workers
    interactive_jobs_per_client: PositiveInt = 2  # a client's `priority: interactive` jobs active at once
    # per worker process, beside worker_concurrency: slots only for interactive jobs and for cheap
    # jobs of clients that have nothing running, so they never wait behind another client's work
    interactive_slots: Annotated[int, Meta(ge=0, le=16)] = 1
    interactive_deadline_seconds: Seconds = 10.0  # a run in an interactive slot; then it moves to a normal slot
    interactive_max_cost: PositiveInt = 2000  # cost units (~CPU-ms) a client's recent runs may average to use one
    # signed image URLs (docs/delivery.md): how long a request waits for its render (a render still
    # running past the interactive deadline goes on in a normal slot), what responses say to
    # caches, and the URL policy's global values
    url_deadline_seconds: Seconds = 10.0
    url_cache_control: str = "public, max-age=31536000, immutable"
    url_templates_only: bool = False  # URLs may only name templates, not steps
    url_widths: str = ""  # widths URLs may ask for, comma-separated (`320,640,1024`); empty: any
    url_source_origins: str = ""  # origins url: sources may name, comma-separated; empty: none
    url_usage_flush_seconds: Seconds = 5.0  # how often an API process adds its cache hits to usage
    # queue and workers
    queue_name: str = "pixelflow:queue"
    worker_concurrency: PositiveInt = 2
    worker_poll_delay: Seconds = 0.05
    job_max_tries: PositiveInt = 5  # runs of one job (transient errors, lost workers) before it fails
    lease_seconds: Annotated[float, Meta(ge=1)] = 30.0  # a running job's lease; renewed every third of it
    sweep_interval_seconds: Annotated[int, Meta(ge=1, le=60)] = 10  # re-queue lapsed leases and lost queue entries
    worker_drain_seconds: Annotated[float, Meta(ge=0)] = 30.0  # on SIGTERM, running jobs may finish this long
    # the engine runs in one child process per concurrent job
    engine_memory_limit_mb: Annotated[int, Meta(ge=64)] = 2048  # a child above this is killed: out_of_memory
    engine_recycle_rss_mb: Annotated[int, Meta(ge=64)] = 768  # a child left above this after a job is replaced
    engine_max_jobs: PositiveInt = 200  # jobs per child before it is replaced
    # webhooks
    webhook_timeout_seconds: Seconds = 10.0
    webhook_max_attempts: PositiveInt = 12  # the long schedule, spanning about a day
    webhook_backoff_base_seconds: Seconds = 30.0
    webhook_backoff_max_seconds: Seconds = 6 * 3600.0
    webhook_allow_private: bool = False  # allow receivers on private/loopback addresses (tests, LANs)
    # URL sources (`"source": {"url": ...}`), fetched by the worker through the same SSRF guard
    url_sources_allow_private: bool = False  # allow origins on private/loopback addresses (tests, LANs)
    source_fetch_timeout_seconds: Seconds = 30.0  # connecting, every redirect and the whole body
    source_max_redirects: Annotated[int, Meta(ge=0, le=20)] = 5  # each hop checked by the guard again
    # pipeline limits
    max_variants: PositiveInt = 32
    max_steps: PositiveInt = 16
    max_output_dimension: Annotated[int, Meta(ge=1, le=16384)] = 16384
    max_output_pixels: PositiveInt = 100_000_000
    max_source_pixels: PositiveInt = 100_000_000
    max_source_bytes: PositiveInt = 50 * 1024 * 1024
    max_frames: PositiveInt = 256
    deadline_seconds: Seconds = 60.0
    max_job_cost: PositiveInt = 120_000  # estimated work per job; cost units ~ CPU-ms (pipeline/cost.py)
    # per client: sources' megapixels per UTC day (succeeded jobs); None: no quota
    daily_source_megapixels: PositiveInt | None = None
    # per client: engine CPU seconds per UTC day (every job's runs, whatever its outcome); None: no quota
    daily_engine_cpu_seconds: PositiveInt | None = None
    # observability
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    otel_exporter: Literal["none", "console", "otlp"] = "none"  # otlp reads OTEL_EXPORTER_OTLP_* variables
    worker_metrics_port: Annotated[int, Meta(ge=0, le=65535)] = 0  # 0: no /metrics server in the worker
    worker_metrics_host: str = "127.0.0.1"  # containers: 0.0.0.0, so the scraper on their network reaches it

    def __post_init__(self) -> None:
        if self.storage == "local" and not self.url_signing_secret:
            raise ValueError("PIXELFLOW_URL_SIGNING_SECRET is required with PIXELFLOW_STORAGE=local")
        if self.engine_recycle_rss_mb > self.engine_memory_limit_mb:
            raise ValueError("PIXELFLOW_ENGINE_RECYCLE_RSS_MB must not exceed PIXELFLOW_ENGINE_MEMORY_LIMIT_MB")
        if self.cdn_base_url is not None and not _BASE_URL.fullmatch(self.cdn_base_url):
            raise ValueError(
                f"PIXELFLOW_CDN_BASE_URL: {self.cdn_base_url!r} is not an http(s) URL without a query or trailing slash"
            )
        for name, parse in (("url_widths", parse_widths), ("url_source_origins", parse_origins)):
            try:
                parse(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"{PREFIX}{name.upper()}: {exc}") from None
        try:
            check_output_key_template(self.output_key_template)
        except ValueError as exc:
            raise ValueError(f"PIXELFLOW_OUTPUT_KEY_TEMPLATE: {exc}") from None
        try:
            self.trusted_proxy_networks  # noqa: B018 - parsed here once to refuse a bad value at start-up
        except ValueError as exc:
            raise ValueError(f"PIXELFLOW_TRUSTED_PROXIES: {exc} (give IPs or CIDRs, comma-separated)") from None
        for origin in self.cors_origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"PIXELFLOW_S3_CORS_ORIGINS: {origin!r} is not an origin (scheme://host[:port], no path) or *"
                )

    @property
    def cors_origins(self) -> tuple[str, ...]:
        return tuple(o.strip() for o in self.s3_cors_origins.split(",") if o.strip())

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return _networks(self.trusted_proxies)

    @property
    def webhook_queue_name(self) -> str:
        # Webhooks have their own queue so slow receivers never hold up image processing.
        return f"{self.queue_name}:webhooks"

    @property
    def job_timeout_seconds(self) -> float:
        """arq's limit per run: the engine's deadline plus room for storage and database I/O.
        The deadline ends a job; this only catches a run stuck in I/O, which is then handed back."""
        return self.deadline_seconds + 120.0

    @property
    def limits(self) -> Limits:
        """The engine's limits, from the settings of the same names (the rest keep their defaults)."""
        return Limits(**{name: getattr(self, name) for name in _LIMIT_FIELDS})


@functools.cache
def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    # an address alone is its own /32 or /128; host bits set under a prefix are a typo, refused
    return tuple(ipaddress.ip_network(part.strip()) for part in text.split(",") if part.strip())


_FIELDS = {f.name: f for f in msgspec.structs.fields(Settings)}
_LIMIT_FIELDS = tuple(f.name for f in msgspec.structs.fields(Limits) if f.name in _FIELDS)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read ``PIXELFLOW_*`` variables; unknown ones are an error (a typo must not be ignored)."""
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for key, value in env.items():
        if not key.startswith(PREFIX) or key in CLIENT_VARIABLES:
            continue
        name = key[len(PREFIX) :].lower()
        if name not in _FIELDS:
            raise SettingsError(f"unknown setting {key}")
        raw[name] = value
    raw.update(overrides)
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        for name in _FIELDS:
            message = message.replace(f"`$.{name}`", f"{PREFIX}{name.upper()}")
        raise SettingsError(f"invalid settings: {message}") from None
