"""A BORIS project a coder edited keeps the coder's intervals through a rerun, and BORIS's own
loader still accepts the merged project."""
from __future__ import annotations

import json

from core.taxonomy import MA52
from pipelines.formats.boris import boris_project, observation_from_labels, read_boris
from pipelines.formats.boris_merge import merge_boris
from pipelines.formats.user_edits import write_keeping_edits
from tests.test_boris import _labels_doc, boris  # noqa: F401  (boris: BORIS's own modules, headless)


def _project_text(tmp_path, segments) -> str:
    doc = _labels_doc("a.mp4", segments)
    project = boris_project([observation_from_labels(doc, tmp_path / "a.mp4")], MA52, project_dir=tmp_path)
    return json.dumps(project, indent=1) + "\n"


def _coder_edits(path) -> None:
    """As a coder in BORIS: B1 nodding stops later, A1 is deleted, a point behaviour is added."""
    pj = json.loads(path.read_text())
    events = pj["observations"]["a"]["events"]
    events[:] = [e for e in events if e[2] != "A1 shaking body"]
    stop = max(i for i, e in enumerate(events) if e[2] == "B1 nodding")
    events[stop][0], events[stop][5] = 3.4, 102
    pj["behaviors_conf"][str(len(pj["behaviors_conf"]))] = {
        "type": "Point event", "key": "g", "code": "gaze away", "description": "", "category": "", "modifiers": {},
        "excluded": "", "coding map": ""}
    events.append([2.2, "", "gaze away", "", "first time", 66])
    events.sort(key=lambda e: e[0])
    path.write_text(json.dumps(pj, indent=1))


def _intervals(path) -> set:
    return {(s.label, s.start_s, s.end_s) for s in read_boris(path).spans}


def test_coder_intervals_survive_a_rerun(tmp_path, boris):  # noqa: F811
    (tmp_path / "a.mp4").write_bytes(b"\0")
    path = tmp_path / "labels.boris"
    write_keeping_edits(path, _project_text(tmp_path, [(0, 0.5, 1.5), (9, 1.0, 3.0)]), merge_boris)
    _coder_edits(path)
    rerun = _project_text(tmp_path, [(0, 0.5, 1.5), (9, 1.1, 3.0), (8, 3.5, 4.0)])
    report = write_keeping_edits(path, rerun, merge_boris)

    assert _intervals(path) == {("B1 nodding", 1.0, 3.4),          # the coder's, not the machine's 1.1-3.0
                                ("B3 turning head", 3.5, 4.0)}     # new from the machine; A1 stays deleted
    pj = json.loads(path.read_text())
    assert [e[2:5] for e in pj["observations"]["a"]["events"] if e[2] == "gaze away"] == [["gaze away", "", "first time"]]
    assert "gaze away" in {b["code"] for b in pj["behaviors_conf"].values()}
    assert any("B1 nodding 1-3.4" in k for k in report.kept) and any("A1" in d for d in report.deleted)

    _, changed, loaded, msg = boris.project.open_project_json(str(path))
    assert "error" not in loaded and msg == ""
    assert boris.project.check_project_integrity(loaded, boris.cfg.S, str(path), media_file_available=True) == ""
