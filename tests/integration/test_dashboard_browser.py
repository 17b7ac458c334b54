"""The dashboard in real Chromium (Debian's ``chromium``, driven by Playwright) against the real
stack: API, worker, PostgreSQL, Redis and LocalStack S3. A person signs up, creates a key, drops
a generated image, fixes the spec the validator points at, uploads straight to S3, watches the
job succeed, checks every variant's pixels and downloads one, sees the webhook's deliveries,
revokes the key and signs out.

Screenshots of every page go to ``$DASHBOARD_SCREENSHOTS`` if set, else to the test's tmp
directory (its path is printed); they are not committed."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from standardwebhooks.webhooks import Webhook

from devstack.browser import chromium
from devstack.imagegen import encode, photo
from devstack.receiver import WebhookReceiver
from tests.integration.conftest import ApiServer, Stack, WorkerProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(chromium() is None, reason="chromium is not installed (build/services.sh installs it)"),
]

# The spec the person pastes: the second variant's width is 0, which the validator refuses at
# its path; the fix sets it to 120.
BROKEN = {
    "version": 1,
    "metadata": {"order": "42"},
    "pipeline": [
        {"id": "large", "steps": [{"op": "resize", "width": 320, "fit": "inside"}], "format": "webp"},
        {"id": "thumb", "action": "resize", "width": 0, "height": 90, "format": "jpeg"},
        {"id": "mono", "from": "large", "steps": [{"op": "grayscale"}], "format": "png"},
    ],
}
SOURCE = (640, 480)
BY = "\N{MULTIPLICATION SIGN}"  # as the page writes sizes, 640 BY 480
EXPECTED = {"large": (320, 240), "thumb": (120, 90), "mono": (320, 240)}

_DROP = """async ([name, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
  const zone = document.querySelector("#drop");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }
}"""


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    where = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path / "screenshots")
    where.mkdir(parents=True, exist_ok=True)
    print(f"dashboard screenshots: {where}")
    return where


def test_a_person_runs_a_job_from_sign_up_to_sign_out(
    stack: Stack, api: ApiServer, worker: WorkerProcess, receiver: WebhookReceiver, shots: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse battery staple"
    hook = receiver.url(f"/dashboard/{uuid.uuid4().hex[:8]}")
    spec = json.loads(json.dumps(BROKEN)) | {"webhook_url": hook}
    image = encode(photo(*SOURCE), ".jpg")
    s3_host = urlsplit(f"http://{stack.env['PIXELFLOW_S3_ENDPOINT']}").hostname

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=api.url)
        page = context.new_page()
        page.set_default_timeout(60_000)  # a hang guard: a loaded machine slows Chromium down
        problems: list[str] = []
        hosts: set[str] = set()
        # The validator's 422s and the refused sign-up's 400 are answers the page shows; anything
        # else logged as an error (a script error, a CSP violation, a failed request) is a defect.
        expected = "Failed to load resource: the server responded with a status of 4"
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" and expected not in m.text else None)
        page.on("requestfailed", lambda r: problems.append(f"{r.url}: {r.failure}") if "blob:" not in r.url else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: hosts.add(urlsplit(r.url).hostname or r.url.split(":")[0]))

        def go(where: str, path: str, on: Page | None = None) -> None:
            """Follow a link and wait for the page's script to have wired its forms."""
            p = on or page
            p.get_by_role("link", name=where, exact=True).first.click()
            expect(p).to_have_url(f"{api.url}{path}")
            expect(p.locator("body[data-ready]")).to_have_count(1)

        def shot(name: str) -> None:
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

        # Sign up: a too-short password is refused next to its field, then the account is made.
        page.goto(f"{api.url}/dashboard")
        expect(page).to_have_url(f"{api.url}/dashboard/login")
        expect(page.locator("body[data-ready]")).to_have_count(1)
        shot("01-login")
        go("Sign up", "/dashboard/signup")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill("short")
        page.get_by_role("button", name="Create account").click()
        expect(page.locator("#password-error")).to_contain_text("at least 10 characters")
        expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
        shot("02-signup-error")
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Create account").click()
        expect(page).to_have_url(f"{api.url}/dashboard")
        expect(page.locator("#empty")).to_be_visible()
        expect(page.locator(".who")).to_contain_text(email)
        shot("03-jobs-empty")

        # An API key, shown once, copied with the button.
        go("API keys", "/dashboard/keys")
        page.get_by_label("Name of the new key").fill("ci server")
        page.get_by_role("button", name="Create key").click()
        expect(page.get_by_label("New API key")).to_have_value(re.compile(r"^pf_"))
        key = page.get_by_label("New API key").input_value()
        page.get_by_role("button", name="Copy", exact=True).click()
        expect(page.locator("#copied")).to_have_text("Copied to the clipboard.")
        assert page.evaluate("navigator.clipboard.readText()") == key
        expect(page.locator("#keys tbody tr")).to_have_count(1)
        # the client's webhook signing secret: a new one, shown once, that signs the job's webhook below
        page.once("dialog", lambda d: d.accept())
        page.get_by_role("button", name="Create a new signing secret").click()
        expect(page.get_by_label("New webhook signing secret")).to_have_value(re.compile(r"^whsec_"))
        signing_secret = page.get_by_label("New webhook signing secret").input_value()
        shot("04-keys-created")
        assert httpx.get(f"{api.url}/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200

        # New job: drop the image, paste the broken spec; the error is shown at its field.
        go("New job", "/dashboard/new")
        page.evaluate(_DROP, ["photo.jpg", base64.b64encode(image).decode()])
        expect(page.locator("#file-list")).to_contain_text(f"photo.jpg: {SOURCE[0]}{BY}{SOURCE[1]}")
        page.get_by_label("Job spec (JSON)").fill(json.dumps(spec, indent=2))
        problem = page.locator('#spec-errors li.problem[data-path="$.pipeline[1].width"]')
        expect(problem).to_contain_text("Expected int >= 1")
        expect(page.get_by_label("Job spec (JSON)")).to_have_attribute("aria-invalid", "true")
        problem.get_by_role("button", name="Show in spec").click()
        text = json.dumps(spec, indent=2)
        start, end = page.evaluate("[document.activeElement.selectionStart, document.activeElement.selectionEnd]")
        assert text[start:end] == "0", text[start - 20 : end + 5]  # the failing value itself is selected
        shot("05-new-job-error")
        page.get_by_role("button", name="Upload and start").click()
        expect(page.locator("#form-error")).to_contain_text("Fix the spec first")

        spec["pipeline"][1]["width"] = 120
        page.get_by_label("Job spec (JSON)").fill(json.dumps(spec, indent=2))
        expect(page.locator("#spec-errors")).to_have_text("The spec is valid.")
        for variant, (w, h) in EXPECTED.items():
            row = page.locator(f'#prediction tr[data-variant="{variant}"] td')
            expect(row.nth(2)).to_have_text(str(w))
            expect(row.nth(3)).to_have_text(str(h))
        shot("06-new-job-valid")

        # Upload straight to S3 with the presigned URL, start, and follow it to its page.
        with page.expect_request(lambda r: r.method == "PUT" and urlsplit(r.url).hostname == s3_host):
            page.get_by_role("button", name="Upload and start").click()
        page.wait_for_url(f"{api.url}/dashboard/jobs/*")
        job_id = page.url.rsplit("/", 1)[1]
        expect(page.locator("#summary .status")).to_have_text("succeeded", timeout=60_000)
        cards = page.locator("li.variant")
        expect(cards).to_have_count(len(EXPECTED))
        for variant, (w, h) in EXPECTED.items():
            img = page.locator(f'li.variant[data-variant="{variant}"] img')
            expect(img).to_have_js_property("complete", True)
            natural = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
            assert tuple(natural) == (w, h), (variant, natural)
            expect(page.locator(f'li.variant[data-variant="{variant}"] .dims')).to_contain_text(f"{w}{BY}{h}")
        expect(page.locator("#source")).to_contain_text(f"{SOURCE[0]}{BY}{SOURCE[1]}")
        expect(page.locator("#source")).to_contain_text("jpeg")
        expect(page.locator("#summary")).to_contain_text("Processing")

        with page.expect_download() as download:
            page.get_by_role("button", name="Download thumb").click()
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        assert saved.name == "thumb.jpg"
        with Image.open(io.BytesIO(saved.read_bytes())) as got:
            assert (got.format, got.size) == ("JPEG", EXPECTED["thumb"])

        # The webhook's delivery with its attempt, signed with the secret the page showed, and a redelivery.
        (delivered,) = receiver.wait(urlsplit(hook).path, 1, timeout=60)
        event = Webhook(signing_secret).verify(delivered.body, delivered.headers)
        assert event["data"]["job_id"] == job_id
        expect(page.locator("#deliveries tbody tr")).to_have_count(1, timeout=60_000)
        expect(page.locator("#deliveries")).to_contain_text("job.succeeded")
        expect(page.locator("#deliveries ol.attempts li").first).to_contain_text("HTTP 200")
        page.get_by_role("button", name="Send the last event again").click()
        expect(page.locator("#flash")).to_have_text("The last event was queued again.")
        expect(page.locator("#deliveries tbody tr")).to_have_count(2, timeout=60_000)
        shot("07-job-succeeded")

        # The list shows it, filtered by status.
        go("Jobs", "/dashboard")
        row = page.locator(f'#jobs tr[data-job-id="{job_id}"]')
        expect(row).to_contain_text("succeeded")
        page.get_by_label("Status").select_option("failed")
        page.get_by_role("button", name="Apply filters").click()
        expect(row).to_have_count(0)
        expect(page.locator("#empty")).to_be_visible()
        page.get_by_label("Status").select_option("succeeded")
        page.get_by_role("button", name="Apply filters").click()
        expect(row).to_have_count(1)
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
        page.get_by_label("Created on or after").fill(tomorrow)
        page.get_by_role("button", name="Apply filters").click()
        expect(row).to_have_count(0)
        page.get_by_label("Created on or after").fill("")
        page.get_by_label("Created before").fill(tomorrow)
        page.get_by_role("button", name="Apply filters").click()
        expect(row).to_have_count(1)
        shot("08-jobs")

        # A file that is not an image: the job fails at start, and its page says why.
        go("New job", "/dashboard/new")
        page.evaluate(_DROP, ["notes.jpg", base64.b64encode(b"these are notes, not pixels\n" * 20).decode()])
        expect(page.locator("#file-list")).to_contain_text("notes.jpg")
        expect(page.locator("#spec-errors")).to_have_text("The spec is valid.")
        page.get_by_role("button", name="Upload and start").click()
        run = page.locator("#run-list li")
        expect(run.locator(".state")).to_contain_text("not", timeout=60_000)
        failed_id = run.get_attribute("data-job-id")
        page.goto(f"{api.url}/dashboard/jobs/{failed_id}")
        expect(page.locator("#summary .status")).to_have_text("failed")
        expect(page.locator("#summary")).to_contain_text("unsupported_format: ")
        expect(page.get_by_role("button", name="Cancel job")).to_be_hidden()
        shot("09-job-failed")

        go("Usage", "/dashboard/usage")
        cells = page.locator("#usage tbody tr td")
        expect(page.locator("#usage tbody tr")).to_have_count(1)
        for column, value in ((1, "2"), (2, "1"), (3, "1"), (4, "0"), (5, f"{SOURCE[0] * SOURCE[1] / 1e6:.2f}")):
            expect(cells.nth(column)).to_have_text(value)  # jobs, succeeded, failed, canceled, source megapixels
        expect(cells.nth(3)).to_have_attribute("title", "unsupported_format 1")  # the failures by code
        shot("10-usage")

        # Invite a member: they join through the link (its token in the fragment) and see the job.
        go("Team", "/dashboard/team")
        expect(page.locator("#members tbody tr")).to_have_count(1)
        invitee = f"bob-{uuid.uuid4().hex[:8]}@example.com"
        page.get_by_label("Their email").fill(invitee)
        page.get_by_role("button", name="Create invitation").click()
        expect(page.get_by_label("Invitation link")).to_have_value(
            re.compile(rf"^{re.escape(api.url)}/dashboard/invite#pfi_")
        )
        link = page.get_by_label("Invitation link").input_value()
        expect(page.locator("#invites tbody tr")).to_contain_text(invitee)
        shot("11-team-invited")
        other = browser.new_context()
        guest = other.new_page()
        guest.goto(link)
        expect(guest.locator("body[data-ready]")).to_have_count(1)
        guest.get_by_label("Password").fill("bob's own passphrase")
        guest.get_by_role("button", name="Join").click()
        expect(guest).to_have_url(f"{api.url}/dashboard")
        expect(guest.locator(".who")).to_contain_text(f"{invitee} · ")
        expect(guest.locator(".who")).to_contain_text("(member)")
        expect(guest.locator(f'#jobs tr[data-job-id="{job_id}"]')).to_contain_text("succeeded")
        go("API keys", "/dashboard/keys", guest)
        expect(guest.locator("#keys tbody tr")).to_have_count(1)
        expect(guest.get_by_role("button", name="Create key")).to_be_hidden()  # owners manage keys
        guest.goto(link)  # used: the link works once
        expect(guest.locator("body[data-ready]")).to_have_count(1)
        guest.get_by_label("Password").fill("another passphrase")
        guest.get_by_role("button", name="Join").click()
        expect(guest.locator("#form-error")).to_contain_text("unknown, used or expired")
        other.close()
        page.reload()
        expect(page.locator("#members tbody tr")).to_have_count(2)
        expect(page.locator("#invites tbody tr")).to_have_count(0)

        # Revoke the key: it stops working at once.
        go("API keys", "/dashboard/keys")
        page.once("dialog", lambda d: d.accept())
        page.get_by_role("button", name="Revoke key ci server").click()
        expect(page.locator("#keys tbody tr td").nth(3)).to_contain_text("revoked")
        assert httpx.get(f"{api.url}/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 401
        shot("12-keys-revoked")

        # Sign out: back to the sign-in page, and the dashboard stays closed.
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(f"{api.url}/dashboard/login")
        page.goto(f"{api.url}/dashboard/keys")
        expect(page).to_have_url(f"{api.url}/dashboard/login")
        shot("13-signed-out")
        browser.close()

    assert problems == [], problems  # no script error, no CSP violation, no failed request logged
    assert hosts <= {"127.0.0.1", s3_host, "blob", "data"}, hosts  # nothing from the internet


def test_keyboard_alone_signs_in(stack: Stack, api: ApiServer, shots: Path) -> None:
    """Labels, focus order and the Enter key: a person without a mouse gets in."""
    from playwright.sync_api import expect, sync_playwright

    email = f"kb-{uuid.uuid4().hex[:8]}@example.com"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"{api.url}/dashboard/signup")
        expect(page.locator("body[data-ready]")).to_have_count(1)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Tab")  # the brand link
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "email"
        page.keyboard.type(email)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "password"
        page.keyboard.type("a long enough passphrase")
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{api.url}/dashboard")
        browser.close()


_SAVE = """async (bodies) => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  for (const body of bodies) {
    const r = await fetch("/v1/templates", {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    });
    if (r.status !== 201) throw new Error(`saving a template: HTTP ${r.status}`);
  }
}"""


def test_the_templates_page_lists_versions_and_renders_a_diff(stack: Stack, api: ApiServer, shots: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.integration.test_templates import _third, product

    email = f"tpl-{uuid.uuid4().hex[:8]}@example.com"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)  # a hang guard: a loaded machine slows Chromium down
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"{api.url}/dashboard/signup")
        expect(page.locator("body[data-ready]")).to_have_count(1)
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill("a long enough passphrase")
        page.get_by_role("button", name="Create account").click()
        expect(page).to_have_url(f"{api.url}/dashboard")
        expect(page.locator("body[data-ready]")).to_have_count(1)
        page.evaluate(_SAVE, [product(200), product(300), _third(product(300))])  # versions 1, 2, 3

        page.get_by_role("link", name="Templates", exact=True).click()
        expect(page).to_have_url(f"{api.url}/dashboard/templates")
        row = page.locator("#templates tbody tr")
        expect(row).to_have_count(1)
        expect(row.locator("td").nth(1)).to_have_text("3")
        page.get_by_role("link", name="product", exact=True).click()
        expect(page.get_by_role("heading", name="product", exact=True)).to_be_visible()
        expect(page.locator("#versions tbody tr")).to_have_count(3)
        expect(page.locator("#versions tbody tr").first).to_have_attribute("data-version", "3")
        # by default, the latest version against the one before it
        expect(page.locator("#diff-title")).to_have_text("Changes from version 2 to 3")
        changes = page.locator("#diff li")
        expect(changes).to_have_count(3)
        expect(changes.locator("code.path")).to_have_text(
            ["$.spec.metadata", "$.spec.pipeline[1]", "$.parameters.size.default"]
        )
        expect(changes.nth(0)).to_have_class("change change-remove")
        expect(changes.nth(2).locator("del")).to_have_text("12")
        expect(changes.nth(2).locator("ins")).to_have_text("18")
        page.screenshot(path=str(shots / "20-template-diff.png"), full_page=True)

        page.get_by_label("From version").select_option("1")
        page.get_by_label("to version").select_option("2")
        page.get_by_role("button", name="Compare").click()
        expect(page.locator("#diff-title")).to_have_text("Changes from version 1 to 2")
        expect(changes).to_have_count(1)
        expect(changes.first.locator("code.path")).to_have_text("$.spec.pipeline[0].steps[0].width")
        expect(changes.first.locator("del")).to_have_text("200")
        expect(changes.first.locator("ins")).to_have_text("300")
        page.locator("#versions tbody tr").last.get_by_text("Show").click()  # a version's spec, as saved
        expect(page.locator("#versions tbody tr").last.locator("pre")).to_contain_text('"width": 200')
        page.screenshot(path=str(shots / "21-template-versions.png"), full_page=True)
        browser.close()
    assert problems == [], problems
