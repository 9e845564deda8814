"""The web page in headless Chromium: type a prompt, watch the status, play the video, see the task listed."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_helpers import TINY_SIDE, ServiceProcess

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)"
)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def test_page_generates_and_plays_a_video(live: ServiceProcess, new_key, browser) -> None:
    key = new_key()
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(live.url + "/")
    page.wait_for_function("document.getElementById('model').textContent.startsWith('kinema-tiny')")
    assert page.is_visible("#key")  # the live service requires keys

    # A wrong key: the page shows MiniMax's 1004 instead of failing silently.
    page.fill("#key", "wrong-key")
    page.fill("#prompt", "a yellow circle moves down")
    page.click("#generate")
    page.wait_for_selector("#error:not([hidden])")
    assert "1004" in page.text_content("#error")

    page.fill("#key", key)
    page.fill("#seed", "3")
    page.click("#generate")
    page.wait_for_selector("#status[data-status='Success']", timeout=90_000)
    page.wait_for_function("document.getElementById('player').readyState >= 2", timeout=30_000)
    assert page.evaluate("document.getElementById('player').videoWidth") == TINY_SIDE
    assert page.get_attribute("#player", "src").startswith(live.url + "/v1/files/content/")
    assert page.is_hidden("#error")

    # The task is listed (newest first), with its prompt shown as text.
    page.wait_for_selector("#tasks li .status[data-status='Success']")
    assert page.text_content("#tasks li .prompt") == "a yellow circle moves down"
    assert page.is_hidden("#no-tasks")

    # The key is remembered: a reload lists the same task without typing it again.
    page.reload()
    page.wait_for_selector("#tasks li")
    assert page.input_value("#key") == key
    assert errors == []
