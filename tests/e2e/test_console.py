"""The web console in a real browser (Debian's chromium, driven by Playwright) against the live stack: what a
person does, end to end. Every page is checked with axe-core (no serious or critical violation) and photographed
at desktop and phone sizes into var/screenshots/ (not committed). The figures the issue names (bundle size, file
chosen -> live progress, send -> first token painted) are printed and written to var/web-bench.json."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from playwright.async_api import Browser, Page, async_playwright, expect
from pydantic import SecretStr
from temporalio.client import Client

from nexus.core.db import session_scope
from nexus.ops.schedules import ensure_schedules, list_schedules
from nexus.runtime import Runtime
from tests.api.test_signin import ALICE, oidc_mock  # noqa: F401 (a fixture)
from tests.conftest import Account, MakeAccount, follow_job, overridden
from tests.e2e.test_integrations import provider, spotify, stop_refresh_workflows  # noqa: F401 (fixtures)
from tests.e2e.test_media_pipeline import ingest_upload
from tests.fake_llm import FakeLLM
from tests.harness import LiveServer
from tests.oauth_provider import OAuthProvider

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "web" / "dist"
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ROOT / "var" / "screenshots"
BENCH = ROOT / "var" / "web-bench.json"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (make test installs it)"),
    pytest.mark.timeout(400),
]
# A disk-bound machine can stall a request for seconds (Playwright's default wait is 5 s).
expect.set_options(timeout=20_000)
figures: dict[str, float] = {}
page_errors: list[str] = []


@pytest.fixture(scope="module")
async def browser(clips: dict[str, Path]) -> AsyncIterator[Browser]:
    assert (DIST / "index.html").is_file(), "the console is not built: run `make web` (make test does)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--autoplay-policy=no-user-gesture-required",
                # The microphone: Chromium's fake capture device, fed by a WAV of speech.
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={clips['a_wav']}",
            ],
        )
        yield launched
        await launched.close()
    if figures:
        BENCH.write_text(json.dumps(figures, indent=2))
        print("\nweb console figures:", json.dumps(figures))


async def signed_in(browser: Browser, live_api: LiveServer, account: Account, dark: bool = False) -> Page:
    """A new browser, signed in the way a person does it: the API key typed into the sign-in page."""
    context = await browser.new_context(
        viewport=DESKTOP,
        base_url=live_api.url,
        permissions=["microphone"],
        color_scheme="dark" if dark else "light",
    )
    page = await context.new_page()
    page.on("pageerror", lambda error: page_errors.append(f"{page.url}: {error}"))
    # React reports a crashed render on the console; a refused request (the sign-in probe's 401) is no error.
    page.on(
        "console",
        lambda m: (
            m.type == "error"
            and "Failed to load resource" not in m.text
            and page_errors.append(f"{page.url}: {m.text}")
        ),
    )
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/signin"))
    await page.get_by_label("API key").fill(account.token)
    await page.get_by_role("button", name="Sign in with API key").click()
    await expect(page).to_have_url(re.compile(r"/library$"))
    await expect(page.get_by_role("heading", name="Library")).to_be_visible()
    return page


async def check_page(page: Page, name: str) -> None:
    """No script error so far; axe-core finds no serious or critical violation; a screenshot at desktop and at
    phone width, where nothing scrolls sideways."""
    assert not page_errors, page_errors
    await page.add_script_tag(path=str(AXE))
    found = await page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{name}: {bad}"
    await page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=str(SHOTS / f"{name}-phone.png"), full_page=True)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, f"{name} scrolls sideways at 375 px ({width} px wide)"
    await page.set_viewport_size(DESKTOP)


async def player_time(page: Page) -> float:
    """The player's position once it knows the media's duration."""
    await page.wait_for_function("() => document.querySelector('video')?.readyState >= 1")
    return float(await page.evaluate("document.querySelector('video').currentTime"))


async def test_a_recording_goes_from_upload_to_transcript_search_and_a_cited_answer(
    browser: Browser, live_api: LiveServer, make_account: MakeAccount, clips: dict[str, Path]
) -> None:
    account = await make_account()
    page = await signed_in(browser, live_api, account)
    await check_page(page, "library-empty")

    # Upload: the job view shows live progress from the event stream.
    began = time.perf_counter()
    await page.set_input_files("#upload-file", str(clips["a_mp3"]))
    await expect(page).to_have_url(re.compile(r"/jobs/"))
    await expect(page.locator(".events li").first).to_be_visible()
    figures["file_chosen_to_live_progress_ms"] = round((time.perf_counter() - began) * 1000)
    await expect(page.get_by_test_id("job-stage")).to_contain_text("completed", timeout=180_000)
    await check_page(page, "job")

    # The media page: click a transcript line and the player goes there.
    await page.get_by_role("link", name="Open the media item").click()
    segments = page.locator("button.segment")
    await expect(segments.first).to_be_visible()
    await player_time(page)
    assert await segments.count() >= 2
    target = segments.nth(1)
    start = float(await target.get_attribute("data-start") or "0")
    assert start > 0
    await target.click()
    assert abs(await player_time(page) - start) < 1.0
    await expect(page.locator(".transcript li.current")).to_have_count(1)
    vtt = await page.request.get(page.url.split("?")[0].replace("/media/", "/api/media/") + "/transcript.vtt")
    assert vtt.ok and (await vtt.text()).startswith("WEBVTT")
    await check_page(page, "media")

    # Search, and land on the second it was said.
    await page.get_by_role("link", name="Search").click()
    await page.get_by_label("Search your recordings").fill("leather notebook")
    await page.get_by_role("button", name="Search", exact=True).click()
    hit = page.locator("button.result").first
    await expect(hit).to_contain_text("notebook")
    await check_page(page, "search")
    await hit.click()
    await expect(page).to_have_url(re.compile(r"/media/.+\?t=\d+"))
    second = int(page.url.rsplit("t=", 1)[1])
    assert abs(await player_time(page) - second) < 1.0

    # Chat: a streamed answer whose citation opens the player at the cited second.
    await page.get_by_role("link", name="Chat").click()
    await expect(page.get_by_role("heading", name="Chat")).to_be_visible()
    assert not page_errors, page_errors
    await page.get_by_label("Message").fill("What did the lighthouse keeper write in?")
    began = time.perf_counter()
    await page.get_by_role("button", name="Send").click()
    answer = page.get_by_test_id("message-assistant").last
    await page.wait_for_function(
        "() => { const m = [...document.querySelectorAll('[data-testid=message-assistant] .content')].pop();"
        " return m && m.textContent.trim() && !m.textContent.includes('Thinking'); }",
        polling="raf",
    )
    figures["send_to_first_token_painted_ms_first_turn"] = round((time.perf_counter() - began) * 1000)
    citation = answer.locator("button.citation").first
    await expect(citation).to_be_visible(timeout=30_000)
    # A second question in the same conversation: the figure a user lives with once the stack is warm.
    await page.get_by_label("Message").fill("And when did he light the lamp?")
    began = time.perf_counter()
    await page.get_by_role("button", name="Send").click()
    await page.wait_for_function(
        "() => { const m = [...document.querySelectorAll('[data-testid=message-assistant] .content')];"
        " return m.length === 2 && m[1].textContent.trim() && !m[1].textContent.includes('Thinking'); }",
        polling="raf",
    )
    figures["send_to_first_token_painted_ms"] = round((time.perf_counter() - began) * 1000)
    await expect(page.get_by_test_id("message-assistant").nth(1).locator("button.citation").first).to_be_visible(
        timeout=30_000
    )
    await expect(page).to_have_url(re.compile(r"/chat/[0-9a-f-]{36}$"))
    await check_page(page, "chat")
    await citation.click()
    await expect(page).to_have_url(re.compile(r"/media/.+\?t=\d+"))
    assert abs(await player_time(page) - int(page.url.rsplit("t=", 1)[1])) < 1.0

    # Settings: a new key is shown once; sign out lands on the sign-in page.
    await page.get_by_role("link", name="Settings").click()
    await page.get_by_label("Name").fill("laptop")
    await page.get_by_role("button", name="Create key").click()
    shown = await page.get_by_test_id("new-key").text_content()
    assert shown and shown.startswith("nx_")
    async with httpx.AsyncClient(base_url=live_api.url) as raw:
        assert (await raw.get("/api/me", headers={"Authorization": f"Bearer {shown}"})).status_code == 200
    await check_page(page, "settings")
    background = "getComputedStyle(document.body).backgroundColor"
    await page.get_by_label("Theme").select_option("dark")
    assert await page.evaluate(background) == "rgb(17, 19, 24)"
    await page.get_by_label("Theme").select_option("light")
    assert await page.evaluate(background) == "rgb(255, 255, 255)"
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("button", name="Sign in with API key")).to_be_visible()
    await check_page(page, "signin")
    await page.goto("/library")
    await expect(page).to_have_url(re.compile(r"/signin"))
    await page.context.close()

    js = sum(len(gzip.compress(p.read_bytes())) for p in (DIST / "assets").glob("*.js"))
    css = sum(len(gzip.compress(p.read_bytes())) for p in (DIST / "assets").glob("*.css"))
    figures["initial_js_css_gzip_kb"] = round((js + css) / 1024, 1)


async def test_a_microphone_recording_is_transcribed(
    browser: Browser, live_api: LiveServer, make_account: MakeAccount
) -> None:
    """Chromium's fake microphone plays a WAV of speech; the recorder's level meter moves, stop uploads it as
    source=mic, and its words are in the transcript."""
    page = await signed_in(browser, live_api, await make_account())
    await page.get_by_role("button", name="● Record").click()
    meter = page.get_by_role("meter", name="Microphone level")
    await page.wait_for_function(
        "() => Number(document.querySelector('[role=meter]').getAttribute('aria-valuenow')) > 5"
    )
    await asyncio.sleep(6)  # "The lighthouse keeper counted seven ships..."
    await expect(meter).to_be_visible()
    await page.get_by_role("button", name="■ Stop and upload").click()
    await expect(page).to_have_url(re.compile(r"/jobs/"), timeout=30_000)
    await expect(page.get_by_test_id("job-stage")).to_contain_text("completed", timeout=180_000)
    await page.get_by_role("link", name="Open the media item").click()
    # The fake device resamples espeak's voice and the recorder compresses it: some words blur, these survive.
    await expect(page.locator(".transcript")).to_contain_text(re.compile(r"harbou?r|dawn|counted", re.I))
    await expect(page.locator("p.muted.small").first).to_contain_text("mic")
    await page.context.close()


async def test_an_operator_retries_a_failed_run_and_a_user_connects_an_integration(
    browser: Browser,
    live_api: LiveServer,
    api: httpx.AsyncClient,
    runtime: Runtime,
    make_account: MakeAccount,
    clips: dict[str, Path],
    spotify: OAuthProvider,  # noqa: F811
    temporal_client: Client,
) -> None:
    admin, user = await make_account(admin=True), await make_account()
    fake = FakeLLM()
    fake.fail_with = [401]  # the language model refuses the enrichment once (not retryable): the run fails
    try:
        with overridden(runtime.settings, openai_base_url=fake.url, openai_model="fake-model"):
            title = f"refused-{uuid.uuid4().hex[:8]}"
            submitted, events = await ingest_upload(api, user.headers, clips["b_wav"], title=title)
            assert events[-1]["stage"] == "failed"
            page = await signed_in(browser, live_api, admin)
            await page.get_by_role("link", name="Operator").click()
            await page.get_by_label("Error contains").fill("HTTP 401")
            card = page.locator(".cards li").filter(has_text=title)
            await expect(card).to_be_visible()
            await expect(card).to_contain_text("failed in enriching")
            await expect(card.get_by_role("link", name="Open in Temporal")).to_have_attribute(
                "href", re.compile(f"/workflows/media-{submitted['media_id']}$")
            )
            await ensure_schedules(temporal_client, runtime)  # what the workflows worker does at its start
            try:
                await page.reload()
                schedules = page.locator("table", has=page.locator("caption", has_text="Schedules"))
                await expect(schedules).to_contain_text("Cleanup")
                await expect(schedules).to_contain_text("24 h")
                await check_page(page, "operator")
            finally:
                for info in await list_schedules(temporal_client, runtime):
                    await temporal_client.get_schedule_handle(info.id).delete()
            await page.get_by_label("Error contains").fill("HTTP 401")
            await card.get_by_role("button", name=f"Retry {title}").click()
            await expect(page.get_by_test_id("toast").first).to_contain_text("Retrying")
            final = await follow_job(api, user.headers, submitted["job_id"])
            assert final[-1]["stage"] == "completed"
            await page.context.close()
    finally:
        fake.close()

    # Integrations: connect Spotify through the provider's consent page and back, then disconnect.
    page = await signed_in(browser, live_api, user)
    await page.get_by_role("link", name="Integrations").click()
    await page.get_by_role("button", name="Connect Spotify").click()
    await expect(page).to_have_url(re.compile(r"/integrations"))
    card = page.locator(".cards li").filter(has_text="dj@example.com")
    await expect(card).to_be_visible()
    await expect(card.locator(".badge")).to_have_text("active")
    await check_page(page, "integrations")
    await card.get_by_role("button", name="Disconnect").click()
    await expect(page.get_by_test_id("toast").first).to_contain_text("remove the app at")
    await expect(card.locator(".badge")).to_have_text("revoked")
    await expect(card.get_by_role("button", name="Reconnect")).to_be_visible()
    await page.context.close()


async def test_stop_ends_a_streaming_answer_and_keeps_nothing_of_it(
    browser: Browser, live_api: LiveServer, api: httpx.AsyncClient, runtime: Runtime, make_account: MakeAccount
) -> None:
    """The persona picked applies to the turn; Stop cancels the turn's workflow mid-answer: the page marks the
    answer stopped, and no assistant message is stored. A follow-up continues the same conversation with its
    persona (it started a new conversation each time); leaving for a new conversation mid-answer leaves that
    answer's stream behind (its tokens were written into the next list, and the page crashed)."""
    account = await make_account()
    persona = await api.post(
        "/api/personas", json={"name": "Pirate", "instruction": "Answer like a pirate."}, headers=account.headers
    )
    assert persona.status_code == 201
    fake = FakeLLM()
    fake.answer = " ".join(f"word{i}" for i in range(80))
    fake.chunk_delay_s = 0.3  # 24 s in all: the stop must cut it short
    try:
        with overridden(runtime.settings, openai_base_url=fake.url, openai_model="fake-model"):
            page = await signed_in(browser, live_api, account)
            await page.get_by_role("link", name="Chat").click()
            await page.get_by_label("Persona").select_option(label="Pirate")
            await page.get_by_label("Message").fill("Tell me a long story")
            await page.get_by_role("button", name="Send").click()
            content = page.get_by_test_id("message-assistant").last.locator(".content")
            await expect(content).to_contain_text("word1 ", timeout=30_000)
            await page.get_by_role("button", name="■ Stop").click()
            await expect(content).to_contain_text("(stopped)", timeout=20_000)
            await expect(page.get_by_role("button", name="Send")).to_be_visible()
            shown = await content.text_content() or ""
            assert "word79" not in shown

            fake.answer, fake.chunk_delay_s = "A short one this time.", 0.0
            await page.get_by_label("Message").fill("Something short now")
            await page.get_by_role("button", name="Send").click()
            await expect(page.get_by_test_id("message-assistant").nth(1)).to_contain_text("A short one this time.")
            await expect(page.get_by_label("Persona")).to_have_value(persona.json()["id"])  # the conversation's
            [conversation] = (await api.get("/api/conversations", headers=account.headers)).json()
            messages = (
                await api.get(f"/api/conversations/{conversation['id']}/messages", headers=account.headers)
            ).json()
            assert [m["role"] for m in messages] == ["user", "user", "assistant"]  # one conversation

            fake.answer, fake.chunk_delay_s = " ".join(f"word{i}" for i in range(80)), 0.3
            await page.get_by_label("Message").fill("Another long story")
            await page.get_by_role("button", name="Send").click()
            await expect(page.get_by_test_id("message-assistant").nth(2)).to_contain_text("word1 ", timeout=30_000)
            await page.get_by_role("button", name="New conversation").click()
            await expect(page).to_have_url(re.compile(r"/chat$"))
            await expect(page.get_by_text("Ask about anything you have added")).to_be_visible()
            await page.wait_for_timeout(1500)  # tokens of the answer left behind keep arriving at the server
            await expect(page.get_by_test_id("message-assistant")).to_have_count(0)
            await expect(page.get_by_role("button", name="Send")).to_be_visible()
            assert not page_errors, page_errors
            await page.context.close()
            fake.chunk_delay_s = 0.0  # the answer left behind goes on without the page: let it finish
            async with asyncio.timeout(60):
                while True:
                    url = f"/api/conversations/{conversation['id']}/messages"
                    roles = [m["role"] for m in (await api.get(url, headers=account.headers)).json()]
                    if roles == ["user", "user", "assistant", "user", "assistant"]:  # all in the one conversation
                        break
                    await asyncio.sleep(0.5)
    finally:
        fake.close()
    assert conversation["persona_id"] == persona.json()["id"]


async def test_sign_in_with_google_through_the_providers_consent_page(
    browser: Browser,
    live_api: LiveServer,
    runtime: Runtime,
    oidc_mock: str,  # noqa: F811
) -> None:
    """With Google configured (here: a real OpenID Connect provider on loopback), the sign-in page offers it; the
    provider's consent page signs the user in and brings them back to the page they asked for."""
    with overridden(
        runtime.settings,
        google_client_id="nexus-web",
        google_client_secret=SecretStr("web-secret"),
        google_discovery_url=oidc_mock + "/.well-known/openid-configuration",
        frontend_url=live_api.url,
    ):
        context = await browser.new_context(viewport=DESKTOP, base_url=live_api.url)
        page = await context.new_page()
        await page.goto("/search")
        await expect(page).to_have_url(re.compile(r"/signin\?next=%2Fsearch"))
        await page.get_by_role("link", name="Sign in with Google").click()
        await page.locator("input[name=sub]").fill("alice")
        await page.get_by_role("button", name="Authorize").click()
        await expect(page).to_have_url(re.compile(r"/search$"))
        await expect(page.get_by_role("heading", name="Search")).to_be_visible()
        await expect(page.locator(".email")).to_have_text(ALICE)
        await context.close()


async def tab_to(page: Page, script: str, limit: int = 40) -> None:
    """Press Tab until the focused element passes `script` (a JS predicate of `el`), as a keyboard user does."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate(f"(() => {{ const el = document.activeElement; return !!el && ({script}); }})()"):
            return
    raise AssertionError(f"Tab never reached an element where {script}")


async def test_keyboard_only_in_the_dark_cancel_retry_delete_forget_and_revoke(
    browser: Browser,
    live_api: LiveServer,
    api: httpx.AsyncClient,
    runtime: Runtime,
    make_account: MakeAccount,
    clips: dict[str, Path],
) -> None:
    """The system's dark theme (axe on each page), a run cancelled and retried from its job page, the library's
    filters, a file dropped on the page (the same recording again: a duplicate), the keyboard alone from the
    navigation through search to a transcript line, speaker names, a media item deleted, a memory forgotten, and
    another browser's session revoked."""
    account = await make_account()
    await runtime.memory.add(account.user.id, "Dentist is Dr. Olsen", {"source": "test"})
    async with httpx.AsyncClient(base_url=live_api.url) as other:
        opened = await other.post("/auth/session", headers={**account.headers, "User-Agent": "second-laptop"})
        assert opened.status_code == 200, opened.text
        assert (await other.get("/auth/me")).status_code == 200
        fake = FakeLLM()
        fake.delay_s = 60  # the enrichment hangs until cancelled
        try:
            with overridden(runtime.settings, openai_base_url=fake.url, openai_model="fake-model"):
                page = await signed_in(browser, live_api, account, dark=True)
                assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(17, 19, 24)"
                await check_page(page, "library-empty-dark")
                await page.set_input_files("#upload-file", str(clips["c_webm"]))
                await expect(page).to_have_url(re.compile(r"/jobs/"))
                stage = page.get_by_test_id("job-stage")
                await expect(stage).to_contain_text("enriching", timeout=120_000)
                await page.get_by_role("button", name="Cancel").click()
                await expect(stage).to_contain_text("cancelled", timeout=30_000)
                fake.delay_s = 0
                await page.get_by_role("button", name="Retry").click()
                await expect(stage).to_contain_text("completed", timeout=120_000)
                await check_page(page, "job-dark")
        finally:
            fake.close()

        # The library's filters; then the same recording dropped on the page is found to be a duplicate.
        await page.goto("/library")
        status = page.get_by_label("Status")
        await status.select_option("failed")
        await expect(page.get_by_text("Nothing here yet")).to_be_visible()
        await status.select_option("completed")
        await expect(page.get_by_role("list", name="Media").get_by_role("link")).to_have_count(1)
        await page.evaluate(
            """(bytes) => {
                const files = new DataTransfer();
                files.items.add(new File([new Uint8Array(bytes)], "again.webm", { type: "audio/webm" }));
                const zone = document.querySelector("#upload-file").closest("div");
                zone.dispatchEvent(new DragEvent("drop", { dataTransfer: files, bubbles: true, cancelable: true }));
            }""",
            list(clips["c_webm"].read_bytes()),
        )
        await expect(page).to_have_url(re.compile(r"/jobs/"))
        await expect(page.get_by_test_id("job-stage")).to_contain_text("duplicate", timeout=120_000)

        # The keyboard alone: skip link, the navigation, a search, its result, a transcript line.
        await page.goto("/library")
        await expect(page.get_by_role("heading", name="Library")).to_be_visible()
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
        await tab_to(page, "el.textContent === 'Search' && el.tagName === 'A'")
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(re.compile(r"/search$"))
        assert await page.evaluate("document.activeElement.id") == "main"
        await tab_to(page, "el.id === 'q'")
        await page.keyboard.type("dentist appointment")
        await page.keyboard.press("Enter")
        await expect(page.locator("button.result").first).to_contain_text("dentist")
        await tab_to(page, "el.classList.contains('result')")
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(re.compile(r"/media/.+\?t=\d+"))
        await player_time(page)
        await tab_to(page, "el.classList.contains('segment')")
        start = float(await page.evaluate("document.activeElement.dataset.start"))
        await page.keyboard.press("Enter")
        assert abs(await player_time(page) - start) < 1.0
        # Speaker labels with the name a user gave one (the diarizer's own labels: tests/e2e/test_transcripts.py).
        media_id = page.url.split("?")[0].rsplit("/", 1)[1]
        async with session_scope(runtime.engine) as session:
            await session.execute(
                sa.text("UPDATE transcript_segments SET speaker = 'S1' WHERE media_id = :m"), {"m": media_id}
            )
        named = await api.patch(f"/api/media/{media_id}/speakers", json={"S1": "Margaret"}, headers=account.headers)
        assert named.status_code == 200, named.text
        await page.reload()
        await expect(page.locator(".transcript .speaker").first).to_have_text("Margaret")
        await expect(page.get_by_role("list", name="Duplicates").get_by_role("link")).to_have_count(1)
        # A recording of sound only plays as audio: no picture to show.
        await expect(page.get_by_role("button", name="Show video")).to_have_count(0)
        await expect(page.get_by_role("button", name="Audio only")).to_have_count(0)
        await check_page(page, "media-dark")

        # Delete the item (after confirming): gone from the library and the API.
        media_path = page.url.split("?")[0].replace(live_api.url, "")
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.get_by_role("button", name="Delete").click()
        await expect(page).to_have_url(re.compile(r"/library$"))
        await expect(page.get_by_role("heading", name="Library")).to_be_visible()
        await expect(page.locator(f'a[href="{media_path}"]')).to_have_count(0)
        gone = await other.get("/api" + media_path, headers=account.headers)
        assert gone.status_code == 404, gone.text

        # Forget a memory.
        await page.get_by_role("link", name="Chat").click()
        await page.get_by_text("What Nexus remembers").click()
        forget = page.get_by_role("button", name="Forget: Dentist is Dr. Olsen")
        await expect(forget).to_be_visible()
        await check_page(page, "chat-dark")
        await forget.click()
        await expect(forget).to_have_count(0)
        assert await runtime.memory.list(account.user.id) == []

        # Revoke the other browser's session: its cookie no longer signs it in; this browser's still does.
        await page.get_by_role("link", name="Settings").click()
        await page.get_by_role("button", name="Revoke the session of second-laptop").click()
        await expect(page.get_by_role("button", name="Revoke the session of second-laptop")).to_have_count(0)
        assert (await other.get("/auth/me")).status_code == 401
        await check_page(page, "settings-dark")
        assert (await page.request.get("/auth/me")).ok
        await page.context.close()
