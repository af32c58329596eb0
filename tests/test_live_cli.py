"""``python -m pipelines.live``: the same windows as the file job, a stream URL's session with its
recording, Ctrl-C, bad sources, ``--realtime`` and ``--show`` under Xvfb. Real clips only
(examples/videos; the golden checkpoint from MMN_SHARED)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from pipelines.stages.windowing import make_windows
from pose.sources import Recorder
from pose.video import iter_frames, probe_video
from tests.cli import run_cli, start_cli
from tests.data import LABELS_SCHEMA, VIDEOS_DIR
from tests.media import faststart_copy

CLIPS = sorted(VIDEOS_DIR.glob("*.mp4"))
CLIP = VIDEOS_DIR / "0030_01_0002.mp4"  # 75 frames, 30 fps, 1080x1296


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _no_temporaries(folder: Path) -> None:
    """No temporary file of an atomic write (``.NAME.XXXXXXXX.part``) is left, anywhere below."""
    left = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".part")]
    assert not left, f"temporary files left in {folder}: {left}"


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """The three real clips one after another, twice, at half size (540x648), 30 fps: 344
    frames, 11.5 s; long enough to interrupt a paced session in the middle."""
    path = tmp_path_factory.mktemp("long") / "session.mp4"
    rec = Recorder(path, 540, 648, 30.0, preset="ultrafast")
    i = 0
    for _ in range(2):
        for clip in CLIPS:
            for _, _, frame in iter_frames(clip):
                rec.write(frame[::2, ::2].copy(), i / 30.0)
                i += 1
    rec.close()
    return path


# --------------------------------------------------------------------------- same answers as the file job


@pytest.mark.slow
@pytest.mark.parametrize("clip", CLIPS, ids=lambda p: p.stem)
def test_live_windows_equal_the_file_jobs(clip, labelled, golden_weights, tmp_path):
    """On a file read without pacing, the JSON lines are the file job's windows: the same spans,
    the same top-k classes, probabilities within 1e-3; the session's labels JSON has the file
    job's windows, segments and detections."""
    res = run_cli("pipelines.live", clip, "--weights", golden_weights, "--device", "cpu", "--out", tmp_path,
                  timeout=600)
    assert res.returncode == 0, res.stderr
    lines = _lines(res.stdout)
    filed = json.loads((labelled.out / f"{clip.stem}.labels.json").read_text())
    assert [r["index"] for r in lines] == [w["index"] for w in filed["windows"]]
    for live, ref in zip(lines, filed["windows"]):
        for k in ("start_frame", "end_frame", "start_s", "end_s"):
            assert live[k] == ref[k]
        assert [t["index"] for t in live["top_k"]] == [t["index"] for t in ref["top_k"]]
        assert np.allclose([t["prob"] for t in live["top_k"]], [t["prob"] for t in ref["top_k"]], atol=1e-3)
        assert live["region_motion"] == ref["region_motion"]
        assert live["frames"] == ref["end_frame"] - ref["start_frame"] and live["dropped_frames"] == 0
        assert live["latency_s"] >= 0
    doc = json.loads((tmp_path / f"{clip.stem}.labels.json").read_text())
    assert doc["segments"] == filed["segments"] and doc["detections"] == filed["detections"]
    assert [(w["start_s"], w["end_s"], w["top_k"][0]["index"]) for w in doc["windows"]] == \
        [(w["start_s"], w["end_s"], w["top_k"][0]["index"]) for w in filed["windows"]]
    assert doc["live"]["frames_dropped"] == 0 and doc["live"]["frames_received"] == filed["video"]["frame_count"]
    _no_temporaries(tmp_path)


# --------------------------------------------------------------------------- a stream URL: the session is a recording


def test_a_stream_url_gives_a_session_folder_with_its_recording(serve, tmp_path):
    """A clip served over HTTP on 127.0.0.1, without a checkpoint (model-free motion): the
    session folder holds the recording (the stream's 75 frames, but for those its encoder could
    not keep up with, counted: a file served over HTTP comes faster than a camera's 30 fps), the
    skeleton, the labels JSON, the events table and the ELAN file that links the recording."""
    server = serve(faststart_copy(CLIP, tmp_path / "remuxed.mp4"))
    out = tmp_path / "session"
    res = run_cli("pipelines.live", server.url, "--out", out, "--elan", "--jsonl", tmp_path / "w.jsonl",
                  timeout=600)
    assert res.returncode == 0, res.stderr
    recordings = list(out.glob("stream-*.mp4"))
    assert len(recordings) == 1, sorted(p.name for p in out.iterdir())
    rec = recordings[0]
    key = rec.stem
    assert probe_video(rec).width == 1080
    for suffix in (".labels.json", ".skeleton.h5", ".events.csv", ".eaf", ".motion.csv"):
        assert (out / f"{key}{suffix}").is_file(), suffix
    doc = json.loads((out / f"{key}.labels.json").read_text())
    jsonschema.validate(doc, json.loads(LABELS_SCHEMA.read_text()))
    assert doc["labels_absent_reason"] and doc["live"]["kind"] == "url" and doc["live"]["recording"] == rec.name
    assert doc["video"]["file_name"] == rec.name and doc["video"]["frame_count"] == 75
    recorded = sum(1 for _ in iter_frames(rec, decode=False))
    assert recorded > 0 and recorded + doc["live"]["recording_frames_left_out"] == 75
    lines = _lines((tmp_path / "w.jsonl").read_text())
    assert [r["index"] for r in lines] == [w.index for w in make_windows(75, 30.0)]
    assert all("top_k" not in r and len(r["joint_heat"]) == 44 for r in lines)
    assert rec.name in (out / f"{key}.eaf").read_text()
    _no_temporaries(out)


# --------------------------------------------------------------------------- Ctrl-C


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_leaves_a_complete_session_and_exits_130(signum, long_clip, golden_weights, tmp_path):
    """Ctrl-C (SIGINT) or SIGTERM once the first window is out: exit 130; every window labelled
    so far is in the JSON lines and in the atomically written labels JSON, which says it was
    interrupted."""
    out = tmp_path / "session"
    proc = start_cli("pipelines.live", long_clip, "--realtime", "--weights", golden_weights, "--device", "cpu",
                     "--out", out)
    try:
        first = proc.stdout.readline()
        assert first, proc.stderr.read()
        proc.send_signal(signum)
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    lines = _lines(first + rest)
    doc = json.loads((out / "session.labels.json").read_text())
    assert doc["live"]["ended"] == "interrupted"
    assert [w["index"] for w in doc["windows"]] == [r["index"] for r in lines]
    assert doc["windows"][-1]["end_s"] < 11.0  # stopped mid-way (the clip lasts 11.5 s)
    assert all("top_k" in w for w in doc["windows"])
    for suffix in (".skeleton.h5", ".events.csv", ".motion.csv"):
        assert (out / f"session{suffix}").is_file()
    _no_temporaries(out)


# --------------------------------------------------------------------------- bad sources


def test_a_camera_that_does_not_exist_exits_2_naming_it(tmp_path):
    res = run_cli("pipelines.live", "7", "--out", tmp_path, timeout=120)
    assert res.returncode == 2 and "camera 7" in res.stderr and "no such camera" in res.stderr
    assert not list(tmp_path.iterdir())


def test_a_file_that_is_not_a_video_exits_2_naming_it(tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("this is a text file, not a video\n")
    res = run_cli("pipelines.live", notes, timeout=120)
    assert res.returncode == 2 and str(notes) in res.stderr and "Traceback" not in res.stderr


def test_a_url_that_does_not_answer_exits_2_within_the_connect_timeout():
    """A port that accepts connections but never answers: the connect timeout (1 s here)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/live"
        t0 = time.monotonic()
        res = run_cli("pipelines.live", url, "--connect-timeout", "1", timeout=120)
    assert res.returncode == 2 and url in res.stderr and "1 s" in res.stderr, res.stderr
    assert time.monotonic() - t0 < 60


def test_a_stream_that_stalls_exits_1_after_writing_what_was_labelled(serve, tmp_path):
    """The server sends 60% of the clip and then nothing: the read timeout (1 s) ends the
    session with exit 1, and the frames that came are written as a session."""
    server = serve(faststart_copy(CLIP, tmp_path / "remuxed.mp4"), cut=0.6)
    out = tmp_path / "session"
    t0 = time.monotonic()
    res = run_cli("pipelines.live", server.url, "--read-timeout", "1", "--out", out, timeout=300)
    assert res.returncode == 1, res.stderr
    assert server.url in res.stderr and "stalled" in res.stderr
    assert time.monotonic() - t0 < 120
    docs = list(out.glob("*.labels.json"))
    assert len(docs) == 1
    doc = json.loads(docs[0].read_text())
    assert doc["live"]["ended"].startswith("source failed") and 0 < doc["live"]["frames_received"] < 75
    assert (out / doc["live"]["recording"]).is_file()


# --------------------------------------------------------------------------- --realtime


def test_realtime_emits_every_window_and_reports_drops(golden_weights, tmp_path):
    """A 30 fps clip paced as a camera: every window of the file job's grid arrives, labelled,
    and the drops are counted in the lines and in the labels JSON (received + dropped = all)."""
    res = run_cli("pipelines.live", CLIP, "--realtime", "--weights", golden_weights, "--device", "cpu",
                  "--out", tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr
    lines = _lines(res.stdout)
    assert [r["index"] for r in lines] == [w.index for w in make_windows(75, 30.0)]
    assert all("top_k" in r and "dropped_frames" in r and "dropped_total" in r for r in lines)
    assert all(r["frames"] + r["dropped_frames"] == r["end_frame"] - r["start_frame"] for r in lines)
    live = json.loads((tmp_path / f"{CLIP.stem}.labels.json").read_text())["live"]
    assert live["realtime"] and live["frames_received"] + live["frames_dropped"] == 75
    assert live["windows"] == len(lines) and live["latency_s"]["p95"] is not None


# --------------------------------------------------------------------------- --show


def _xvfb(display: int, fbdir: Path) -> subprocess.Popen:
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("needs Xvfb (Debian: apt-get install xvfb)")
    proc = subprocess.Popen([xvfb, f":{display}", "-screen", "0", "1280x800x24", "-fbdir", str(fbdir), "-nolisten",
                             "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if Path(f"/tmp/.X11-unix/X{display}").exists() and (fbdir / "Xvfb_screen0").is_file() and proc.poll() is None:
            return proc
        time.sleep(0.1)
    proc.kill()
    pytest.skip("Xvfb did not start")


def _window_listed(display: int) -> bool:
    tool = shutil.which("xwininfo")
    if tool is None:
        pytest.skip("needs xwininfo (Debian: x11-utils)")
    res = subprocess.run([tool, "-root", "-tree"], env={**os.environ, "DISPLAY": f":{display}"},
                         capture_output=True, text=True, timeout=10)
    return "mmn live" in res.stdout


def test_show_draws_the_overlay_window_under_xvfb(long_clip, tmp_path):
    """``--show`` opens the overlay window on the X display and draws frames into it: the
    window is listed while the session runs, and the screen is no longer blank."""
    display = next(n for n in range(90 + os.getpid() % 50, 400) if not Path(f"/tmp/.X{n}-lock").exists())
    fbdir = tmp_path / "fb"
    fbdir.mkdir()
    xvfb = _xvfb(display, fbdir)
    blank = (fbdir / "Xvfb_screen0").read_bytes()
    try:
        env = {**os.environ, "DISPLAY": f":{display}", "QT_QPA_PLATFORM": "xcb"}
        proc = start_cli("pipelines.live", long_clip, "--realtime", "--show", "--max-seconds", "6", env=env)
        seen, shot, err = False, blank, ""
        try:
            while proc.poll() is None and not seen:
                seen = _window_listed(display)
                time.sleep(0.3)
            time.sleep(1.5)  # frames drawn meanwhile (the session lasts 6 s of the clip)
            shot = (fbdir / "Xvfb_screen0").read_bytes()
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        xvfb.terminate()
        xvfb.wait(10)
    assert proc.returncode == 0, err
    assert seen, f"no 'mmn live' window on display :{display}: {err}"
    pixels = np.frombuffer(shot[-1280 * 800 * 4:], np.uint8)
    assert shot != blank and len(np.unique(pixels)) > 32  # a picture, not an empty screen
