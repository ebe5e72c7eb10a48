"""The web page in a real headless browser (Debian's chromium driven by Playwright): search, click, play."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("C2KD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


REQUIRED = os.environ.get("C2KD_REQUIRE_BROWSER") == "1"  # set by .ci/run: in CI the page tests must run


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        message = f"no chromium at {CHROMIUM}: install it with `apt-get install -y chromium` (CI does)"
        pytest.fail(message) if REQUIRED else pytest.skip(message)
    try:
        from playwright import sync_api
    except ImportError:
        message = "Playwright is not installed: pip install playwright (part of the dev extra)"
        pytest.fail(message) if REQUIRED else pytest.skip(message)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def test_search_click_and_play_from_the_moment(browser, live_server):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_server + "/")
    page.wait_for_function("document.querySelectorAll('#lang option').length > 50")  # languages loaded
    page.select_option("#lang", "de")
    page.fill("#q", "ein Hund läuft im Park")
    page.fill("#k", "30")
    page.click("#go")
    page.wait_for_selector(".card")
    assert page.locator(".card").count() == 30
    assert "results in" in page.inner_text("#status")
    card = page.locator(".card:has(video)").first
    src = card.locator("video").get_attribute("src")
    start = float(card.get_attribute("data-start"))
    assert src.startswith("/media/clips/") and src.endswith(f"#t={card.get_attribute('data-start')}")
    card.locator("h2").click()
    page.wait_for_function(
        "s => { const v = document.querySelector('.card.playing video');"
        " return v && v.readyState >= 1 && Math.abs(v.currentTime - s) < 1.5; }", arg=start, timeout=20_000)
    assert page.locator(".card.playing").count() == 1
    duration = page.evaluate("document.querySelector('.card.playing video').duration")
    assert duration > start  # the file really loaded (through the byte-range endpoint) and the moment is inside
    assert not errors


def test_page_shows_errors(browser, live_server):
    page = browser.new_page()
    page.goto(live_server + "/")
    page.fill("#q", "   ")
    page.click("#go")
    page.wait_for_selector("#error:not([hidden])")
    assert "Type a few words" in page.inner_text("#error")
    page.fill("#q", "dog " * 130)  # over the server's limit: its message is shown
    page.evaluate("document.getElementById('q').removeAttribute('maxlength')")
    page.fill("#q", "dog " * 130)
    page.click("#go")
    page.wait_for_function("document.getElementById('error').textContent.includes('limit is')")
    assert page.locator(".card").count() == 0
