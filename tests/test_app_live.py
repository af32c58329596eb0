"""The app's Live tab behind the page (app.live, app.live_views, the live settings): real frames
of a bundled clip pushed as a browser's webcam would send them; the bounds (one session at a
time, the session length limit, idle places given up, a stop that does not restart), and the
views that must never show labels without a checkpoint. The browser test is
tests/test_app_live_browser.py."""
from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from app.config import AppConfig, ConfigError, from_environment, load_app_config
from app.folders import RequestFolders
from app.live import RESTART_GAP_S, LiveBusy, LiveLimits, LiveSessions, fit_frame
from app.live_views import NO_LABELS, now_html, timeline_html, windows_html
from pipelines.stages.pose import PoseOptions
from pose.video import iter_frames
from tests.data import VIDEOS_DIR

CLIP = VIDEOS_DIR / "0030_01_0002.mp4"  # 75 frames, 30 fps, 1080×1296: a seated person
FPS = 10.0


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Every third frame of the clip (10 fps), as a browser sends them: RGB, 360×432."""
    out = []
    for i, _, bgr in iter_frames(CLIP):
        if i % 3 == 0:
            out.append(cv2.cvtColor(cv2.resize(bgr, (360, 432), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    return out


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def sessions(tmp_path):
    clock = Clock()
    folders = RequestFolders(tmp_path / "private")
    live = LiveSessions(LiveLimits(max_s=3.0, sessions=1, fps=FPS, idle_s=20.0), None, PoseOptions(), folders, clock)
    live.test_clock = clock
    yield live
    live.close()
    folders.close()


def _stream(live: LiveSessions, owner: str, frames: list[np.ndarray], seconds: float, pace: bool = True) -> list:
    """Send ``seconds`` of frames (the clip looped) at FPS on the test clock; the updates."""
    updates = []
    for k in range(int(seconds * FPS)):
        updates.append(live.frame(owner, frames[k % len(frames)]))
        live.test_clock.t += 1 / FPS
        if pace:
            time.sleep(1 / FPS)  # give pose its real time, as a camera would
    return updates


def test_a_second_browser_is_refused_while_a_session_runs(sessions, frames):
    """One session at a time: another browser's first frame raises LiveBusy with a message
    that says why and for how long; once the first session stops, the other can start."""
    first = sessions.frame("browser-a", frames[0])
    assert first is not None and sessions.owns("browser-a") and sessions.active == 1
    with pytest.raises(LiveBusy, match="Another browser is running a live session: this server runs one live "
                                       r"session at a time\. Try again when it ends \(sessions last at most 3 s\)"):
        sessions.frame("browser-b", frames[1])
    assert not sessions.owns("browser-b")
    files = sessions.stop("browser-a")
    assert files is not None and sessions.active == 0
    sessions.test_clock.t += 0.1
    assert sessions.frame("browser-b", frames[2]) is not None and sessions.owns("browser-b")


def test_the_session_length_limit_ends_the_session_and_offers_its_files(sessions, frames):
    """max_s = 3 s: the first frame past it ends the session by itself; its files are written
    (labels JSON with windows over at most 3 s, events, ELAN, skeleton, the recording), the place
    is free, and the browser's next frames start nothing until it pauses."""
    updates = _stream(sessions, "browser-a", frames, 3.0)
    assert all(u is not None and u.ended is None for u in updates)
    assert updates[-1].elapsed_s == pytest.approx(2.9) and updates[-1].received == 30
    end = sessions.frame("browser-a", frames[0])  # 3.0 s
    sessions.test_clock.t += 0.1
    end = end if end.ended is not None else sessions.frame("browser-a", frames[1])
    assert end is not None and end.ended is not None and sessions.active == 0
    files = end.ended
    names = sorted(p.name.split(".", 1)[1] for p in files.files)
    assert names == ["eaf", "events.csv", "labels.json", "motion.csv", "mp4", "skeleton.h5"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in files.files) and files.files[0] == files.labels
    doc = json.loads(files.labels.read_text())
    assert doc["live"]["ended"] == "ended at the session length limit (3 s)" and doc["live"]["kind"] == "camera"
    assert doc["windows"] and doc["windows"][-1]["end_s"] <= 3.0 + 1e-6
    assert all("top_k" not in w for w in doc["windows"])  # no checkpoint: motion only
    assert doc["live"]["frames_received"] + doc["live"]["frames_dropped"] == 30
    assert files.windows == len(doc["windows"]) and "ended at the session length limit" in files.message
    # the same stream keeps sending: ignored, no new session
    sessions.test_clock.t += 0.1
    assert sessions.frame("browser-a", frames[2]) is None and sessions.active == 0


def test_a_stop_is_not_undone_by_the_frames_still_streaming(sessions, frames):
    """After Stop, the owner's frames are ignored while they keep coming; after a pause of
    RESTART_GAP_S (the camera was stopped and started again) a new session starts."""
    _stream(sessions, "browser-a", frames, 1.0, pace=False)
    files = sessions.stop("browser-a")
    assert files is not None and sessions.stop("browser-a") is None
    for _ in range(30):  # 3 s more of the same stream
        sessions.test_clock.t += 0.1
        assert sessions.frame("browser-a", frames[0]) is None
    sessions.test_clock.t += RESTART_GAP_S + 0.1
    assert sessions.frame("browser-a", frames[0]) is not None and sessions.owns("browser-a")


def test_an_idle_session_gives_its_place_up_and_a_leaving_browser_leaves_nothing(sessions, frames, tmp_path):
    """A session that sent no frame for idle_s is discarded (folder removed) when another
    browser wants the place; a browser that closes its page (unload) is discarded too."""
    _stream(sessions, "browser-a", frames, 0.5, pace=False)
    folder_a = sessions._sessions["browser-a"].workdir
    assert folder_a.is_dir()
    sessions.test_clock.t += 10.0
    with pytest.raises(LiveBusy):
        sessions.frame("browser-b", frames[0])
    sessions.test_clock.t += 11.0  # 21 s without a frame from browser-a
    assert sessions.frame("browser-b", frames[0]) is not None
    assert not sessions.owns("browser-a") and sessions.owns("browser-b") and not folder_a.exists()
    folder_b = sessions._sessions["browser-b"].workdir
    sessions.discard("browser-b")
    assert sessions.active == 0 and not folder_b.exists()
    assert sorted(p.name for p in (tmp_path / "private").glob("*/*")) == []


def test_frames_are_scaled_to_the_pixel_bound_and_kept_at_the_sessions_size(frames):
    big = cv2.resize(frames[0], (1920, 2304))
    out = fit_frame(big, 1920 * 1088)
    assert out.shape[0] * out.shape[1] <= 1920 * 1088 and abs(out.shape[1] / out.shape[0] - 1920 / 2304) < 0.01
    assert np.array_equal(fit_frame(frames[0], 10**7)[..., ::-1], frames[0])  # RGB in, BGR out
    assert fit_frame(big, 10**7, (360, 432)).shape == (432, 360, 3)
    with pytest.raises(ValueError, match="must be"):
        fit_frame(frames[0][..., 0], 10**7)


def test_live_settings_come_from_the_config_like_the_other_bounds(tmp_path):
    cfg = load_app_config(None, {"MMN_APP_LIVE_MAX_S": "90", "MMN_APP_LIVE_SESSIONS": "2"}, {"live_fps": 5})
    assert (cfg.live_max_s, cfg.live_sessions, cfg.live_fps) == (90.0, 2, 5.0)
    assert LiveLimits.of(cfg) == LiveLimits(90.0, 2, 5.0, AppConfig.live_idle_s, AppConfig.max_frame_pixels)
    assert "Sessions up to 90 s, 2 sessions at a time" in cfg.live_limits_text()
    assert "one session at a time" in AppConfig().live_limits_text()
    toml = tmp_path / "app.toml"
    toml.write_text("live-max-s = 30\n")
    assert load_app_config(toml, {}).live_max_s == 30.0
    for bad, words in (({"MMN_APP_LIVE_SESSIONS": "0"}, "live_sessions must be at least 1"),
                       ({"MMN_APP_LIVE_MAX_S": "-5"}, "live_max_s must be positive"),
                       ({"MMN_APP_LIVE_FPS": "60"}, "live_fps must be between 1 and 30")):
        with pytest.raises(ConfigError, match=words):
            load_app_config(None, bad)
    with pytest.raises(ConfigError, match="live_sessions"):
        from_environment({"MMN_APP_LIVE_SESSIONS": "two"})


def _record(index: int, top: bool) -> dict:
    rec = {"index": index, "start_s": index * 0.5, "end_s": index * 0.5 + 2, "frames": 20, "latency_s": 0.4,
           "region_motion": {"left arm": 1.5, "face": 4.0, "legs": float("nan")}, "joint_heat": [0.0] * 44}
    if top:
        rec["top_k"] = [{"index": 2, "code": "A3", "name": "sitting straightly", "body": "body", "body_code": "A",
                         "prob": 0.97}]
        rec["body"] = {"index": 0, "code": "A", "name": "body"}
    return rec


def test_without_a_checkpoint_the_views_show_motion_and_never_a_label():
    records = [_record(i, top=False) for i in range(3)]
    page = now_html(records, [], labelled=False) + timeline_html(records, False) + windows_html(records, False)
    assert NO_LABELS in page and "face" in page and "4.00" in page and "(no checkpoint)" in page
    assert "sitting" not in page and "%" not in page
    assert "<span class='mmn-live-count'>3</span> windows (motion only, no labels)" in page
    labelled = [_record(i, top=True) for i in range(14)]
    table = windows_html(labelled, True)
    assert "<span class='mmn-live-count'>14</span> labelled windows" in table
    assert table.count("class='mmn-live-window'") == 12 and table.index("<td>13</td>") < table.index("<td>12</td>")
    assert "A3 sitting straightly (97%)" in table and "A3" in now_html(labelled, [("A", "body")], True)
    assert timeline_html(labelled, True).count("<span style=") == 14
