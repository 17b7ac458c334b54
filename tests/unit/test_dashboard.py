"""The dashboard's pieces that need no server: password rules and hashing, settings, the pages'
frame and headers, assets that load nothing from the internet, and its absence from OpenAPI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import infra.passwords as passwords
from control_plane.app import create_app
from control_plane.dashboard.pages import PAGES, STATIC, page_response
from infra.logs import scrub
from infra.passwords import hash_password, password_problem, verify
from infra.settings import SettingsError, load_settings
from infra.signing import new_signing_key
from pipeline.formats import FORMATS

PAGES_DIR = Path(__file__).resolve().parents[2] / "control_plane" / "dashboard" / "pages"


@pytest.mark.parametrize(
    ("password", "email", "problem"),
    [
        ("short", "a@example.com", "use at least 10 characters"),
        ("x" * 257, "a@example.com", "use at most 256 characters"),
        ("ada@example.com", "ada@example.com", "the password must not contain the email address"),
        ("ADA@EXAMPLE.COM!", "ada@example.com", "the password must not contain the email address"),
        ("abababababab", "a@example.com", "use more than three different characters"),
        ("correct horse battery", "a@example.com", None),
        ("ñandú-pingüino-9", "a@example.com", None),
    ],
)
def test_password_rules(password: str, email: str, problem: str | None) -> None:
    assert password_problem(password, email) == problem


def test_argon2id_hashes_verify_and_unknown_accounts_cost_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert verify(stored, "correct horse battery")
    assert not verify(stored, "correct horse batterY")
    assert not verify("not a hash", "x")
    verify(None, "warm-up")  # the dummy hash is made once, on first use
    # The same work, counted rather than timed (a busy machine makes timings noise): one argon2id
    # verification against a hash of the same cost parameters, account or not.
    checked: list[str] = []
    hasher = passwords._HASHER

    class Counting:
        def __getattr__(self, name: str) -> object:
            return getattr(hasher, name)

        def verify(self, hashed: str, password: str) -> bool:
            checked.append(hashed)
            return hasher.verify(hashed, password)

    monkeypatch.setattr(passwords, "_HASHER", Counting())
    assert not verify(None, "correct horse battery")  # no account: the same work, then False
    assert not verify(stored, "wrong password")
    cost = [hashed.rsplit("$", 2)[0] for hashed in checked]  # $argon2id$v=19$m=...,t=...,p=...
    assert cost == [stored.rsplit("$", 2)[0]] * 2, checked


def test_signup_is_closed_unless_opened_and_sessions_are_bounded() -> None:
    assert load_settings({}).signup == "closed"
    assert load_settings({"PIXELFLOW_SIGNUP": "open"}).signup == "open"
    assert load_settings({}).session_hours == 12
    for bad in ({"PIXELFLOW_SIGNUP": "yes"}, {"PIXELFLOW_SESSION_HOURS": "0"}, {"PIXELFLOW_SESSION_HOURS": "1000"}):
        with pytest.raises(SettingsError, match=next(iter(bad))):
            load_settings(bad)


def test_session_tokens_are_scrubbed_from_log_text() -> None:
    token = "pfs_" + "A1b2-C3d4_" * 4
    assert token not in scrub(f"cookie pixelflow_session={token}; other=1")
    assert "[redacted]" in scrub(f"GET /v1/jobs?x={token}")
    _, signing_secret = new_signing_key()  # a URL signing key's secret, as the CLI prints it
    assert signing_secret.startswith("pfk_") and signing_secret not in scrub(f"secret: {signing_secret}")


def test_every_page_has_markup_and_the_frame_carries_token_nav_and_policy() -> None:
    assert {p.stem for p in PAGES_DIR.glob("*.html")} == {*PAGES, "_shell"}
    settings = load_settings(
        {"PIXELFLOW_S3_PUBLIC_ENDPOINT": "images.example.com", "PIXELFLOW_S3_PUBLIC_SECURE": "true"}
    )
    response = page_response("keys", settings, csrf='tok"<en', user=None)
    html = response.content
    assert '<meta name="csrf-token" content="tok&quot;&lt;en">' in html  # escaped
    assert '<body data-page="keys"' in html
    assert '<meta name="pixelflow-terminal" content="canceled failed succeeded">' in html
    assert '<meta name="pixelflow-active" content="processing queued">' in html
    # the new-job page names dropped files' formats from the registry, so it knows each one read
    formats = re.search(r'<meta name="pixelflow-formats" content="([^"]*)">', html)
    assert formats is not None
    assert dict(pair.split("=") for pair in formats.group(1).split()) == {f.mime: f.name for f in FORMATS.values()}
    assert {"image/heic", "image/jxl", "image/svg+xml"} <= set(dict(p.split("=") for p in formats.group(1).split()))
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "connect-src 'self' https://images.example.com https://*.images.example.com;" in csp
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_dashboard_loads_nothing_from_elsewhere() -> None:
    """No CDN, no web font, no inline script: every asset is a file served from dashboard/static."""
    for path in [*STATIC.iterdir(), *PAGES_DIR.iterdir()]:
        text = path.read_text()
        assert not re.search(r"(?:src|href)\s*=\s*[\"'](?:https?:)?//", text), path
        assert not re.search(r"@import|url\(\s*[\"']?(?:https?:)?//", text), path
        if path.suffix == ".html":
            assert re.findall(r"<script[^>]*>", text) in ([], ['<script type="module" src="/dashboard/static/app.js">'])


def test_dashboard_routes_stay_out_of_the_openapi_document() -> None:
    paths = create_app(load_settings({})).openapi_schema.to_schema()["paths"]
    assert not [p for p in paths if p.startswith(("/dashboard", "/auth"))]


def test_the_pages_script_and_styles_ship_in_the_package() -> None:
    import tomllib

    package = PAGES_DIR.parents[1]
    patterns = tomllib.loads((package.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {path for pattern in patterns["control_plane"] for path in package.glob(pattern)}
    needed = {*PAGES_DIR.iterdir(), *STATIC.iterdir()}
    assert {p.name for p in needed} >= {"_shell.html", "app.js", "app.css"} and needed <= shipped
