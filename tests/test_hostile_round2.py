"""Hostile input, round two (issue 20's closing paragraph): gold files that lie about their video,
malformed and oversized annotation and labels files, FIFOs and folders where files go, for
``python -m pipelines.agreement``; the coder's-edit merges on rerun; the live sources. Each test
was written failing first against the code it guards; docs/../notes list what held."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pympi
import pytest

from pipelines.agreement import main as agreement_main
from pipelines.formats.boris import read_boris
from pipelines.formats.spans import AnnotationError
from tests.cli import run_cli


def _eaf(path: Path, spans: list[tuple[float, float, str]], media: str = "/data/clip.mp4",
         tier: str = "micro-action") -> Path:
    eaf = pympi.Elan.Eaf(author="coder")
    eaf.add_linked_file("file://" + media, relpath=Path(media).name, mimetype="video/mp4")
    eaf.add_tier(tier)
    for start, end, value in spans:
        eaf.add_annotation(tier, int(round(start * 1000)), int(round(end * 1000)), value)
    eaf.remove_tier("default")
    eaf.to_file(str(path))
    return path


def _agree(capsys, *args) -> tuple[int, str]:
    code = agreement_main([str(a) for a in args])
    return code, capsys.readouterr().err


# ------------------------------------------------------------------------------ BORIS projects

_ETHOGRAM = {"0": {"type": "State event", "code": "nod"}}


def _project(events: object, file: object = None) -> str:
    file = {"1": ["clip.mp4"]} if file is None else file
    return json.dumps({"behaviors_conf": _ETHOGRAM,
                       "observations": {"o1": {"type": "MEDIA", "file": file, "events": events}}})


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,                                              # nesting past the recursion limit
    json.dumps({"behaviors_conf": {}, "observations": [1, 2]}),                 # observations a list
    json.dumps({"behaviors_conf": {}, "observations": {"o": 5}}),               # an observation a number
    _project([], file=["clip.mp4"]),                                            # "file" a list
    _project([], file={"1": [5]}),                                              # a media path a number
    _project([["abc", "", "nod", ""], [2, "", "nod", ""]]),                     # a time that is a string
    _project([[1], [2, "", "nod", ""]]),                                        # an event too short
    _project([5, 6]),                                                           # events that are numbers
    _project({"a": 1}),                                                         # events a dict
], ids=["nested", "obs-list", "obs-number", "file-list", "media-number", "time-string", "event-short",
        "event-number", "events-dict"])
def test_boris_project_of_wrong_shapes_is_named(tmp_path, text):
    """A .boris whose JSON has the wrong shapes is an AnnotationError naming the file, never a
    traceback (AttributeError, IndexError, RecursionError …)."""
    path = tmp_path / "lab.boris"
    path.write_text(text)
    with pytest.raises(AnnotationError, match="lab.boris"):
        read_boris(path)


# ------------------------------------------------------------------------------ agreement: sizes

def test_gold_span_far_past_any_video_is_refused_not_allocated(tmp_path, capsys):
    """A gold ELAN span ending at 10^7 s (115 days) made a 3·10^8-frame grid: 19 GB and no end.
    Now: exit 2 within seconds, naming the file."""
    gold = _eaf(tmp_path / "gold.eaf", [(0, 1, "nod"), (1, 10 ** 7, "shake")])
    pred = _eaf(tmp_path / "coder.eaf", [(0, 1, "nod"), (1, 4, "shake")])
    t0 = time.monotonic()
    code, err = _agree(capsys, pred, "--gold", gold, "--out", tmp_path / "out")
    assert code == 2 and "gold.eaf" in err and "frame" in err, err
    assert time.monotonic() - t0 < 30
    assert not (tmp_path / "out" / "agreement.json").exists()


def test_submission_row_far_past_the_video_is_refused(tmp_path, capsys):
    """A submission row ending at 10^9 s for a video with gold asked numpy for 224 GiB."""
    sub = tmp_path / "sub.csv"
    sub.write_text("video_id,t_start,t_end,class,score\nclip,0,1e9,0,0.5\n")
    gold = tmp_path / "gold.csv"
    gold.write_text("video,start_s,end_s,label\nclip,0,1,A1 shaking body\n")
    code, err = _agree(capsys, sub, "--gold", gold, "--out", tmp_path / "out")
    assert code == 2 and "sub.csv" in err, err


def test_submission_class_outside_the_taxonomy_names_the_submission(tmp_path, capsys):
    """A class index past MA-52's was reported against the run's own detections.csv (after
    writing it), not the submission that had it."""
    sub = tmp_path / "sub.csv"
    sub.write_text("video_id,t_start,t_end,class,score\nclip,0,1,99999999999999999999,0.5\n")
    gold = tmp_path / "gold.csv"
    gold.write_text("video,start_s,end_s,label\nclip,0,1,A1 shaking body\n")
    code, err = _agree(capsys, sub, "--gold", gold, "--out", tmp_path / "out")
    assert code == 2 and "sub.csv" in err and "detections.csv" not in err, err
    assert not (tmp_path / "out" / "detections.csv").exists()


# ------------------------------------------------------------------------------ agreement: labels documents

def _labels_doc() -> dict:
    return {"video": {"file_name": "clip.mp4", "fps": 10.0, "frame_count": 40, "duration_s": 4.0},
            "model": {"taxonomy": {"name": "ma52", "num_classes": 52}}, "windows": [],
            "detections": [{"class_index": 0, "start_s": 0.0, "end_s": 2.0, "score": 0.8}]}


def _set(path: list, value: object):
    def edit(doc: dict) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return edit


@pytest.mark.parametrize("edit", [
    _set(["model", "taxonomy"], KeyError),
    _set(["model", "taxonomy"], "ma52"),
    _set(["video", "fps"], float("nan")),
    _set(["video", "fps"], -30.0),
    _set(["video", "duration_s"], 1e12),
    _set(["video", "duration_s"], float("inf")),
    _set(["detections", 0, "score"], KeyError),
    _set(["detections", 0], "x"),
    _set(["detections", 0, "end_s"], float("nan")),
    _set(["detections", 0, "end_s"], -1.0),
    _set(["detections", 0, "class_index"], 10 ** 6),
    _set(["detections", 0, "class_index"], -1),
    _set(["detections", 0, "class_index"], "A1"),
], ids=["no-taxonomy", "taxonomy-string", "fps-nan", "fps-negative", "duration-1e12", "duration-inf",
        "no-score", "detection-string", "end-nan", "end-before-start", "class-1e6", "class-negative",
        "class-string"])
def test_labels_document_that_lies_is_named(tmp_path, capsys, edit):
    """A labels document with missing, non-finite, negative or out-of-range fields: exit 2 naming
    that document (not a traceback, not the run's own detections.csv), nothing written."""
    doc = _labels_doc()
    edit(doc)
    pred = tmp_path / "clip.labels.json"
    pred.write_text(json.dumps(doc))
    gold = tmp_path / "gold.csv"
    gold.write_text("video,start_s,end_s,label\nclip,0,1,A1 shaking body\n")
    code, err = _agree(capsys, pred, "--gold", gold, "--out", tmp_path / "out")
    assert code == 2 and "clip.labels.json" in err and "Traceback" not in err, err
    assert not (tmp_path / "out" / "detections.csv").exists()


# ------------------------------------------------------------------------------ agreement: not files

def test_prediction_that_is_a_fifo_is_refused_not_read(tmp_path):
    """A FIFO named like a CSV blocked the run forever (its header was read to tell a submission
    from annotations)."""
    fifo = tmp_path / "pred.csv"
    os.mkfifo(fifo)
    gold = tmp_path / "gold.csv"
    gold.write_text("video,start_s,end_s,label\nclip,0,1,nod\n")
    res = run_cli("pipelines.agreement", fifo, "--gold", gold, "--out", tmp_path / "out", timeout=60)
    assert res.returncode == 2 and "pred.csv" in res.stderr and "not a regular file" in res.stderr, res.stderr


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_gold_that_is_not_a_regular_file_says_so(tmp_path, capsys, kind):
    """A gold folder or FIFO was reported as 'no such file'."""
    gold = tmp_path / "gold.eaf"
    gold.mkdir() if kind == "folder" else os.mkfifo(gold)
    pred = _eaf(tmp_path / "coder.eaf", [(0, 1, "nod")])
    code, err = _agree(capsys, pred, "--gold", gold, "--out", tmp_path / "out")
    assert code == 2 and "gold.eaf" in err and "not a regular file" in err, err


def test_two_coders_value_with_a_line_break_names_the_file(tmp_path, capsys):
    """Two coders' values become classes; a value with a line feed made an uncaught TaxonomyError."""
    gold = _eaf(tmp_path / "gold.eaf", [(0, 1, "n\nd"), (1, 2, "shake")])
    pred = _eaf(tmp_path / "coder.eaf", [(0, 1, "nod")])
    code, err = _agree(capsys, pred, "--gold", gold, "--out", tmp_path / "out")
    assert code == 2 and "gold.eaf" in err and "U+000A" in err, err


def test_picture_of_many_spans_is_drawn_in_bounded_time(tmp_path):
    """10^6 BORIS events drew one bar and one text artist each: the picture never finished.
    A timeline of 20 000 spans is drawn as a few collections."""
    from pipelines.evaluation.report import agreement_document, draw_agreement, prepare
    rows = "".join(f"clip,{2 * i},{2 * i + 1},nod\n" for i in range(20_000))
    gold = tmp_path / "gold.csv"
    gold.write_text("video,start_s,end_s,label\n" + rows)
    pred = _eaf(tmp_path / "coder.eaf", [(0, 1, "nod")])
    inp = prepare([pred], [gold])
    doc = agreement_document(inp)
    done = threading.Event()

    def draw() -> None:
        draw_agreement(inp, doc, tmp_path / "a.png")
        done.set()

    threading.Thread(target=draw, daemon=True).start()
    assert done.wait(60), "the picture of 20 000 spans took over 60 s"
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
