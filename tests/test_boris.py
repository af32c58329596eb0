"""BORIS both ways: events read from exports and projects in the layouts BORIS writes, and the
project this writes opened by BORIS's own loading code (boris-behav-obs 8.27.4, headless)."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import pytest

from core.taxonomy import MA52
from pipelines.formats.boris import (
    BorisObservation,
    boris_project,
    observation_from_labels,
    read_boris,
    write_boris_project,
)
from pipelines.formats.spans import AnnotationError, Span

# The same coding in every layout: clip1 (observation obs1) subject Alice: nod 1.0-2.5, shake
# 2.0-4.0 (they overlap), a blink point at 3.0; no focal subject: nod 5.0-6.0. clip2 (obs2):
# Alice shake 0.5-1.5.
EXPECTED = {("Alice", "clip1.mp4", "nod", 1.0, 2.5), ("Alice", "clip1.mp4", "shake", 2.0, 4.0),
            ("", "clip1.mp4", "nod", 5.0, 6.0), ("Alice", "clip2.mp4", "shake", 0.5, 1.5)}
SUBJECT_OF = {("clip1.mp4", "nod", 1.0): "Alice", ("clip1.mp4", "shake", 2.0): "Alice",
              ("clip1.mp4", "nod", 5.0): "", ("clip2.mp4", "shake", 0.5): "Alice"}

_TABULAR_HEADER = ("Observation id\tObservation date\tDescription\tObservation duration\tObservation type\tSource\t"
                   "Time offset (s)\tMedia duration (s)\tFPS\tSubject\tBehavior\tBehavioral category\tBehavior type\t"
                   "Time\tMedia file name\tImage index\tImage file path\tComment")
_AGGREGATED_HEADER = ("Observation id\tObservation date\tDescription\tObservation type\tSource\tTime offset (s)\t"
                      "Coding duration\tMedia duration (s)\tFPS (frame/s)\tSubject\t"
                      "Observation duration by subject by observation\tBehavior\tBehavioral category\tBehavior type\t"
                      "Start (s)\tStop (s)\tDuration (s)\tMedia file name\tImage index start\tImage index stop\t"
                      "Image file path start\tImage file path stop\tComment start\tComment stop")
_OLD_AGGREGATED_HEADER = ("Observation id\tObservation date\tDescription\tMedia file\tTotal length\tFPS\ta\tSubject\t"
                          "Behavior\tBehavioral category\tModifiers\tBehavior type\tStart (s)\tStop (s)\tDuration (s)\t"
                          "Comment start\tComment stop")


def _tabular(tmp: Path) -> Path:
    rows = [("obs1", "Alice", "nod", "START", "1.000", "clip1"), ("obs1", "Alice", "shake", "START", "2.000", "clip1"),
            ("obs1", "Alice", "nod", "STOP", "2.500", "clip1"), ("obs1", "Alice", "blink", "POINT", "3.000", "clip1"),
            ("obs1", "Alice", "shake", "STOP", "4.000", "clip1"), ("obs1", "", "nod", "START", "5.000", "clip1"),
            ("obs1", "", "nod", "STOP", "6.000", "clip1"), ("obs2", "Alice", "shake", "START", "0.500", "clip2"),
            ("obs2", "Alice", "shake", "STOP", "1.500", "clip2")]
    lines = [_TABULAR_HEADER] + [
        f"{o}\t2024-03-01 10:00:00\t\t8\tMedia file(s)\tplayer #1:/data/{c}.mp4\t0.0\t8.000\t25.000\t{s}\t{b}\t\t{t}\t"
        f"{time}\t/data/{c}.mp4\tNA\tNA\t" for o, s, b, t, time, c in rows]
    (tmp / "tabular.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp / "tabular.tsv"


def _old_tabular(tmp: Path, obs: str, media: str, rows: list[tuple[str, str, str, str]]) -> Path:
    """The older layout: observation facts, then Time, Media file path, …, Status (CSV)."""
    head = [f"Observation id,{obs},,,,,,,", ",,,,,,,,", "Media file(s),,,,,,,,", ",,,,,,,,",
            f"Player #1,{media},,,,,,,", ",,,,,,,,", "Observation date,2016-11-27 01:57:26,,,,,,,", ",,,,,,,,",
            "Description,,,,,,,,", ",,,,,,,,", "Time offset (s),0.0,,,,,,,", ",,,,,,,,",
            "Time,Media file path,Total length,FPS,Subject,Behavior,Behavioral category,Comment,Status"]
    body = [f"{time},{media},8.000,25.0,{s},{b},,,{t}" for time, s, b, t in rows]
    path = tmp / f"old_{obs}.csv"
    path.write_text("\n".join(head + body) + "\n", encoding="utf-8")
    return path


def _aggregated(tmp: Path) -> Path:
    rows = [("obs1", "Alice", "nod", "STATE", "1.000", "2.500", "1.500", "clip1"),
            ("obs1", "Alice", "shake", "STATE", "2.000", "4.000", "2.000", "clip1"),
            ("obs1", "Alice", "blink", "POINT", "3.000", "3.000", "NA", "clip1"),
            ("obs1", "No focal subject", "nod", "STATE", "5.000", "6.000", "1.000", "clip1"),
            ("obs2", "Alice", "shake", "STATE", "0.500", "1.500", "1.000", "clip2")]
    lines = [_AGGREGATED_HEADER] + [
        f"{o}\t2024-03-01 10:00:00\t\tMedia file\tplayer #1:/data/{c}.mp4\t0.0\t8.000\t8.000\t25.000\t{s}\t8.000\t"
        f"{b}\tNot defined\t{t}\t{a}\t{z}\t{d}\t/data/{c}.mp4\tNA\tNA\tNA\tNA\t\t" for o, s, b, t, a, z, d, c in rows]
    (tmp / "aggregated.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp / "aggregated.tsv"


def _old_aggregated(tmp: Path) -> Path:
    rows = [("obs1", "Alice", "nod", "STATE", "1.000", "2.500", "1.500", "clip1"),
            ("obs1", "Alice", "shake", "STATE", "2.000", "4.000", "2.000", "clip1"),
            ("obs1", "Alice", "blink", "POINT", "3.000", "3.000", "NA", "clip1"),
            ("obs1", "No focal subject", "nod", "STATE", "5.000", "6.000", "1.000", "clip1"),
            ("obs2", "Alice", "shake", "STATE", "0.500", "1.500", "1.000", "clip2")]
    lines = [_OLD_AGGREGATED_HEADER] + [
        f"{o}\t2016-12-01 23:01:31\tDescription\t{c}.mp4\t539.920\t25.0\t123\t{s}\t{b}\t\t\t{t}\t{a}\t{z}\t{d}\t\t"
        for o, s, b, t, a, z, d, c in rows]
    (tmp / "old_aggregated.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp / "old_aggregated.tsv"


def _project(tmp: Path) -> Path:
    """A project as BORIS 8 saves one (format 7.0): events [time, subject, code, modifier, comment, frame]."""
    def obs(media, events):
        return {"file": {"1": [media], "2": []}, "type": "MEDIA", "date": "2024-03-01T10:00:00", "description": "",
                "time offset": 0.0, "events": events, "independent_variables": {},
                "media_info": {"length": {media: 8.0}, "fps": {media: 25.0}, "hasVideo": {media: True},
                               "hasAudio": {media: False}, "offset": {"1": 0.0}}}
    ev1 = [[1.0, "Alice", "nod", "", "", 25], [2.0, "Alice", "shake", "", "", 50], [2.5, "Alice", "nod", "", "", 62],
           [3.0, "Alice", "blink", "", "", 75], [4.0, "Alice", "shake", "", "", 100], [5.0, "", "nod", "", "", 125],
           [6.0, "", "nod", "", "", 150]]
    ethogram = {str(i): {"type": t, "key": k, "code": k, "description": "", "category": "", "modifiers": {},
                         "excluded": "", "coding map": ""}
                for i, (t, k) in enumerate([("State event", "nod"), ("State event", "shake"), ("Point event", "blink")])}
    pj = {"time_format": "hh:mm:ss", "project_name": "coding", "project_date": "2024-03-01T09:00:00",
          "project_description": "", "project_format_version": "7.0",
          "subjects_conf": {"0": {"key": "a", "name": "Alice", "description": ""}}, "behaviors_conf": ethogram,
          "observations": {"obs1": obs("/data/clip1.mp4", ev1),
                           "obs2": obs("C:\\videos\\clip2.mp4", [[0.5, "Alice", "shake", "", "", 12],
                                                                 [1.5, "Alice", "shake", "", "", 37]])},
          "behavioral_categories": [], "independent_variables": {}, "coding_map": {}, "behaviors_coding_map": [],
          "converters": {}}
    (tmp / "coding.boris").write_text(json.dumps(pj, indent=1), encoding="utf-8")
    return tmp / "coding.boris"


def _as_set(read) -> set:
    return {(SUBJECT_OF[(s.video, s.label, s.start_s)], s.video, s.label, s.start_s, s.end_s) for s in read.spans}


@pytest.mark.parametrize("make", [_tabular, _aggregated, _old_aggregated, _project])
def test_every_layout_gives_the_same_events(tmp_path, make):
    read = read_boris(make(tmp_path))
    assert _as_set(read) == EXPECTED
    assert [(p.label, p.time_s, p.video) for p in read.points] == [("blink", 3.0, "clip1.mp4")]
    assert read.subjects == ("", "Alice")
    alice = read_boris(make(tmp_path), subject="Alice")
    assert _as_set(alice) == {e for e in EXPECTED if e[0] == "Alice"}
    nobody = read_boris(make(tmp_path), subject="No focal subject")
    assert _as_set(nobody) == {("", "clip1.mp4", "nod", 5.0, 6.0)}


def test_older_tabular_layout(tmp_path):
    path = _old_tabular(tmp_path, "observation #1", "video_test_25fps_360s.mp4",
                        [("3.300", "subject1", "s", "START"), ("7.750", "subject1", "s", "STOP"),
                         ("38.425", "subject2", "s", "START"), ("46.100", "subject2", "s", "STOP")])
    read = read_boris(path)
    assert [(s.label, s.start_s, s.end_s, s.video) for s in read.spans] == [
        ("s", 3.3, 7.75, "video_test_25fps_360s.mp4"), ("s", 38.425, 46.1, "video_test_25fps_360s.mp4")]
    assert read.subjects == ("subject1", "subject2")
    assert read.spans[0].source == f"{path}:14-15"


def test_bad_boris_files_name_the_file_and_the_problem(tmp_path):
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(AnnotationError, match=r"empty\.tsv: empty file"):
        read_boris(tmp_path / "empty.tsv")
    with pytest.raises(AnnotationError, match=r"aggregated\.tsv: no subject 'Bob'.*'Alice'"):
        read_boris(_aggregated(tmp_path), subject="Bob")
    stop_first = _old_tabular(tmp_path, "o", "v.mp4", [("2.0", "a", "s", "STOP")])
    with pytest.raises(AnnotationError, match=r"old_o\.csv:14: STOP of 's' without a START"):
        read_boris(stop_first)
    unclosed = _old_tabular(tmp_path, "p", "v.mp4", [("2.0", "a", "s", "START")])
    with pytest.raises(AnnotationError, match=r"old_p\.csv:14: START of 's' is never stopped"):
        read_boris(unclosed)
    zero = _old_tabular(tmp_path, "z", "v.mp4", [("2.0", "a", "s", "START"), ("2.0", "a", "s", "STOP")])
    with pytest.raises(AnnotationError, match=r"old_z\.csv:14-15: state event 's' stops at 2.000 s, not after"):
        read_boris(zero)
    (tmp_path / "x.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(AnnotationError, match=r"x\.tsv: no BORIS events header"):
        read_boris(tmp_path / "x.tsv")


def _labels_doc(name: str, segments: list[tuple[int, float, float]]) -> dict:
    return {"video": {"file_name": name, "fps": 30.0, "duration_s": 5.0},
            "segments": [{"class_index": c, "name": MA52[c].name, "code": MA52[c].code, "start_s": a, "end_s": b}
                         for c, a, b in segments]}


def test_written_project_reads_back(tmp_path):
    (tmp_path / "videos").mkdir()
    docs = [_labels_doc("a.mp4", [(0, 0.5, 1.5), (9, 1.0, 3.0), (0, 1.5, 2.0)]), _labels_doc("b.mp4", [(8, 0.0, 4.0)])]
    obs = [observation_from_labels(d, tmp_path / "videos" / d["video"]["file_name"]) for d in docs]
    path = write_boris_project(tmp_path / "labels.boris", obs, MA52)
    pj = json.loads(path.read_text())
    assert list(pj["observations"]) == ["a", "b"]
    assert pj["observations"]["a"]["file"]["1"] == ["videos/a.mp4"]  # relative to the project's folder
    assert len(pj["behaviors_conf"]) == 52 and pj["behaviors_conf"]["9"]["code"] == "B1 nodding"
    assert pj["behaviors_conf"]["9"]["category"] == "head" and "head" in pj["behavioral_categories"]
    read = read_boris(path)
    # touching segments of one class became one state event (BORIS alternates start and stop)
    assert sorted((s.video, s.label, s.start_s, s.end_s) for s in read.spans) == [
        ("a.mp4", "A1 shaking body", 0.5, 2.0), ("a.mp4", "B1 nodding", 1.0, 3.0),
        ("b.mp4", "B3 turning head", 0.0, 4.0)]
    with pytest.raises(ValueError, match="not in the ethogram"):
        boris_project([BorisObservation("c.mp4", 1.0, 30.0, (Span(0, 1, "dancing", "x"),))], MA52)


@pytest.fixture(scope="module")
def boris():
    """BORIS's own modules, loaded headless. ``import boris`` starts the GUI (QtMultimedia needs
    libpulse) and its mpv player needs libmpv; the project and export functions need neither, so
    the package is entered without its ``__init__`` and with an empty player module."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    spec = importlib.util.find_spec("boris")
    if spec is None or importlib.util.find_spec("PyQt5") is None:
        pytest.skip("boris-behav-obs is not installed (pip install -e '.[boris]')")
    saved = {k: v for k, v in sys.modules.items() if k == "boris" or k.startswith("boris.")}
    pkg = types.ModuleType("boris")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["boris"] = pkg
    if "boris.mpv2" not in sys.modules:
        try:
            importlib.import_module("boris.mpv2")
        except OSError:  # libmpv absent: an empty player is enough to load projects
            player = types.ModuleType("boris.mpv2")
            player.dll = ""
            sys.modules["boris.mpv2"] = player
    import boris.config as cfg
    import boris.export_observation as export
    import boris.project_functions as project
    import boris.version as version
    yield types.SimpleNamespace(cfg=cfg, project=project, export=export, version=version.__version__)
    for k in [k for k in sys.modules if k == "boris" or k.startswith("boris.")]:
        del sys.modules[k]
    sys.modules.update(saved)


def test_boris_opens_the_written_project(boris, tmp_path):
    assert boris.version == "8.27.4"
    (tmp_path / "a.mp4").write_bytes(b"\0")
    doc = _labels_doc("a.mp4", [(0, 0.5, 1.5), (9, 1.0, 3.0)])
    path = write_boris_project(tmp_path / "labels.boris", [observation_from_labels(doc, tmp_path / "a.mp4")], MA52)
    _, changed, pj, msg = boris.project.open_project_json(str(path))
    assert "error" not in pj and not changed and msg == ""
    # BORIS's integrity check: ethogram codes, paired state events, media found, lengths known
    assert boris.project.check_project_integrity(pj, boris.cfg.S, str(path), media_file_available=True) == ""
    obs = pj["observations"]["a"]
    flagged = boris.project.events_start_stop(pj[boris.cfg.ETHOGRAM], obs["events"], obs["type"])
    assert [(float(e[0]), e[2], e[-1]) for e in flagged] == [
        (0.5, "A1 shaking body", "START"), (1.0, "B1 nodding", "START"), (1.5, "A1 shaking body", "STOP"),
        (3.0, "B1 nodding", "STOP")]


def test_exports_written_by_boris_read_back(boris, tmp_path):
    """BORIS's own exporters write the tabular and aggregated events of a project; they read back
    to the project's segments."""
    (tmp_path / "a.mp4").write_bytes(b"\0")
    doc = _labels_doc("a.mp4", [(0, 0.5, 1.5), (9, 1.0, 3.0), (8, 3.5, 4.25)])
    path = write_boris_project(tmp_path / "labels.boris", [observation_from_labels(doc, tmp_path / "a.mp4")], MA52)
    _, _, pj, _ = boris.project.open_project_json(str(path))
    cfg = boris.cfg
    params = {cfg.SELECTED_SUBJECTS: [cfg.NO_FOCAL_SUBJECT], cfg.SELECTED_BEHAVIORS: [c.label for c in MA52.classes],
              "time": cfg.TIME_FULL_OBS, cfg.START_TIME: 0, cfg.END_TIME: 5}
    ok, msg = boris.export.export_tabular_events(pj, params, "a", pj["observations"]["a"], pj[cfg.ETHOGRAM],
                                                 str(tmp_path / "tabular.tsv"), "tsv")
    assert ok, msg
    rows, _ = boris.export.export_aggregated_events(pj, params, "a")
    (tmp_path / "aggregated.tsv").write_text(_AGGREGATED_HEADER + "\n" + rows.tsv.replace("\r", ""), encoding="utf-8")
    expected = [("A1 shaking body", 0.5, 1.5), ("B1 nodding", 1.0, 3.0), ("B3 turning head", 3.5, 4.25)]
    assert (tmp_path / "tabular.tsv").read_text().splitlines()[0] == _TABULAR_HEADER
    for name in ("tabular.tsv", "aggregated.tsv"):
        read = read_boris(tmp_path / name)
        assert sorted((s.label, s.start_s, s.end_s) for s in read.spans) == expected, name
        assert {s.video for s in read.spans} == {"a.mp4"}
