"""``python -m app`` as a real server on a free port, with the golden checkpoint, driven by
``gradio_client`` on a real MA-52 clip and (``-m browser``) by Debian's headless Chromium."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import av
import httpx
import jsonschema
import pytest

from core.layouts import MA52_44
from pipelines.drawing.figures import grouped_joint_order, read_row_labels
from tests.data import LABELS_SCHEMA, ROOT, VIDEOS_DIR

CLIP = VIDEOS_DIR / "0030_01_0002.mp4"  # 75 frames, 2.5 s, 1080×1296
SCHEMA = json.loads(LABELS_SCHEMA.read_text())
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_TIMEOUT_S = 300  # pose + MMN + rendering of 2.5 s of video on a slow 2-core machine
HAVE_BROWSER = CHROMIUM.exists() and importlib.util.find_spec("playwright") is not None
needs_browser = pytest.mark.skipif(not HAVE_BROWSER, reason="needs /usr/bin/chromium (apt-get install chromium) "
                                                            "and playwright (pip install playwright)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    private: Path  # MMN_APP_TEMP_DIR: the server's private root lives in here
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def request_folders(self) -> list[Path]:
        return sorted(self.private.glob("mmn-app-*/req-*"))


@pytest.fixture(scope="module")
def server(tmp_path_factory, golden_weights):
    tmp = tmp_path_factory.mktemp("app-server")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMN_APP_", "GRADIO_"))}
    env.update(MMN_APP_TEMP_DIR=str(tmp / "private"), GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    log = tmp / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app", "--port", str(port), "--device", "cpu",
                                 "--weights", str(golden_weights)],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    srv = Server(f"http://127.0.0.1:{port}/", proc, tmp / "private", log)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with {proc.returncode}:\n{srv.log_tail()}")
            try:
                if httpx.get(srv.url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the app did not answer within 180 s:\n{srv.log_tail()}")
            time.sleep(0.5)
        yield srv
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    # stopping removes the private root with everything in it (Gradio's cache included)
    assert not list(srv.private.glob("mmn-app-*")), srv.log_tail()


def _answers(server: Server) -> bool:
    return httpx.get(server.url, timeout=10).status_code == 200


def test_client_runs_a_real_clip_with_the_golden_checkpoint(server, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(server.url, download_files=str(tmp_path), verbose=False)
    out = client.predict(handle_file(str(CLIP)), 2.0, 0.5, "joint", 0.3, "msm_gamma", api_name="/analyse")
    status, video, timeline, clip_top, slider, window_top, heatmap, skeleton, files = out

    assert "Done" in status and CLIP.name in status, status
    # the annotated video: H.264, the source's frame count and size
    with av.open(video) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264"
        assert (s.codec_context.width, s.codec_context.height) == (1080, 1296)
        assert sum(1 for _ in c.decode(s)) == 75
    # the downloads
    names = sorted(Path(f).name for f in files)
    assert names == sorted(f"{CLIP.stem}.{s}" for s in ("annotated.mp4", "labels.json", "skeleton.h5", "events.csv",
                                                        "eaf"))
    doc = json.loads(next(Path(f) for f in files if f.endswith(".labels.json")).read_text())
    jsonschema.validate(doc, SCHEMA)
    assert doc["windows"] and all(len(w["top_k"]) == 5 and len(w["joint_heat"]) == 44 for w in doc["windows"])
    assert doc["model"]["streams"][0]["modality"] == "joint" and doc["video"]["path"] == CLIP.name
    # the heatmap: 44 labelled rows, grouped by body part
    order, _ = grouped_joint_order(MA52_44)
    rows = read_row_labels(Path(heatmap).read_bytes())
    assert rows == [MA52_44.joint_names[j] for j in order] and len(rows) == 44
    for png in (timeline, skeleton, heatmap):
        assert Path(png).read_bytes()[:4] == b"\x89PNG"
    # the top-5 tables: codes, names and body levels
    top1 = doc["windows"][0]["top_k"][0]
    assert top1["code"] in clip_top and top1["name"] in clip_top and "body level" in clip_top
    assert "window" in window_top and slider["maximum"] == pytest.approx(2.5)
    # the time slider picks another window in the same session
    table, heat2, _, _ = client.predict(0.2, api_name="/window")
    assert "window 0 (0.00–2.00 s)" in table and len(read_row_labels(Path(heat2).read_bytes())) == 44
    # every request's private folder is gone once its results were served
    assert server.request_folders() == []


def test_bad_uploads_get_readable_errors_and_the_server_keeps_serving(server, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a video\n")
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video either\n")
    client = Client(server.url, download_files=str(tmp_path / "dl"), verbose=False)
    for path, words in ((notes, "not a video file"), (fake, "not a video container")):
        with pytest.raises(AppError, match=words) as e:
            client.predict(handle_file(str(path)), 2.0, 0.5, "joint", 0.3, "msm_gamma", api_name="/analyse")
        assert str(tmp_path) not in str(e.value) and "/tmp" not in str(e.value)
    assert "Refused" in client.predict(handle_file(str(notes)), api_name="/check")
    assert _answers(server) and server.request_folders() == []


def test_server_paths_in_requests_are_never_read(server):
    """A request naming a file on the server (not an upload) is refused before the app runs."""
    api = server.url + "gradio_api"
    for path in ("/etc/passwd", str(CLIP)):
        data = [{"path": path, "meta": {"_type": "gradio.FileData"}}, 2.0, 0.5, "joint", 0.3, "msm_gamma"]
        event = httpx.post(f"{api}/call/analyse", json={"data": data}, timeout=30).json()["event_id"]
        with httpx.stream("GET", f"{api}/call/analyse/{event}", timeout=60) as r:
            body = "".join(r.iter_text())
        assert body.startswith("event: error") and "root:" not in body
    assert _answers(server)


# --------------------------------------------------------------------------- headless Chromium


@pytest.fixture
def page(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000})
        try:
            pg = ctx.new_page()
            pg.set_default_timeout(60_000)
            yield pg
        finally:
            ctx.close()


def _open(page, server: Server) -> None:
    page.goto(server.url, wait_until="load")
    page.wait_for_selector("#run")


@pytest.mark.browser
@needs_browser
def test_browser_upload_run_plays_the_annotated_video(server, page, tmp_path):
    _open(page, server)
    page.set_input_files("#video-in input[type=file]", str(CLIP))
    page.wait_for_selector("#upload-status:has-text('Ready')")
    page.click("#run")
    page.wait_for_function(
        """() => { const v = document.querySelector('#video-out video');
                   return v && v.currentSrc && v.readyState >= 2 && v.videoWidth > 0; }""",
        timeout=RUN_TIMEOUT_S * 1000)
    src = page.eval_on_selector("#video-out video", "v => v.currentSrc")
    assert src.endswith(".annotated.mp4") and httpx.get(src, timeout=30).status_code == 200
    page.wait_for_selector("#heatmap img")
    page.wait_for_selector("#downloads a[download$='.labels.json']")
    links = page.eval_on_selector_all("#downloads a[download]", "as => as.map(a => [a.download, a.href])")
    assert sorted(n for n, _ in links) == sorted(f"{CLIP.stem}.{s}" for s in ("annotated.mp4", "labels.json",
                                                                             "skeleton.h5", "events.csv", "eaf"))
    labels_url = next(h for n, h in links if n.endswith(".labels.json"))
    assert httpx.get(labels_url, timeout=30).json()["windows"]
    top = page.inner_text("#clip-top")
    assert "body level" in top and "%" in top and "mean over 2 labelled windows" in top
    page.wait_for_timeout(500)  # let the images settle before the picture
    shot = tmp_path / "app-screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    if os.environ.get("MMN_APP_SCREENSHOT"):  # e.g. docs/app-screenshot.png for the README
        shutil.copy(shot, os.environ["MMN_APP_SCREENSHOT"])


@pytest.mark.browser
@needs_browser
def test_browser_text_upload_shows_the_error_and_the_server_still_answers(server, page, tmp_path):
    _open(page, server)
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a video\n")
    page.set_input_files("#video-in input[type=file]", str(notes))  # refused by the page itself
    page.wait_for_selector(".toast-body:has-text('Invalid file type')")
    renamed = tmp_path / "notes.mp4"  # passes the page's type check: refused by the server
    renamed.write_text("this is not a video either\n")
    page.set_input_files("#video-in input[type=file]", str(renamed))
    page.wait_for_selector("#upload-status:has-text('not a video container')")
    page.click("#run")
    page.wait_for_selector(".toast-body:has-text('notes.mp4: the name says video but the content is not a video')")
    page.screenshot(path=str(tmp_path / "error.png"))
    assert _answers(server)
    # and the app still works: a fresh page accepts a real clip afterwards
    _open(page, server)
    page.set_input_files("#video-in input[type=file]", str(CLIP))
    page.wait_for_selector("#upload-status:has-text('Ready')")
