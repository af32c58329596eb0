"""The Live tab in Debian's headless Chromium with a fake camera fed from a real clip: ``python
-m app`` with the golden checkpoint on 127.0.0.1, the webcam streamed through Gradio, labelled
windows arriving on the page, a second browser refused, Stop, and the session's files
downloaded. ``MMN_APP_LIVE_SCREENSHOT=docs/app-live-screenshot.png`` keeps the picture."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import av
import cv2
import httpx
import jsonschema
import pytest

from pipelines.formats.events import EVENTS_COLUMNS
from pose.video import iter_frames
from tests.data import LABELS_SCHEMA
from tests.test_app_server import CHROMIUM, CHROMIUM_FLAGS, CLIP, needs_browser, server  # noqa: F401

WINDOWS_TIMEOUT_MS = 180_000  # pose model load + the first windows on a slow 2-core machine
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
SUFFIXES = ["eaf", "events.csv", "labels.json", "motion.csv", "mp4", "skeleton.h5"]


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory) -> Path:
    """The bundled clip as a Y4M file for Chromium's fake camera (360×432, 30 fps; Chromium loops it)."""
    path = tmp_path_factory.mktemp("camera") / "clip.y4m"
    with open(path, "wb") as out:
        out.write(b"YUV4MPEG2 W360 H432 F30:1 Ip A1:1 C420jpeg\n")
        for _, _, bgr in iter_frames(CLIP):
            small = cv2.resize(bgr, (360, 432), interpolation=cv2.INTER_AREA)
            out.write(b"FRAME\n" + cv2.cvtColor(small, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


@pytest.fixture
def browser(camera_clip):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                              args=CHROMIUM_FLAGS + FAKE_CAMERA + [f"--use-file-for-fake-video-capture={camera_clip}"])
        try:
            yield b
        finally:
            b.close()


def _start_camera(browser, url: str):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(60_000)
    page.goto(url, wait_until="load")
    page.get_by_role("tab", name="Live (webcam)").click()
    page.click("#live-cam button:has-text('Access Webcam')")
    page.click("#live-cam button:has-text('Record')")
    return page


def _windows(page) -> int:
    return int(page.inner_text("#live-windows .mmn-live-count"))


@pytest.mark.slow
@pytest.mark.browser
@needs_browser
def test_live_tab_labels_a_fake_camera_and_offers_the_sessions_files(server, browser, tmp_path):  # noqa: F811
    page = _start_camera(browser, server.url)
    # labelled windows arrive and keep arriving; the overlay and the top-5 follow
    page.wait_for_function("() => Number(document.querySelector('#live-windows .mmn-live-count')?.textContent) >= 3",
                           timeout=WINDOWS_TIMEOUT_MS)
    first = _windows(page)
    page.wait_for_function(f"() => Number(document.querySelector('#live-windows .mmn-live-count')?.textContent) "
                           f"> {first}", timeout=60_000)
    assert "labelled windows" in page.inner_text("#live-windows")
    assert page.locator("#live-windows tr.mmn-live-window").count() >= 3
    now = page.inner_text("#live-now")
    assert "Top-5 now: window" in now and "body level" in now and "%" in now
    assert page.get_attribute("#live-overlay img", "src").startswith("data:image/jpeg;base64,")
    assert page.locator("#live-timeline .mmn-live-timeline span").count() >= first
    assert "frames received" in page.inner_text("#live-status")
    # a second browser is told that one session runs at a time
    other = _start_camera(browser, server.url)
    other.wait_for_selector(".toast-body:has-text('Another browser is running a live session')")
    assert "one live session at a time" in other.inner_text(".toast-body")
    page.wait_for_timeout(1500)  # a fresh overlay for the picture
    shot = tmp_path / "app-live-screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    if os.environ.get("MMN_APP_LIVE_SCREENSHOT"):
        shutil.copy(shot, os.environ["MMN_APP_LIVE_SCREENSHOT"])
    # Stop: the camera stops, the session's files are offered and can be downloaded
    page.click("#live-stop")
    page.wait_for_selector("#live-downloads a[download$='.labels.json']", timeout=120_000)
    assert "Done:" in page.inner_text("#live-status")
    page.wait_for_selector("#live-cam button:has-text('Record')")
    links = dict(page.eval_on_selector_all("#live-downloads a[download]", "as => as.map(a => [a.download, a.href])"))
    assert sorted(n.split(".", 1)[1] for n in links) == SUFFIXES
    got = {}
    for name, href in links.items():
        r = httpx.get(href, timeout=30)
        assert r.status_code == 200 and r.content, name
        got[name.split(".", 1)[1]] = tmp_path / name
        got[name.split(".", 1)[1]].write_bytes(r.content)
    doc = json.loads(got["labels.json"].read_text())
    jsonschema.validate(doc, json.loads(LABELS_SCHEMA.read_text()))
    assert doc["live"]["ended"] == "stopped" and doc["live"]["source"] == "browser camera"
    assert len(doc["windows"]) >= first and all(len(w["top_k"]) == 5 for w in doc["windows"] if "skipped" not in w)
    assert doc["model"]["streams"][0]["modality"] == "joint"
    with av.open(str(got["mp4"])) as c:  # the recording: the camera's frames, at the camera's size
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (360, 432)
        assert sum(1 for _ in c.decode(video=0)) > 0 and doc["live"]["frames_received"] > 0
    events = got["events.csv"].read_text().splitlines()
    assert events[0].split(",") == list(EVENTS_COLUMNS) and len(events) == len(doc["segments"]) + 1 > 1
    assert "sitting straightly" in events[1] and got["mp4"].name in got["eaf"].read_text()
