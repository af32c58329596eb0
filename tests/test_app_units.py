"""The web app's pure parts: settings, upload checks, figures, page summaries, server set-up."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.config import AppConfig, ConfigError, load_app_config
from app.engine import Settings, StageProgress, safe_key
from app.summaries import clip_top_k, top_k_html, window_at
from app.validate import Limits, UploadError, check_upload, sniff_container
from core.layouts import MA52_44
from pipelines.drawing import figures
from tests.data import VIDEOS_DIR

CLIP = VIDEOS_DIR / "0030_01_0002.mp4"  # 75 frames, 2.5 s
BIG = Limits(max_bytes=50 << 20, max_duration_s=60)


# --------------------------------------------------------------------------- config


def test_config_precedence_file_env_flags(tmp_path):
    cfg_file = tmp_path / "app.toml"
    cfg_file.write_text('port = 9000\nhost = "0.0.0.0"\nmax-upload-mb = 10\nshare = true\n')
    env = {"MMN_APP_PORT": "9100", "MMN_APP_MAX_DURATION_S": "30", "MMN_APP_SHARE": "no", "OTHER": "x"}
    cfg = load_app_config(cfg_file, env, {"port": 9200, "host": None})
    assert (cfg.port, cfg.host, cfg.max_upload_mb, cfg.max_duration_s, cfg.share) == (9200, "0.0.0.0", 10.0, 30.0, False)
    assert cfg.max_upload_bytes == 10 * 1024 * 1024
    assert "10 MB" in cfg.limits_text() and "30 s" in cfg.limits_text()


def test_config_defaults_are_private_and_local():
    cfg = load_app_config(None, {}, {})
    assert cfg == AppConfig()
    assert (cfg.host, cfg.port, cfg.share, cfg.weights) == ("127.0.0.1", 7860, False, None)


def test_config_file_from_environment_and_json(tmp_path):
    f = tmp_path / "app.json"
    f.write_text(json.dumps({"weights": "w.pt", "queue_size": 3}))
    cfg = load_app_config(None, {"MMN_APP_CONFIG": str(f)}, {})
    assert cfg.weights == Path("w.pt") and cfg.queue_size == 3


@pytest.mark.parametrize("mapping, words", [
    ({"MMN_APP_PORTT": "1"}, "unknown setting"),
    ({"MMN_APP_PORT": "eighty"}, "port"),
    ({"MMN_APP_PORT": "70000"}, "1..65535"),
    ({"MMN_APP_SHARE": "maybe"}, "yes/no"),
    ({"MMN_APP_MAX_UPLOAD_MB": "0"}, "positive"),
    ({"MMN_APP_POSE_BACKEND": "openpose"}, "pose_backend"),
    ({"MMN_APP_WEIGHTS_BONE": "b.pt"}, "needs weights"),
])
def test_config_errors_are_readable(mapping, words):
    with pytest.raises(ConfigError, match=words):
        load_app_config(None, mapping, {})


# --------------------------------------------------------------------------- upload checks


def test_sniff_container():
    assert sniff_container(CLIP.read_bytes()[:64]) == "mp4/quicktime"
    assert sniff_container(b"RIFF\x00\x00\x00\x00AVI LIST") == "avi"
    assert sniff_container(b"\x1a\x45\xdf\xa3" + bytes(12)) == "matroska/webm"
    assert sniff_container(b"hello, this is a text file") is None


def test_real_clip_is_accepted(tmp_path):
    shutil.copy(CLIP, tmp_path / CLIP.name)
    v = check_upload(tmp_path / CLIP.name, BIG, [tmp_path])
    assert (v.width, v.height, v.frame_count, v.fps) == (1080, 1296, 75, 30.0)
    assert v.duration_s == pytest.approx(2.5) and v.name == CLIP.name
    assert "1080×1296" in v.summary()


def _refusal(path, limits=BIG, roots=None) -> str:
    with pytest.raises(UploadError) as e:
        check_upload(path, limits, roots)
    return str(e.value)


def test_refusals_are_readable_and_never_show_server_paths(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("this is a text file\n")
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is a text file named like a video\n")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    clip = tmp_path / "clip.mp4"
    shutil.copy(CLIP, clip)
    cases = {
        "not a video file": _refusal(notes, roots=[tmp_path]),
        "content is not a video": _refusal(fake, roots=[tmp_path]),
        "empty": _refusal(empty, roots=[tmp_path]),
        "over the upload limit of 1.0 MB": _refusal(clip, Limits(1 << 20, 60), [tmp_path]),
        "longer than the limit of 1 s": _refusal(clip, Limits(50 << 20, 1.0), [tmp_path]),
        "No video given": _refusal(None),
    }
    for words, message in cases.items():
        assert words in message, message
        assert str(tmp_path) not in message


def test_paths_outside_the_upload_folders_are_not_opened(tmp_path):
    inside = tmp_path / "uploads"
    inside.mkdir()
    assert "not an uploaded file" in _refusal(CLIP, roots=[inside])
    assert "not an uploaded file" in _refusal("/etc/passwd", roots=[inside])
    (inside / "link.mp4").symlink_to(CLIP)  # a link out of the upload folder is outside too
    assert "not an uploaded file" in _refusal(inside / "link.mp4", roots=[inside])


def test_truncated_container_is_refused(tmp_path):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(CLIP.read_bytes()[:3000])  # header only, no frames
    assert "cut.mp4" in _refusal(cut, roots=[tmp_path])


# --------------------------------------------------------------------------- figures


def _heat(t=30, seed=0):
    return np.random.default_rng(seed).random((t, MA52_44.num_joints)).astype(np.float32)


def test_heatmap_has_44_labelled_rows_grouped_by_body_part():
    pic = figures.joint_heatmap(_heat(), fps=30.0, start_frame=15, source="msm_gamma", marker_frame=20, vmax=1.0)
    order, groups = figures.grouped_joint_order(MA52_44)
    expected = [MA52_44.joint_names[j] for j in order]
    assert list(pic.row_labels) == expected and len(expected) == 44 and len(set(expected)) == 44
    assert figures.read_row_labels(pic.png) == expected  # stored in the PNG for API clients
    assert [g[0] for g in groups] == [p for p, _ in MA52_44.parts]
    # each body part's rows are contiguous and in the layout's part order
    parts = MA52_44.part_of_joint()
    row_parts = [parts[MA52_44.joint_names.index(n)] for n in expected]
    assert [p for i, p in enumerate(row_parts) if i == 0 or p != row_parts[i - 1]] == [p for p, _ in MA52_44.parts]
    img = pic.array()
    assert img.shape == (pic.height, pic.width, 3) and pic.height > 600


def test_heatmap_rejects_wrong_joint_count():
    with pytest.raises(ValueError, match="44"):
        figures.joint_heatmap(np.zeros((10, 17)), fps=30.0)


def _windows(n=5, labelled=True):
    out = []
    for i in range(n):
        w = {"index": i, "start_frame": 15 * i, "end_frame": 15 * i + 60, "start_s": 0.5 * i, "end_s": 0.5 * i + 2.0}
        if labelled:
            top = [{"index": 1, "name": "sitting straightly", "prob": 0.7, "code": "A3", "body": "body", "body_code": "A"},
                   {"index": 9, "name": "nodding", "prob": 0.2 + 0.01 * i, "code": "B1", "body": "head", "body_code": "B"}]
            w["top_k"] = top
        out.append(w)
    return out


def test_timeline_with_and_without_labels():
    segs = [{"class_index": 1, "name": "sitting straightly", "code": "A3", "body_code": "A", "start_s": 0.0,
             "end_s": 4.0, "mean_prob": 0.7, "start_frame": 0, "end_frame": 120, "windows": [0, 1, 2, 3, 4]}]
    energy = np.abs(np.sin(np.linspace(0, 6, 120)))
    a = figures.timeline(4.0, segs, _windows(), energy, 30.0, marker_s=1.0)
    b = figures.timeline(4.0, [], _windows(labelled=False), energy, 30.0, note="no labels (no checkpoint)")
    for pic in (a, b):
        assert pic.png.startswith(b"\x89PNG") and pic.width >= 1000 and pic.array().std() > 0


def test_pack_rows_never_overlaps_within_a_row():
    spans = [(0.5 * i, 0.5 * i + 2.0) for i in range(10)]
    rows = figures.pack_rows(spans)
    for r in set(rows):
        mine = [s for s, row in zip(spans, rows) if row == r]
        assert all(a[1] <= b[0] + 1e-9 for a, b in zip(mine, mine[1:]))
    assert max(rows) + 1 == 4


def test_skeleton_heat_handles_missing_joints():
    kp = np.random.default_rng(1).random((44, 2)).astype(np.float32) * 500
    kp[[3, 20, 21]] = np.nan
    pic = figures.skeleton_heat(kp, _heat(1)[0], source="motion_energy")
    assert pic.array().shape[2] == 3
    empty = figures.skeleton_heat(np.full((44, 2), np.nan), np.zeros(44))
    assert empty.width > 0


# --------------------------------------------------------------------------- summaries and engine helpers


def test_window_at_uses_the_latest_window_covering_the_time():
    ws = _windows()
    assert window_at(ws, 0.2)["index"] == 0
    assert window_at(ws, 1.2)["index"] == 2  # covered by 0, 1, 2: the latest start wins (as on the video)
    assert window_at(ws, 99.0)["index"] == 4
    assert window_at([], 1.0) is None


def test_clip_top_k_averages_over_labelled_windows():
    ws = _windows(3) + [{"index": 3, "start_s": 1.5, "end_s": 3.5, "skipped": "subject absent"}]
    top, used = clip_top_k(ws, 5)
    assert used == 3 and [r["code"] for r in top] == ["A3", "B1"]
    assert top[0]["prob"] == pytest.approx(0.7) and top[1]["prob"] == pytest.approx(0.21)
    assert clip_top_k([], 5) == ([], 0)


def test_top_k_html_shows_codes_names_levels_and_escapes():
    rows = [{"index": 0, "name": "<b>x</b>", "prob": 0.5, "code": "A1", "body": "body", "body_code": "A"}]
    html = top_k_html(rows, "Top-5")
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "A1" in html and "A body" in html and "50.0%" in html
    assert "no labels" in top_k_html([], "Top-5")


def test_safe_key_and_settings():
    assert safe_key("../../etc/passwd") == "passwd"
    assert safe_key("my clip (1).MP4") == "my_clip_1"
    assert safe_key("....mp4") == "video"
    Settings(2.0, 0.5).check()
    with pytest.raises(ValueError, match="stride"):
        Settings(1.0, 2.0).check()
    assert Settings(smoothing_s=0).smoothing() == {"method": "none"}
    assert Settings(smoothing_s=0.5).smoothing() == {"method": "savgol", "window_s": 0.5}


def test_stage_progress_reports_numbered_stages():
    calls = []
    stages = StageProgress(lambda p, desc, **kw: calls.append((p, desc)), has_labels=True)
    with stages(3, "pose clip") as bar:
        for _ in range(3):
            bar.update(1)
    with stages(2, "render clip") as bar:
        bar.update(2)
    descs = [d for _, d in calls]
    assert descs[0].startswith("2/4") and (3, 3) in [p for p, _ in calls]
    assert any(d.startswith("3/4 Classifying") for d in descs) and descs[-1].startswith("4/4")


# --------------------------------------------------------------------------- server set-up


def test_server_settings_banner_and_limits(tmp_path):
    from app.__main__ import make_server
    from app.folders import RequestFolders

    folders = RequestFolders(tmp_path)
    assert (folders.root.stat().st_mode & 0o777) == 0o700
    cfg = AppConfig(max_upload_mb=5, queue_size=3, examples_dir=VIDEOS_DIR)
    blocks, kw = make_server(cfg, folders)
    assert kw["server_name"] == "127.0.0.1" and kw["server_port"] == 7860 and kw["share"] is False
    assert kw["max_file_size"] == 5 * 1024 * 1024
    assert blocks._queue.max_size == 3
    config = blocks.get_config_file()
    comps = {c.get("props", {}).get("elem_id"): c for c in config["components"]}
    banner = comps["no-checkpoint-banner"]["props"]
    assert banner["visible"] is True and "checkpoint" in banner["value"]
    assert "up to 5 MB and 60 s" in comps["limits"]["props"]["value"]  # limits stated on the page
    d = folders.new()
    assert d.parent == folders.root
    folders.close()
    assert not folders.root.exists()


def test_cli_refuses_bad_settings_before_serving(tmp_path, capsys, monkeypatch):
    from app.__main__ import main

    monkeypatch.delenv("MMN_APP_CONFIG", raising=False)
    assert main(["--weights", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt: no such file" in capsys.readouterr().err
    assert main(["--port", "0"]) == 2
    assert "port must be 1..65535" in capsys.readouterr().err
    bad = tmp_path / "app.toml"
    bad.write_text("colour = 'blue'\n")
    assert main(["--config", str(bad)]) == 2
    assert "unknown setting 'colour'" in capsys.readouterr().err


def test_models_offer_2s_only_with_a_bone_checkpoint(golden_weights):
    from app.engine import STREAMS, Models

    joint = Models(golden_weights, None, "cpu")
    assert joint.stream_choices == ["joint"] and joint.get("2S (joint + bone)") is joint.get("joint")
    both = Models(golden_weights, golden_weights, "cpu")  # the golden file stands in for a bone stream
    assert both.stream_choices == list(STREAMS) and len(both.get(STREAMS[0]).streams) == 2
    assert both.get("bone").modalities == ["bone"]
