"""Issue 23: every text the API stores refuses NUL (PostgreSQL text and jsonb cannot hold it),
bytes that are not UTF-8, unpaired surrogates and overlong values with a 4xx problem+json that
names the field in ``errors[]``, and stores nothing. One table over every field a client sends:
job specs (``/v1/jobs``, the dry run, the one-call upload), templates and jobs naming them, asset
keys, headers, query and path parameters, and the dashboard's sign-up and team forms."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ApiServer, Tenant
from tests.security.conftest import record
from tests.security.test_dashboard_auth import _address, _page_token, sign_up

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
BAD = "\ufffe@BAD@"  # stands for the invalid byte in a raw body: replaced after encoding
NUL = "a\x00b"
SURROGATE = "\\ud800"  # a JSON escape no UTF-8 text can hold
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def job(**extra: Any) -> dict:
    return {"version": 1, "pipeline": [{"id": "small", "action": "resize", "width": 64, "format": "webp"}], **extra}


def watermarked(text: str) -> dict:
    return {
        "version": 1,
        "pipeline": [{"id": "small", "steps": [{"op": "resize", "width": 64}, {"op": "watermark", "text": text}]}],
    }


TEMPLATE = {
    "name": "card",
    "spec": {
        "version": 1,
        "pipeline": [{"id": "c", "steps": [{"op": "watermark", "text": {"$param": "caption"}}], "format": "jpeg"}],
    },
    "parameters": {"caption": {"type": "string", "default": "ACME"}},
}


def template(**change: Any) -> dict:
    return {**TEMPLATE, **change}


def raw(document: Any, bad: bytes = b"\xff") -> bytes:
    """``document`` as JSON with every ``BAD`` replaced by ``bad`` (or a surrogate escape)."""
    text = json.dumps(document)
    return text.replace(json.dumps(BAD)[1:-1], "@BAD@").encode().replace(b"@BAD@", bad)


@dataclass
class Case:
    what: str
    method: str
    path: str
    expect: str  # the path errors[] must name
    json: Any = None
    content: bytes | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    form: dict[str, Any] | None = None  # multipart fields besides the file

    def send(self, http: httpx.AsyncClient):
        kwargs: dict[str, Any] = {"headers": self.headers}
        if self.form is not None:
            kwargs["files"] = {"file": ("x.png", PNG, "image/png"), **{k: (None, v) for k, v in self.form.items()}}
        elif self.content is not None:
            kwargs["content"] = self.content
            kwargs["headers"] = {"Content-Type": "application/json", **self.headers}
        elif self.json is not None:
            kwargs["json"] = self.json
        return http.request(self.method, self.path, **kwargs)


def _spec_cases(route: str, body: str, wrap) -> list[Case]:
    """The job spec's text fields at one route, ``wrap`` turning a spec into that route's body.
    Spec errors name the spec's own paths (the dry run answers as createJob does); text that is
    not UTF-8 is found before the body is JSON, so it is named at its path in the body."""
    prefix = "$"
    return [
        Case(f"{route} metadata value NUL", "POST", route, f"{prefix}.metadata.k", wrap(job(metadata={"k": NUL}))),
        Case(
            f"{route} metadata key NUL",
            "POST",
            route,
            f'{prefix}.metadata["a\\u0000b"]',
            wrap(job(metadata={NUL: "v"})),
        ),
        Case(
            f"{route} webhook_url NUL",
            "POST",
            route,
            f"{prefix}.webhook_url",
            wrap(job(webhook_url="https://example.com/a\x00b")),
        ),
        Case(
            f"{route} source.url NUL",
            "POST",
            route,
            f"{prefix}.source.url",
            wrap(job(source={"url": "https://example.com/a\x00b.png"})),
        ),
        Case(
            f"{route} watermark text NUL", "POST", route, f"{prefix}.pipeline[0].steps[1].text", wrap(watermarked(NUL))
        ),
        Case(
            f"{route} variant id NUL",
            "POST",
            route,
            f"{prefix}.pipeline[0].id",
            wrap({**job(), "pipeline": [{"id": NUL, "action": "resize", "width": 64}]}),
        ),
        Case(
            f"{route} metadata value not UTF-8",
            "POST",
            route,
            f"{body}.metadata.k",
            content=raw(wrap(job(metadata={"k": BAD}))),
        ),
        Case(
            f"{route} metadata key not UTF-8",
            "POST",
            route,
            f"{body}.metadata",
            content=raw(wrap(job(metadata={BAD: 1}))),
        ),
        Case(
            f"{route} webhook_url not UTF-8",
            "POST",
            route,
            f"{body}.webhook_url",
            content=raw(wrap(job(webhook_url=f"https://example.com/{BAD}"))),
        ),
        Case(
            f"{route} metadata value unpaired surrogate",
            "POST",
            route,
            f"{body}.metadata.k",
            content=raw(wrap(job(metadata={"k": BAD})), SURROGATE.encode()),
        ),
        Case(
            f"{route} metadata value overlong",
            "POST",
            route,
            f"{prefix}.metadata.k",
            wrap(job(metadata={"k": "x" * 1025})),
        ),
        Case(
            f"{route} metadata key overlong",
            "POST",
            route,
            f"{prefix}.metadata." + "k" * 65,
            wrap(job(metadata={"k" * 65: 1})),
        ),
        Case(
            f"{route} webhook_url overlong",
            "POST",
            route,
            f"{prefix}.webhook_url",
            wrap(job(webhook_url="https://example.com/" + "x" * 2048)),
        ),
    ]


CASES: list[Case] = [
    *_spec_cases("/v1/jobs", "$", lambda s: s),
    *_spec_cases("/v1/specs/validate", "$.spec", lambda s: {"spec": s}),
    # the one-call upload takes its spec as a form field
    Case(
        "upload spec metadata NUL",
        "POST",
        "/v1/uploads",
        "$.metadata.k",
        form={"spec": json.dumps(job(metadata={"k": NUL}))},
    ),
    Case(
        "upload spec webhook_url NUL",
        "POST",
        "/v1/uploads",
        "$.webhook_url",
        form={"spec": json.dumps(job(webhook_url="https://example.com/\x00"))},
    ),
    Case("upload spec not UTF-8", "POST", "/v1/uploads", "$.metadata.k", form={"spec": raw(job(metadata={"k": BAD}))}),
    # templates
    Case(
        "template parameter default NUL",
        "POST",
        "/v1/templates",
        "$.parameters.caption.default",
        template(name="t2", parameters={"caption": {"type": "string", "default": NUL}}),
    ),
    Case(
        "template parameter name NUL",
        "POST",
        "/v1/templates",
        '$.parameters["a\\u0000b"]',
        template(name="t2", parameters={NUL: {"type": "string", "default": "x"}}),
    ),
    Case(
        "template spec metadata NUL",
        "POST",
        "/v1/templates",
        "$.spec.metadata.k",
        template(name="t2", spec={**TEMPLATE["spec"], "metadata": {"k": NUL}}),
    ),
    Case("template name NUL", "POST", "/v1/templates", "$.name", template(name=NUL)),
    Case("template name overlong", "POST", "/v1/templates", "$.name", template(name="t" * 65)),
    Case(
        "template parameter default overlong",
        "POST",
        "/v1/templates",
        "$.parameters.caption.default",
        template(name="t2", parameters={"caption": {"type": "string", "default": "x" * 1025}}),
    ),
    Case(
        "template body not UTF-8",
        "POST",
        "/v1/templates",
        "$.parameters.caption.default",
        content=raw(template(name="t2", parameters={"caption": {"type": "string", "default": BAD}})),
    ),
    Case(
        "job's template parameter NUL",
        "POST",
        "/v1/jobs",
        "$.parameters.caption",
        {"template": "card", "parameters": {"caption": NUL}},
    ),
    Case(
        "dry run's template parameter NUL",
        "POST",
        "/v1/specs/validate",
        "$.parameters.caption",
        {"spec": {"template": "card", "parameters": {"caption": NUL}}},
    ),
    Case(
        "job's template parameter overlong",
        "POST",
        "/v1/jobs",
        "$.parameters.caption",
        {"template": "card", "parameters": {"caption": "x" * 1025}},
    ),
    Case("job's template reference NUL", "POST", "/v1/jobs", "$.template", {"template": "card\x00"}),
    Case(
        "job's template metadata NUL", "POST", "/v1/jobs", "$.metadata.k", {"template": "card", "metadata": {"k": NUL}}
    ),
    Case(
        "job's template webhook NUL",
        "POST",
        "/v1/jobs",
        "$.webhook_url",
        {"template": "card", "webhook_url": "https://example.com/\x00"},
    ),
    Case("template path NUL", "GET", "/v1/templates/card%00", "$.name"),
    Case("template path not UTF-8", "GET", "/v1/templates/card%FF", "$.name"),
    Case("template path bad chars", "GET", "/v1/templates/Card%20x", "$.name"),
    Case("template path overlong", "GET", "/v1/templates/" + "t" * 65, "$.name"),
    Case("template diff path NUL", "GET", "/v1/templates/card%00/diff", "$.name"),
    # asset keys
    Case("asset key NUL", "POST", "/v1/assets", "$.key", {"key": "a\x00.png"}),
    Case("asset key not UTF-8", "POST", "/v1/assets", "$.key", content=raw({"key": f"a{BAD}.png"})),
    Case("asset key overlong", "POST", "/v1/assets", "$.key", {"key": "a" * 513}),
    # headers
    Case(
        "Idempotency-Key not UTF-8",
        "POST",
        "/v1/jobs",
        "$.Idempotency-Key",
        job(),
        headers={"Idempotency-Key": b"order-\xff"},
    ),
    Case(
        "Idempotency-Key overlong",
        "POST",
        "/v1/jobs",
        "$.Idempotency-Key",
        job(),
        headers={"Idempotency-Key": "k" * 256},
    ),
    Case(
        "Idempotency-Key control character",
        "POST",
        "/v1/jobs",
        "$.Idempotency-Key",
        job(),
        headers={"Idempotency-Key": "a\x7fb"},
    ),
    # query parameters of the job list
    Case("job list status NUL", "GET", "/v1/jobs?status=queued%00", "$.status"),
    Case("job list status not UTF-8", "GET", "/v1/jobs?status=%FF", "$.status"),
    Case("job list created_after NUL", "GET", "/v1/jobs?created_after=2025-01-01T00:00:00Z%00", "$.created_after"),
    Case("job list created_before not UTF-8", "GET", "/v1/jobs?created_before=%FF", "$.created_before"),
    Case("job list cursor NUL", "GET", "/v1/jobs?cursor=%00", "$.cursor"),
    Case("job list cursor not UTF-8", "GET", "/v1/jobs?cursor=%FF", "$.cursor"),
    Case("job list cursor overlong", "GET", "/v1/jobs?cursor=" + "A" * 4096, "$.cursor"),
    Case("job list limit not UTF-8", "GET", "/v1/jobs?limit=%FF", "$.limit"),
]


def _check(case: Case, r: httpx.Response) -> None:
    assert record(f"text field: {case.what}", r.status_code) in (400, 422), (case.what, r.status_code, r.text[:400])
    assert r.headers["content-type"].startswith(PROBLEM), (case.what, r.headers["content-type"])
    paths = [e["path"] for e in r.json().get("errors") or ()]
    assert case.expect in paths, (case.what, r.text[:400])


async def test_every_text_field_refuses_what_it_cannot_store(tenant: Tenant) -> None:
    saved = await tenant.http.post("/v1/templates", json=TEMPLATE)
    assert saved.status_code == 201, saved.text
    failures = []
    for case in CASES:
        r = await case.send(tenant.http)
        try:
            _check(case, r)
        except AssertionError as exc:
            failures.append(str(exc)[:500])
    assert not failures, "\n".join(failures)
    # nothing was stored: no job, and the one template is still at its first version
    assert (await tenant.http.get("/v1/jobs")).json()["jobs"] == []
    listed = (await tenant.http.get("/v1/templates")).json()["templates"]
    assert [(t["name"], t["latest_version"]) for t in listed] == [("card", 1)]


DASHBOARD: list[tuple[str, str, dict | bytes, str]] = [
    ("key name NUL", "/dashboard/api/keys", {"name": NUL}, "$.name"),
    ("key name overlong", "/dashboard/api/keys", {"name": "k" * 101}, "$.name"),
    ("key name not UTF-8", "/dashboard/api/keys", raw({"name": BAD}), "$.name"),
    ("invite email NUL", "/dashboard/api/invites", {"email": "a\x00@example.com"}, "$.email"),
    ("invite email overlong", "/dashboard/api/invites", {"email": "a" * 310 + "@example.com"}, "$.email"),
    ("invite email not UTF-8", "/dashboard/api/invites", raw({"email": f"a{BAD}@example.com"}), "$.email"),
]


def test_the_dashboard_forms_refuse_what_they_cannot_store(api: ApiServer) -> None:
    browser = sign_up(api.url)
    failures = []
    for what, path, body, expect in DASHBOARD:
        headers = {"X-CSRF-Token": browser.csrf}
        if isinstance(body, bytes):
            r = browser.http.post(path, content=body, headers={**headers, "Content-Type": "application/json"})
        else:
            r = browser.http.post(path, json=body, headers=headers)
        try:
            _check(Case(what, "POST", path, expect), r)
        except AssertionError as exc:
            failures.append(str(exc)[:500])
    assert not failures, "\n".join(failures)
    assert browser.http.get("/dashboard/api/keys").json() == []
    assert browser.http.get("/dashboard/api/invites").json() == []


SIGNUP: list[tuple[str, dict | bytes, str]] = [
    ("email NUL", {"email": "a\x00@example.com", "password": "a perfectly fine passphrase"}, "$.email"),
    ("password NUL", {"email": "nul-pw@example.com", "password": "a perfectly\x00fine passphrase"}, "$.password"),
    ("email not UTF-8", raw({"email": f"a{BAD}@example.com", "password": "a perfectly fine passphrase"}), "$.email"),
    ("email overlong", {"email": "a" * 320 + "@example.com", "password": "a perfectly fine passphrase"}, "$.email"),
]


def test_sign_up_refuses_what_it_cannot_store(api: ApiServer) -> None:
    failures = []
    for what, body, expect in SIGNUP:
        with httpx.Client(base_url=api.url, headers={"X-Forwarded-For": _address()}, timeout=30) as http:
            headers = {"X-CSRF-Token": _page_token(http, "/dashboard/signup")}
            if isinstance(body, bytes):
                r = http.post("/auth/signup", content=body, headers={**headers, "Content-Type": "application/json"})
            else:
                r = http.post("/auth/signup", json=body, headers=headers)
        try:
            _check(Case(f"sign-up {what}", "POST", "/auth/signup", expect), r)
        except AssertionError as exc:
            failures.append(str(exc)[:500])
    assert not failures, "\n".join(failures)


async def test_parallel_saves_of_one_template_make_consecutive_versions(tenant: Tenant) -> None:
    """Two (and eight) saves of the same name at once: each is a new version, none is a 500."""
    for n in (2, 8):
        bodies = [template(name=f"race{n}", spec={**TEMPLATE["spec"], "metadata": {"i": i}}) for i in range(n)]
        answers = await asyncio.gather(*(tenant.http.post("/v1/templates", json=b) for b in bodies))
        statuses = sorted(r.status_code for r in answers)  # valid saves: not part of the hostile corpus
        assert statuses == [201] * n, [r.text[:200] for r in answers]
        versions = sorted(r.json()["version"] for r in answers)
        assert versions == list(range(1, n + 1))
