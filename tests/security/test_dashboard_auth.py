"""Dashboard accounts over real HTTP against the real stack: CSRF, the session cookie, logout,
sign-in limits, one answer for every failed sign-in, closed sign-up, tenancy, and logs."""

from __future__ import annotations

import re
import secrets
import statistics
import time
import uuid
from dataclasses import dataclass

import httpx
import pytest

from devstack.backing_services import free_port
from infra.db import open_pool
from infra.passwords import hash_password
from infra.repo import ClientRepo, UserRepo
from tests.integration.conftest import ApiServer, Stack
from tests.security.conftest import ApiProcess, record

pytestmark = pytest.mark.integration

PASSWORD = "a perfectly fine passphrase"
SPEC = {"version": 1, "pipeline": [{"id": "small", "action": "resize", "width": 64, "format": "webp"}]}
_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def _email(tag: str = "u") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


def _address() -> str:
    # The suite trusts X-Forwarded-For from 127.0.0.1 (PIXELFLOW_TRUSTED_PROXIES in
    # tests/integration/conftest.py), so each test signs in from its own address and the
    # per-address limit of one test never throttles another. Its own /64: IPv6 is limited per /64.
    return f"2001:db8:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}::1"


def _page_token(http: httpx.Client, path: str) -> str:
    page = http.get(path)
    assert page.status_code == 200, page.text
    found = _META.search(page.text)
    assert found is not None
    return found.group(1)


@dataclass
class Browser:
    """What a browser holds after signing in: its cookies, and the token the pages carry."""

    http: httpx.Client
    csrf: str
    email: str

    @property
    def session(self) -> str:
        return self.http.cookies["pixelflow_session"]

    @property
    def device(self) -> str:
        """The ``pixelflow_device`` cookie signing up (or in) left: this browser is known to the account."""
        return self.http.cookies["pixelflow_device"]


def sign_up(base: str, email: str | None = None, address: str | None = None) -> Browser:
    email = email or _email()
    http = httpx.Client(base_url=base, headers={"X-Forwarded-For": address or _address()}, timeout=30)
    form_token = _page_token(http, "/dashboard/signup")
    r = http.post("/auth/signup", json={"email": email, "password": PASSWORD}, headers={"X-CSRF-Token": form_token})
    assert r.status_code == 201, r.text
    return Browser(http, _page_token(http, "/dashboard"), email)


def sign_in(base: str, email: str, password: str, address: str, device: str | None = None) -> httpx.Response:
    cookies = {"pixelflow_device": device} if device else None
    with httpx.Client(base_url=base, headers={"X-Forwarded-For": address}, cookies=cookies, timeout=30) as http:
        token = _page_token(http, "/dashboard/login")
        return http.post("/auth/login", json={"email": email, "password": password}, headers={"X-CSRF-Token": token})


def _problem(r: httpx.Response, status: int, code: str) -> None:
    record(f"{r.request.method} {r.request.url.path}", r.status_code)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code


def test_state_changing_requests_need_the_pages_csrf_token(api: ApiServer) -> None:
    b = sign_up(api.url)
    assert b.http.get("/v1/jobs").status_code == 200  # reading needs no token
    for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": ""}):
        _problem(b.http.post("/v1/jobs", json=SPEC, headers=headers), 403, "csrf_failed")
        _problem(b.http.post("/dashboard/api/keys", json={"name": "x"}, headers=headers), 403, "csrf_failed")
        _problem(b.http.post("/auth/logout", headers=headers), 403, "csrf_failed")
    # another session's token is no good either
    other = sign_up(api.url)
    _problem(b.http.post("/v1/jobs", json=SPEC, headers={"X-CSRF-Token": other.csrf}), 403, "csrf_failed")
    assert b.http.get("/v1/jobs").json()["jobs"] == []  # nothing was created
    created = b.http.post("/v1/jobs", json=SPEC, headers={"X-CSRF-Token": b.csrf})
    assert created.status_code == 201, created.text

    # The sign-in and sign-up forms: the token of the browser's pre-session cookie, and only that.
    with httpx.Client(base_url=api.url, timeout=30) as fresh:
        body = {"email": b.email, "password": PASSWORD}
        _problem(fresh.post("/auth/login", json=body), 403, "csrf_failed")
        token = _page_token(fresh, "/dashboard/login")
        _problem(fresh.post("/auth/login", json=body, headers={"X-CSRF-Token": token + "x"}), 403, "csrf_failed")
        fresh.cookies.clear()  # a forged cross-site post carries the header value but not our cookie
        _problem(fresh.post("/auth/login", json=body, headers={"X-CSRF-Token": token}), 403, "csrf_failed")


def test_the_session_cookie_is_httponly_samesite_and_secure_over_https(api: ApiServer) -> None:
    with httpx.Client(base_url=api.url, headers={"X-Forwarded-For": _address()}, timeout=30) as http:
        token = _page_token(http, "/dashboard/signup")
        r = http.post("/auth/signup", json={"email": _email(), "password": PASSWORD}, headers={"X-CSRF-Token": token})
        assert r.status_code == 201
        cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("pixelflow_session="))
        flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "max-age", "path"} <= flags
        assert "samesite=lax" in cookie.lower()
        assert "secure" not in flags  # plain http: a Secure cookie would never come back
        value = cookie.split(";")[0].split("=", 1)[1]
        assert value.startswith("pfs_") and len(value) > 40
        max_age = int(re.search(r"Max-Age=(\d+)", cookie, re.I).group(1))
        assert 11 * 3600 < max_age <= 12 * 3600  # PIXELFLOW_SESSION_HOURS' default

    # behind a TLS-terminating proxy (X-Forwarded-Proto from a trusted address): Secure
    with httpx.Client(
        base_url=api.url, headers={"X-Forwarded-For": _address(), "X-Forwarded-Proto": "https"}, timeout=30
    ) as http:
        page = http.get("/dashboard/signup")
        pre = next(c for c in page.headers.get_list("set-cookie") if c.startswith("pixelflow_csrf="))
        assert "secure" in pre.lower() and "httponly" in pre.lower() and "samesite=strict" in pre.lower()
        token = _META.search(page.text).group(1)
        # httpx keeps Secure cookies for https URLs only; send the pre-session cookie by hand
        r = http.post(
            "/auth/signup",
            json={"email": _email(), "password": PASSWORD},
            headers={"X-CSRF-Token": token, "Cookie": f"pixelflow_csrf={token}"},
        )
        assert r.status_code == 201, r.text
        cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("pixelflow_session="))
        assert "; secure" in cookie.lower()


def test_logout_revokes_the_session_on_the_server(api: ApiServer) -> None:
    b = sign_up(api.url)
    old = b.session
    r = b.http.post("/auth/logout", headers={"X-CSRF-Token": b.csrf})
    assert r.status_code == 200 and r.json() == {"redirect": "/dashboard/login"}
    # a client that kept the cookie (a copy stolen before logout) gets nowhere
    with httpx.Client(base_url=api.url, cookies={"pixelflow_session": old}, timeout=30) as replay:
        _problem(replay.get("/v1/jobs"), 401, "unauthorized")
        _problem(replay.get("/dashboard/api/keys"), 401, "unauthorized")
        page = replay.get("/dashboard")
        assert page.status_code == 303 and page.headers["location"] == "/dashboard/login"
        csrf_after = replay.post("/v1/jobs", json=SPEC, headers={"X-CSRF-Token": b.csrf})
        _problem(csrf_after, 401, "unauthorized")


async def test_an_expired_session_is_refused(stack: Stack, api: ApiServer) -> None:
    b = sign_up(api.url)
    pool = await open_pool(stack.env["PIXELFLOW_DATABASE_URL"], max_size=1)
    try:
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE sessions SET expires_at = now() - interval '1 second'"
                " WHERE user_id = (SELECT id FROM users WHERE email = %s)",
                (b.email,),
            )
    finally:
        await pool.close()
    _problem(b.http.get("/v1/jobs"), 401, "unauthorized")


def _attempts_until_limited(attempt, burst: int, per_minute: int) -> tuple[int, httpx.Response]:
    """Attempts answered before the first 429: the burst, plus what the rate refilled meanwhile."""
    started = time.monotonic()
    for n in range(burst + 50):
        r = attempt()
        if r.status_code == 429:
            refilled = (time.monotonic() - started) * per_minute / 60
            assert burst <= n <= burst + refilled + 1, (n, refilled)
            return n, r
        _problem(r, 401, "invalid_credentials")
    raise AssertionError("never limited")


def test_sign_in_attempts_are_limited_per_account(api: ApiServer) -> None:
    b = sign_up(api.url)
    # each attempt from another address: only the account's limit can stop them
    _attempts_until_limited(lambda: sign_in(api.url, b.email, "wrong password!", _address()), 10, 5)
    limited = sign_in(api.url, b.email, PASSWORD, _address())  # from a new device the right password waits too
    _problem(limited, 429, "sign_in_account_limited")
    assert int(limited.headers["retry-after"]) >= 1
    # a device known to another account (the sprayer's own) is a new device here
    sprayer = sign_up(api.url)
    _problem(sign_in(api.url, b.email, PASSWORD, _address(), device=sprayer.device), 429, "sign_in_account_limited")
    # the owner's browser, known to the account, still signs in, from anywhere
    assert sign_in(api.url, b.email, PASSWORD, _address(), device=b.device).status_code == 200
    # other accounts are not held up
    other = sign_up(api.url)
    assert sign_in(api.url, other.email, PASSWORD, _address()).status_code == 200


def test_a_spray_on_one_account_from_one_address_does_not_lock_its_owner_out(api: ApiServer) -> None:
    """The account's budget from one address (bursts of 5, then 2 a minute) runs out before the
    account's budget for new devices (10, then 5 a minute), which refills faster than one address
    may spend it: the owner still signs in from their known device, and from any other address."""
    owner = sign_up(api.url)
    spray = _address()
    _, limited = _attempts_until_limited(lambda: sign_in(api.url, owner.email, "wrong password!", spray), 5, 2)
    _problem(limited, 429, "sign_in_account_address_limited")
    assert int(limited.headers["retry-after"]) >= 1
    for _ in range(5):  # the spray goes on: refused before any password is checked
        _problem(sign_in(api.url, owner.email, "wrong password!", spray), 429, "sign_in_account_address_limited")
    # the right password from the spraying address, on a new device, waits like the spray
    _problem(sign_in(api.url, owner.email, PASSWORD, spray), 429, "sign_in_account_address_limited")
    assert sign_in(api.url, owner.email, PASSWORD, spray, device=owner.device).status_code == 200
    assert sign_in(api.url, owner.email, PASSWORD, _address()).status_code == 200


def test_a_known_device_has_its_own_budget(api: ApiServer) -> None:
    """A stolen or shared device cookie buys guesses at its own rate only (10, then 5 a minute)."""
    owner = sign_up(api.url)
    _, limited = _attempts_until_limited(
        lambda: sign_in(api.url, owner.email, "wrong password!", _address(), device=owner.device), 10, 5
    )
    _problem(limited, 429, "sign_in_device_limited")
    assert sign_in(api.url, owner.email, PASSWORD, _address()).status_code == 200  # new devices: their own budgets


def test_sign_in_attempts_are_limited_per_address(api: ApiServer) -> None:
    address = _address()
    # a different (unknown) account each time: only the address's limit can stop them
    _, limited = _attempts_until_limited(lambda: sign_in(api.url, _email("guess"), "some password 1", address), 30, 30)
    _problem(limited, 429, "sign_in_address_limited")
    b = sign_up(api.url)
    assert sign_in(api.url, b.email, PASSWORD, _address()).status_code == 200  # other addresses still sign in


def test_sign_ups_are_limited_per_address(api: ApiServer) -> None:
    address = _address()
    _sign_ups_until_limited(
        api.url, lambda: httpx.Client(base_url=api.url, headers={"X-Forwarded-For": address}, timeout=30)
    )


async def test_a_hash_with_weaker_parameters_is_upgraded_at_sign_in(stack: Stack, api: ApiServer) -> None:
    from argon2 import PasswordHasher

    b = sign_up(api.url)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    pool = await open_pool(stack.env["PIXELFLOW_DATABASE_URL"], max_size=1)
    try:
        async with pool.connection() as conn:
            await conn.execute("UPDATE users SET password_hash = %s WHERE email = %s", (weak, b.email))
        assert sign_in(api.url, b.email, PASSWORD, _address()).status_code == 200
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT password_hash FROM users WHERE email = %s", (b.email,))).fetchone()
    finally:
        await pool.close()
    stored = row["password_hash"]
    assert stored != weak and stored.startswith("$argon2id$") and "m=65536,t=3,p=4" in stored
    assert sign_in(api.url, b.email, PASSWORD, _address()).status_code == 200


def test_an_unknown_email_and_a_wrong_password_get_the_same_answer_in_the_same_time(api: ApiServer) -> None:
    b = sign_up(api.url)
    timings: dict[str, list[float]] = {"unknown": [], "wrong": []}
    bodies: dict[str, set[str]] = {"unknown": set(), "wrong": set()}
    for _ in range(5):
        for kind, email in (("unknown", _email("nobody")), ("wrong", b.email)):
            started = time.perf_counter()
            r = sign_in(api.url, email, "not the password", _address())
            timings[kind].append(time.perf_counter() - started)
            _problem(r, 401, "invalid_credentials")
            bodies[kind].add(r.text)
            assert "www-authenticate" not in r.headers
    assert bodies["unknown"] == bodies["wrong"] and len(bodies["wrong"]) == 1
    unknown, wrong = statistics.median(timings["unknown"]), statistics.median(timings["wrong"])
    # Both run one argon2id verification (tens of milliseconds); without the dummy hash an unknown
    # email would answer from one index lookup, an order of magnitude sooner.
    assert unknown > 0.6 * wrong and wrong > 0.6 * unknown, (unknown, wrong)


def accept(base: str, token: str, password: str = PASSWORD) -> tuple[httpx.Client, httpx.Response]:
    http = httpx.Client(base_url=base, headers={"X-Forwarded-For": _address()}, timeout=30)
    form = _page_token(http, "/dashboard/invite")
    return http, http.post("/auth/accept", json={"token": token, "password": password}, headers={"X-CSRF-Token": form})


def invite(owner: Browser, email: str, role: str = "member") -> str:
    r = owner.http.post(
        "/dashboard/api/invites", json={"email": email, "role": role}, headers={"X-CSRF-Token": owner.csrf}
    )
    assert r.status_code == 201, r.text
    link = r.json()["link"]
    assert link.startswith("/dashboard/invite#pfi_")
    return link.split("#", 1)[1]


async def test_sign_up_is_refused_when_closed_and_invitations_still_let_people_in(stack: Stack) -> None:
    port = free_port()
    server = ApiServer(stack.settings(signup="closed", public_base_url=f"http://127.0.0.1:{port}"), port).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            token = _page_token(http, "/dashboard/signup")
            r = http.post(
                "/auth/signup", json={"email": _email(), "password": PASSWORD}, headers={"X-CSRF-Token": token}
            )
            _problem(r, 403, "signup_closed")
        # an owner the operator made invites a colleague, who joins although sign-up is closed
        owner_email = _email("owner")
        pool = await open_pool(stack.env["PIXELFLOW_DATABASE_URL"], max_size=1)
        try:
            client, _ = await ClientRepo(pool).create(f"closed-{uuid.uuid4().hex[:8]}")
            client_id = client.id
            await UserRepo(pool).create(client_id, owner_email, hash_password(PASSWORD), "owner")
        finally:
            await pool.close()
        owner = Browser(
            httpx.Client(base_url=server.url, headers={"X-Forwarded-For": _address()}, timeout=30), "", owner_email
        )
        form = _page_token(owner.http, "/dashboard/login")
        signed = owner.http.post("/auth/login", json={"email": owner_email, "password": PASSWORD},
                                 headers={"X-CSRF-Token": form})  # fmt: skip
        assert signed.status_code == 200
        owner.csrf = _page_token(owner.http, "/dashboard")
        guest, joined = accept(server.url, invite(owner, _email("colleague")))
        assert joined.status_code == 201, joined.text
        assert guest.get("/dashboard/api/session").json()["client_id"] == str(client_id)
        guest.close()
        owner.http.close()
    finally:
        server.stop()


def test_invitations_are_for_owners_to_make_and_work_once(api: ApiServer) -> None:
    owner = sign_up(api.url)
    _problem(owner.http.post("/dashboard/api/invites", json={"email": _email()}), 403, "csrf_failed")
    bad = owner.http.post(
        "/dashboard/api/invites", json={"email": "not an email"}, headers={"X-CSRF-Token": owner.csrf}
    )
    _problem(bad, 400, "invalid_request")
    assert [e["path"] for e in bad.json()["errors"]] == ["$.email"]
    email = _email("invited")
    replaced = invite(owner, email)
    token = invite(owner, email)  # a new invitation to the same email replaces the pending one
    assert [i["email"] for i in owner.http.get("/dashboard/api/invites").json()] == [email]
    _problem(accept(api.url, replaced)[1], 404, "invite_invalid")

    _problem(accept(api.url, token[:-2] + "xx")[1], 404, "invite_invalid")
    weak = accept(api.url, token, "short")[1]
    _problem(weak, 400, "invalid_request")
    assert [e["path"] for e in weak.json()["errors"]] == ["$.password"]
    member, joined = accept(api.url, token)
    assert joined.status_code == 201, joined.text
    me = member.get("/dashboard/api/session").json()
    assert (me["email"], me["role"], me["client_name"]) == (
        email,
        "member",
        owner.http.get("/dashboard/api/session").json()["client_name"],
    )
    _problem(accept(api.url, token)[1], 404, "invite_invalid")  # once only
    assert owner.http.get("/dashboard/api/invites").json() == []
    assert sorted(m["email"] for m in owner.http.get("/dashboard/api/members").json()) == sorted([owner.email, email])

    # members may not invite, nor see pending invitations
    csrf = _page_token(member, "/dashboard")
    _problem(
        member.post("/dashboard/api/invites", json={"email": _email()}, headers={"X-CSRF-Token": csrf}),
        403,
        "owner_only",
    )
    _problem(member.get("/dashboard/api/invites"), 403, "owner_only")
    member.close()


def test_sign_up_checks_the_email_and_password_and_names_the_fields(api: ApiServer) -> None:
    with httpx.Client(base_url=api.url, headers={"X-Forwarded-For": _address()}, timeout=30) as http:
        token = _page_token(http, "/dashboard/signup")
        r = http.post(
            "/auth/signup", json={"email": "nope", "password": "aaaaaaaaaaaa"}, headers={"X-CSRF-Token": token}
        )
        _problem(r, 400, "invalid_request")
        assert {e["path"] for e in r.json()["errors"]} == {"$.email", "$.password"}
    b = sign_up(api.url)
    with httpx.Client(base_url=api.url, headers={"X-Forwarded-For": _address()}, timeout=30) as http:
        token = _page_token(http, "/dashboard/signup")
        again = http.post("/auth/signup", json={"email": b.email.upper(), "password": PASSWORD},
                          headers={"X-CSRF-Token": token})  # fmt: skip
        _problem(again, 409, "email_taken")


async def test_people_see_only_their_own_clients_jobs_keys_and_deliveries(stack: Stack, api: ApiServer) -> None:
    a, b = sign_up(api.url), sign_up(api.url)
    job = b.http.post("/v1/jobs", json=SPEC, headers={"X-CSRF-Token": b.csrf}).json()
    key = b.http.post("/dashboard/api/keys", json={"name": "b's"}, headers={"X-CSRF-Token": b.csrf}).json()

    # a member of A's client, added by an operator
    pool = await open_pool(stack.env["PIXELFLOW_DATABASE_URL"], max_size=1)
    try:
        repo = UserRepo(pool)
        owner = next(u for u in await repo.list() if u.email == a.email)
        member_email = _email("member")
        await repo.create(owner.client_id, member_email, hash_password(PASSWORD), "member")
    finally:
        await pool.close()
    member = httpx.Client(base_url=api.url, headers={"X-Forwarded-For": _address()}, timeout=30)
    token = _page_token(member, "/dashboard/login")
    r = member.post("/auth/login", json={"email": member_email, "password": PASSWORD}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200
    csrf = _page_token(member, "/dashboard")
    me = member.get("/dashboard/api/session").json()
    assert me["role"] == "member" and me["client_id"] == str(owner.client_id)

    for viewer, h in ((a.http, a.csrf), (member, csrf)):
        assert job["id"] not in viewer.get("/v1/jobs").text
        for path in (f"/v1/jobs/{job['id']}", f"/v1/jobs/{job['id']}/deliveries",
                     f"/v1/jobs/{job['id']}/variants/small"):  # fmt: skip
            _problem(viewer.get(path, follow_redirects=False), 404, "not_found")
        for path in (f"/v1/jobs/{job['id']}/cancel", f"/v1/jobs/{job['id']}/start",
                     f"/v1/jobs/{job['id']}/deliveries/redeliver"):  # fmt: skip
            _problem(viewer.post(path, headers={"X-CSRF-Token": h}), 404, "not_found")
        assert key["record"]["id"] not in viewer.get("/dashboard/api/keys").text
        assert viewer.get("/v1/usage").json()["days"] == []
    _problem(a.http.post(f"/dashboard/api/keys/{key['record']['id']}/revoke", headers={"X-CSRF-Token": a.csrf}), 404,
             "not_found")  # fmt: skip
    # a member sees the client's keys but may not create or revoke them
    _problem(member.post("/dashboard/api/keys", json={"name": "m"}, headers={"X-CSRF-Token": csrf}), 403, "owner_only")
    assert httpx.get(f"{api.url}/v1/jobs", headers={"Authorization": f"Bearer {key['key']}"}).status_code == 200
    assert b.http.get(f"/v1/jobs/{job['id']}").json()["status"] == "created"
    member.close()


def test_no_password_or_session_token_reaches_the_logs(stack: Stack, tmp_path) -> None:
    """``pixelflow api`` as operators run it, logging at DEBUG."""
    proc = ApiProcess(stack.env, tmp_path / "api.log", PIXELFLOW_LOG_LEVEL="DEBUG").start()
    try:
        b = sign_up(proc.url)
        wrong = "hunter2-but-longer-" + uuid.uuid4().hex[:6]
        assert sign_in(proc.url, b.email, wrong, _address()).status_code == 401
        assert sign_in(proc.url, _email(), wrong, _address()).status_code == 401
        assert b.http.post("/v1/jobs", json=SPEC, headers={"X-CSRF-Token": b.csrf}).status_code == 201
        assert b.http.get("/v1/jobs?token=" + b.session).status_code == 200  # even a token in a URL
        key = b.http.post("/dashboard/api/keys", json={}, headers={"X-CSRF-Token": b.csrf}).json()["key"]
        invitation = invite(b, _email("logged"))
        guest, joined = accept(proc.url, invitation)
        assert joined.status_code == 201
        guest.close()
        session = b.session
        assert b.http.post("/auth/logout", headers={"X-CSRF-Token": b.csrf}).status_code == 200
    finally:
        proc.stop()
    text = "\n".join(proc.lines())
    assert "/auth/login" in text and "/dashboard" in text  # the requests were logged
    # the access log names the client the trusted proxy (the suite, on 127.0.0.1) forwarded for
    assert any('"client": "2001:db8:' in line for line in proc.lines()), text[-2000:]
    for secret in (PASSWORD, wrong, session, session[4:], b.csrf, key, invitation, invitation[4:]):
        assert secret not in text


def test_accepting_invitations_is_limited_per_address(api: ApiServer) -> None:
    address = _address()
    with httpx.Client(base_url=api.url, headers={"X-Forwarded-For": address}, timeout=30) as http:
        form = _page_token(http, "/dashboard/invite")
        answers = [
            http.post("/auth/accept", json={"token": f"pfi_guess{n}", "password": PASSWORD},
                      headers={"X-CSRF-Token": form}).status_code
            for n in range(12)
        ]  # fmt: skip
    assert answers[:10] == [404] * 10 and answers[-1] == 429, answers


def _loopback_peer() -> str:
    """A real peer of its own: Linux routes all of 127/8 to loopback, so a client bound to
    127.a.b.c reaches the API on 127.0.0.1 as a peer no other test is (nor a trusted proxy)."""
    return f"127.{secrets.randbelow(254) + 1}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


def _from_peer(base: str, peer: str, headers: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=base, headers=headers, timeout=30, transport=httpx.HTTPTransport(local_address=peer))


def _sign_ups_until_limited(base: str, connect) -> int:
    """Sign-ups answered 201 before the first 429 (bursts of 10, then 5 a minute, per address)."""
    started = time.monotonic()
    for n in range(40):
        with connect() as http:
            token = _page_token(http, "/dashboard/signup")
            r = http.post("/auth/signup", json={"email": _email("many"), "password": PASSWORD},
                          headers={"X-CSRF-Token": token})  # fmt: skip
        if r.status_code == 429:
            assert 10 <= n <= 10 + (time.monotonic() - started) * 5 / 60 + 1, n
            _problem(r, 429, "sign_up_address_limited")
            return n
        assert r.status_code == 201, r.text
    raise AssertionError("sign-ups were never limited")


def _forged() -> dict[str, str]:
    # X-Forwarded-Proto too: believed, it would make the form's cookie Secure, which httpx then
    # keeps from plain http (the form would fail its CSRF check instead of reaching the limit)
    return {"X-Forwarded-For": _address(), "Forwarded": f'for="[{_address()}]"', "X-Forwarded-Proto": "https"}


def test_forged_forwarding_headers_change_nothing_without_trusted_proxies(stack: Stack) -> None:
    """PIXELFLOW_TRUSTED_PROXIES unset (the default): every per-address limit counts the TCP peer,
    whatever X-Forwarded-For and Forwarded say, and X-Forwarded-Proto makes no cookie Secure."""
    port = free_port()
    server = ApiServer(stack.settings(trusted_proxies="", public_base_url=f"http://127.0.0.1:{port}"), port).start()
    try:
        peer = _loopback_peer()
        # sign-ups: a new forged address each time, one real peer: limited all the same
        _sign_ups_until_limited(server.url, lambda: _from_peer(server.url, peer, _forged()))
        # a spray on one account from one peer, a new forged address each time: the account's
        # budget from that peer runs out (5), as it would without the headers
        owner = _email("owner")
        with _from_peer(server.url, _loopback_peer(), {}) as http:
            token = _page_token(http, "/dashboard/signup")
            r = http.post("/auth/signup", json={"email": owner, "password": PASSWORD}, headers={"X-CSRF-Token": token})
            assert r.status_code == 201, r.text
        sprayer = _loopback_peer()

        def attempt() -> httpx.Response:
            with _from_peer(server.url, sprayer, _forged()) as http:
                token = _page_token(http, "/dashboard/login")
                return http.post("/auth/login", json={"email": owner, "password": "wrong password!"},
                                 headers={"X-CSRF-Token": token})  # fmt: skip

        _, limited = _attempts_until_limited(attempt, 5, 2)
        _problem(limited, 429, "sign_in_account_address_limited")
    finally:
        server.stop()


def test_forwarding_headers_are_believed_only_from_a_trusted_proxy(api: ApiServer) -> None:
    """The suite's API trusts 127.0.0.1 (and nothing else): through it, two forwarded addresses
    have budgets of their own, and the client is the rightmost hop, not what the client wrote
    to the left of it; from any other peer the headers are ignored."""
    first, second = _address(), _address()

    def through_proxy(chain: str):
        return lambda: httpx.Client(base_url=api.url, headers={"X-Forwarded-For": chain}, timeout=30)

    _sign_ups_until_limited(api.url, through_proxy(first))
    # the client's own entry on the left is no way around it: the proxy appended the real one
    with through_proxy(f"{second}, {first}")() as http:
        token = _page_token(http, "/dashboard/signup")
        r = http.post("/auth/signup", json={"email": _email(), "password": PASSWORD}, headers={"X-CSRF-Token": token})
        _problem(r, 429, "sign_up_address_limited")
    assert sign_up(api.url, address=second).http.get("/dashboard/api/session").status_code == 200  # its own budget
    # Forwarded (RFC 7239) is read too, when there is no X-Forwarded-For
    with httpx.Client(base_url=api.url, headers={"Forwarded": f'for="[{first}]"'}, timeout=30) as http:
        token = _page_token(http, "/dashboard/signup")
        r = http.post("/auth/signup", json={"email": _email(), "password": PASSWORD}, headers={"X-CSRF-Token": token})
        _problem(r, 429, "sign_up_address_limited")
    # a peer that is not a trusted proxy: its forged headers count for nothing
    peer = _loopback_peer()
    _sign_ups_until_limited(api.url, lambda: _from_peer(api.url, peer, _forged()))
