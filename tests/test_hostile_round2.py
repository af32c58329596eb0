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
from tests.media import coder_eaf


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
    gold = coder_eaf(tmp_path / "gold.eaf", [(0, 1, "nod"), (1, 10 ** 7, "shake")])
    pred = coder_eaf(tmp_path / "coder.eaf", [(0, 1, "nod"), (1, 4, "shake")])
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


def test_gold_span_after_the_predicted_video_ends_is_refused(tmp_path, capsys):
    """Gold of 'clip' at 60-70 s against a labels document of a 4 s clip was scored (exit 0):
    the frame grid grew to 70 s of 'none' and the kappa meant nothing. Gold that lies about its
    video is now named."""
    pred = tmp_path / "clip.labels.json"
    pred.write_text(json.dumps(_labels_doc()))
    gold = tmp_path / "gold.csv"
    gold.write_text("video,start_s,end_s,label\nclip,0,1,A1 shaking body\nclip,60,70,A1 shaking body\n")
    code, err = _agree(capsys, pred, "--gold", gold, "--out", tmp_path / "out")
    assert code == 2 and "gold.csv:3" in err and "after the video ends" in err, err
    # a span ending just past the end (an audio track longer than the video) is still scored
    gold.write_text("video,start_s,end_s,label\nclip,0,1,A1 shaking body\nclip,3.5,4.3,A1 shaking body\n")
    code, err = _agree(capsys, pred, "--gold", gold, "--out", tmp_path / "out")
    assert code == 0, err


def test_video_ids_are_escaped_in_messages(tmp_path, capsys):
    """A submission's video_id with terminal escape sequences was echoed raw in the list of
    predicted videos (ESC [31m recoloured the terminal)."""
    sub = tmp_path / "sub.csv"
    sub.write_text("video_id,t_start,t_end,class,score\n\x1b[31mred\x1b[0m,0,1,0,0.5\n")
    gold = tmp_path / "gold.csv"
    gold.write_text("video,start_s,end_s,label\nclip,0,1,A1 shaking body\n")
    code, err = _agree(capsys, sub, "--gold", gold, "--out", tmp_path / "out")
    assert code == 2 and "\x1b" not in err and "\\x1b[31mred" in err, err


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
    pred = coder_eaf(tmp_path / "coder.eaf", [(0, 1, "nod")])
    code, err = _agree(capsys, pred, "--gold", gold, "--out", tmp_path / "out")
    assert code == 2 and "gold.eaf" in err and "not a regular file" in err, err


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_build_dataset_annotation_that_is_not_a_regular_file_says_so(tmp_path, capsys, kind):
    """build_dataset called a folder or a FIFO given as the annotation file 'no such annotation file'."""
    from pipelines.build_dataset import main as build_main

    annotations = tmp_path / "coder.eaf"
    annotations.mkdir() if kind == "folder" else os.mkfifo(annotations)
    with pytest.raises(SystemExit) as exit_:
        build_main([str(annotations), "--out", str(tmp_path / "data.pkl")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "coder.eaf" in err and "not a regular file" in err, err


def test_two_coders_value_with_a_line_break_names_the_file(tmp_path, capsys):
    """Two coders' values become classes; a value with a line feed made an uncaught TaxonomyError."""
    gold = coder_eaf(tmp_path / "gold.eaf", [(0, 1, "n\nd"), (1, 2, "shake")])
    pred = coder_eaf(tmp_path / "coder.eaf", [(0, 1, "nod")])
    code, err = _agree(capsys, pred, "--gold", gold, "--out", tmp_path / "out")
    assert code == 2 and "gold.eaf" in err and "U+000A" in err, err


def test_picture_of_many_spans_is_drawn_in_bounded_time(tmp_path):
    """10^6 BORIS events drew one bar and one text artist each: the picture never finished.
    A timeline of 20 000 spans is drawn as a few collections."""
    from pipelines.evaluation.report import agreement_document, draw_agreement, prepare
    rows = "".join(f"clip,{2 * i},{2 * i + 1},nod\n" for i in range(20_000))
    gold = tmp_path / "gold.csv"
    gold.write_text("video,start_s,end_s,label\n" + rows)
    pred = coder_eaf(tmp_path / "coder.eaf", [(0, 1, "nod")])
    inp = prepare([pred], [gold])
    doc = agreement_document(inp)
    done = threading.Event()

    def draw() -> None:
        draw_agreement(inp, doc, tmp_path / "a.png")
        done.set()

    threading.Thread(target=draw, daemon=True).start()
    assert done.wait(60), "the picture of 20 000 spans took over 60 s"
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------------------ a coder's edited files on rerun

def _machine_eaf(tmp_path: Path) -> tuple[Path, str]:
    """``OUT/KEY.eaf`` as the job left it (with its machine copy) and the text a rerun would write."""
    from pipelines.formats.user_edits import machine_copy

    first = coder_eaf(tmp_path / "first.eaf", [(0, 1, "A1 shaking body")]).read_text()
    new = coder_eaf(tmp_path / "new.eaf", [(0, 2, "B1 nodding")]).read_text()
    out = tmp_path / "out"
    (out / ".machine").mkdir(parents=True)
    (out / "clip.eaf").write_text(first)
    machine_copy(out / "clip.eaf").write_text(first)
    return out / "clip.eaf", new


def _add_tiers(path: Path, xml: str) -> bytes:
    text = path.read_text()
    i = text.index("<LINGUISTIC_TYPE")
    path.write_text(text[:i] + xml + text[i:])
    return path.read_bytes()


_REF_TIER = ('<TIER TIER_ID="{name}" LINGUISTIC_TYPE_REF="ref-lt" PARENT_REF="{parent}"><ANNOTATION>'
             '<REF_ANNOTATION ANNOTATION_ID="{aid}" ANNOTATION_REF="{ref}"><ANNOTATION_VALUE>{name}</ANNOTATION_VALUE>'
             '</REF_ANNOTATION></ANNOTATION></TIER>')
_NOTE_TIER = ('<TIER TIER_ID="coder notes" LINGUISTIC_TYPE_REF="default-lt"><ANNOTATION><ALIGNABLE_ANNOTATION '
              'ANNOTATION_ID="{aid}" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts2"><ANNOTATION_VALUE>{value}'
              '</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION></TIER>')


@pytest.mark.timeout(60)
@pytest.mark.parametrize("xml, problem", [
    (_NOTE_TIER.format(aid="u1", value="first note") + _NOTE_TIER.format(aid="u2", value="second note"),
     "defined twice"),
    (_REF_TIER.format(name="x", parent="y", aid="u1", ref="a1") + _REF_TIER.format(name="y", parent="x", aid="u2",
                                                                                  ref="a1"), "cycle"),
    (_REF_TIER.format(name="x", parent="micro-action", aid="u1", ref="u2")
     + _REF_TIER.format(name="y", parent="x", aid="u2", ref="u1"), "cycle"),
    (_REF_TIER.format(name="x", parent="nowhere", aid="u1", ref="a1"), "no tier"),
], ids=["duplicate-tier-names", "parent-ref-cycle", "annotation-ref-cycle", "parent-ref-missing"])
def test_edited_eaf_that_pympi_would_mangle_or_loop_on_is_refused_and_left(tmp_path, xml, problem):
    """Two tiers of one name: pympi kept the second, and the merge wrote the file back without
    the first tier's annotations (exit 0). A cycle of ANNOTATION_REFs: pympi looped forever.
    Now the strict reader refuses them first, naming the file, and the file stays byte for byte."""
    from pipelines.formats.elan_merge import merge_eaf
    from pipelines.formats.user_edits import write_keeping_edits

    path, new = _machine_eaf(tmp_path)
    before = _add_tiers(path, xml)
    with pytest.raises(AnnotationError, match=problem) as err:
        write_keeping_edits(path, new, merge_eaf)
    assert str(path) in str(err.value)
    assert path.read_bytes() == before


def test_machine_copy_folder_that_is_a_file_is_named(tmp_path):
    """``OUT/.machine`` a file: every output counted as a person's, 'cannot write (File exists)'
    named the events table, and the failure's clean-up crashed the run (NotADirectoryError in forget)."""
    from pipelines.formats.elan_merge import merge_eaf
    from pipelines.formats.user_edits import forget, write_keeping_edits

    path, new = _machine_eaf(tmp_path)
    (path.parent / ".machine" / "clip.eaf").unlink()
    (path.parent / ".machine").rmdir()
    (path.parent / ".machine").write_text("not a folder")
    before = path.read_bytes()
    with pytest.raises(AnnotationError, match=r"\.machine: not a folder"):
        write_keeping_edits(path, new, merge_eaf)
    assert path.read_bytes() == before
    forget(path.parent / "clip.skeleton.h5")  # no NotADirectoryError
    assert (path.parent / ".machine").read_text() == "not a folder"


def test_corrupt_machine_copy_of_an_eaf_keeps_every_tier_of_the_person(tmp_path):
    """A machine copy that is no longer ELAN failed the video with 'KEY.eaf: Unable to parse
    eaf' (the person's file was fine). It now counts as no copy: the person's tiers are kept."""
    from pipelines.formats.elan_merge import merge_eaf
    from pipelines.formats.user_edits import machine_copy, write_keeping_edits

    path, new = _machine_eaf(tmp_path)
    path.write_text(path.read_text().replace("A1 shaking body", "B2 corrected"))
    machine_copy(path).write_text("<trunc")
    report = write_keeping_edits(path, new, merge_eaf)
    eaf = pympi.Elan.Eaf(str(path))
    assert report is not None and "micro-action" in report.kept
    assert [a[2] for a in eaf.get_annotation_data_for_tier("micro-action")] == ["B2 corrected"]
    assert [a[2] for a in eaf.get_annotation_data_for_tier("micro-action (machine)")] == ["B1 nodding"]


def _boris_pair(tmp_path: Path) -> tuple[Path, str, dict]:
    from pipelines.formats.user_edits import machine_copy

    obs = {"type": "MEDIA", "file": {"1": ["clip.mp4"]}, "events": [[0.0, "", "nod", "", ""], [1.0, "", "nod", "", ""]]}
    project = {"behaviors_conf": _ETHOGRAM, "observations": {"clip": obs}, "project_name": "run"}
    new = dict(project, observations={"clip": dict(obs, events=[[0.0, "", "nod", "", ""], [2.0, "", "nod", "", ""]])})
    (tmp_path / ".machine").mkdir()
    path = tmp_path / "labels.boris"
    for p in (path, machine_copy(path)):
        p.write_text(json.dumps(project))
    return path, json.dumps(new), project


@pytest.mark.parametrize("edit", [
    lambda pj: pj["observations"].__setitem__("clip", 5),
    lambda pj: pj["observations"]["clip"].__setitem__("events", [["x"], 5]),
    lambda pj: pj.__setitem__("behaviors_conf", {"0": "nod"}),
], ids=["observation-number", "events-wrong", "ethogram-strings"])
def test_edited_boris_project_of_wrong_shapes_is_named_and_left(tmp_path, edit):
    """An edited labels.boris with an observation that is a number, events that are not lists,
    an ethogram of strings: tracebacks at the end of the run; now an AnnotationError naming it."""
    from pipelines.formats.boris_merge import merge_boris
    from pipelines.formats.user_edits import write_keeping_edits

    path, new, project = _boris_pair(tmp_path)
    edit(project)
    path.write_text(json.dumps(project))
    before = path.read_bytes()
    with pytest.raises(AnnotationError, match="labels.boris"):
        write_keeping_edits(path, new, merge_boris)
    assert path.read_bytes() == before


def test_corrupt_machine_copy_of_a_boris_project_keeps_the_person_s(tmp_path):
    """A truncated machine copy made a JSONDecodeError traceback; now it counts as none."""
    from pipelines.formats.boris_merge import merge_boris
    from pipelines.formats.user_edits import machine_copy, write_keeping_edits

    path, new, project = _boris_pair(tmp_path)
    project["observations"]["clip"]["events"][1][0] = 1.5  # the coder's correction
    path.write_text(json.dumps(project))
    machine_copy(path).write_text("{trunc")
    report = write_keeping_edits(path, new, merge_boris)
    merged = json.loads(path.read_text())
    assert report is not None and [1.5, "", "nod", "", ""] in merged["observations"]["clip"]["events"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_rerun_over_broken_edited_files_fails_those_videos_only(tmp_path, golden_weights):
    """The folder job redone over a coder's ``.eaf`` with two tiers of one name (the merge would
    drop one) and over a folder where the other video's ``.eaf`` goes (the clean-up of the failure
    crashed the run with IsADirectoryError): exit 1, each failure names its file, nothing the
    person had is changed, no traceback."""
    import csv
    import shutil

    from tests.data import VIDEOS_DIR

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for clip in ("0019_02_0078.mp4", "0030_01_0002.mp4"):
        shutil.copy(VIDEOS_DIR / clip, folder / clip)
    args = (folder, "--out", out, "--weights", golden_weights, "--device", "cpu", "--elan")
    first = run_cli("pipelines.video_to_labels", *args, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    eaf = out / "0030_01_0002.eaf"
    before = _add_tiers(eaf, _NOTE_TIER.format(aid="u1", value="first note").replace("ts1", "ts2").replace(
        'REF2="ts2"', 'REF2="ts3"') + _NOTE_TIER.format(aid="u2", value="second").replace("ts1", "ts2").replace(
        'REF2="ts2"', 'REF2="ts3"'))
    (out / "0019_02_0078.eaf").unlink()
    (out / "0019_02_0078.eaf").mkdir()
    (out / "0019_02_0078.eaf" / "mine.txt").write_text("kept")
    second = run_cli("pipelines.video_to_labels", *args, "--top-k", "3", timeout=600)
    assert second.returncode == 1 and "Traceback" not in second.stderr, second.stderr[-3000:]
    reasons = {Path(r["file"]).stem: r["reason"] for r in csv.DictReader((out / "failures.csv").open())}
    assert "0030_01_0002.eaf" in reasons["0030_01_0002"] and "defined twice" in reasons["0030_01_0002"]
    assert "0019_02_0078.eaf" in reasons["0019_02_0078"]
    assert eaf.read_bytes() == before and (out / "0019_02_0078.eaf" / "mine.txt").read_text() == "kept"


# ------------------------------------------------------------------------------ training data (spot check)

def test_ragged_keypoint_list_names_the_file_and_clip(tmp_path):
    """A clip whose keypoint is a ragged nested list: numpy's 'inhomogeneous shape' message,
    without the file or the clip."""
    import pickle

    import numpy as np

    from mmn.training.datasets import DatasetError, read_pyskl

    anns = [{"frame_dir": "ragged clip", "label": 0, "keypoint": [[[[0, 0]] * 44] * 10, [[[0, 0]] * 44] * 3]},
            {"frame_dir": "fine", "label": 1, "keypoint": np.zeros((1, 10, 44, 2), np.float32)}]
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps({"split": {"train": ["ragged clip", "fine"]}, "annotations": anns}))
    with pytest.raises(DatasetError, match=r"data\.pkl.*ragged clip"):
        read_pyskl(path, "train")


# ------------------------------------------------------------------------------ live sources

@pytest.mark.timeout(120)
def test_a_stream_whose_server_goes_away_mid_session_is_a_failure_not_an_end(tmp_path, serve):
    """The server sent 40% of a 75-frame mp4 it had announced in full, then closed: the session
    ended as if the source had ended (exit 0, 'source ended'). The container says how many frames
    it holds, so stopping short of them is a source failure (exit 1 after writing the session)."""
    from pose.sources import SourceError, open_source
    from tests.data import VIDEOS_DIR
    from tests.media import faststart_copy

    data = faststart_copy(VIDEOS_DIR / "0030_01_0002.mp4", tmp_path / "clip.mp4")
    url = serve(data, cut=0.4, hold_s=0).url  # 40 % sent, then the connection closes
    src = open_source(url, read_timeout=3.0, lossless=True)
    got = 0
    with pytest.raises(SourceError, match="ended after") as err:
        for _ in src:
            got += 1
    src.close()
    assert 0 < got < 75 and err.value.frames_read == got and err.value.source == url
    with open_source(serve(data).url, lossless=True) as whole:  # the whole clip still ends cleanly
        assert sum(1 for _ in whole) == 75


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ctrl_c_hammered_during_the_session_end_exits_130_never_aborts(tmp_path, golden_weights):
    """Ctrl-C pressed again and again once the first window is out (the second lands in the
    session's end or its writing): 1 run in 3 ended in 'terminate called without an active
    exception', status -6 (SIGABRT), from a classifier thread cut short inside torch. Now exit
    130 every time, and no half-written file."""
    import signal
    import subprocess

    from pose.sources import Recorder
    from pose.video import iter_frames
    from tests.cli import start_cli
    from tests.data import VIDEOS_DIR

    clip = tmp_path / "long.mp4"
    rec, i = Recorder(clip, 540, 648, 30.0, preset="ultrafast"), 0
    for path in sorted(VIDEOS_DIR.glob("*.mp4")) * 2:
        for _, _, frame in iter_frames(path):
            rec.write(frame[::2, ::2].copy(), i / 30.0)
            i += 1
    rec.close()
    for run in range(3):
        out = tmp_path / f"session{run}"
        proc = start_cli("pipelines.live", clip, "--weights", golden_weights, "--device", "cpu", "--out", out)
        try:
            assert proc.stdout.readline(), proc.stderr.read()
            sent = 0
            while proc.poll() is None and sent < 40:
                proc.send_signal(signal.SIGINT)
                sent += 1
                time.sleep(0.05)
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert proc.returncode == 130, (run, proc.returncode, err[-2000:])
        assert not [p.name for p in out.glob("*.part")] if out.exists() else True


def test_a_window_consumer_that_fails_mid_session_loses_nothing_labelled(tmp_path):
    """The consumer of the window records failed at the third window: ``finish`` raised the
    failure again after ``run`` had, so the CLI ended in a traceback and wrote no session at all.
    Now the failure is raised once; ``finish`` then returns the session with every window
    labelled before it, and the session files are written from it."""
    from pipelines.engines.live import LiveEngine, LiveOptions
    from pipelines.engines.live_session import write_session
    from pipelines.options import JobOptions
    from pipelines.stages.windowing import WindowOptions
    from pose.sources import open_source
    from tests.data import VIDEOS_DIR

    clip = VIDEOS_DIR / "0030_01_0002.mp4"
    opts = JobOptions(out=tmp_path, pictures=False, windows=WindowOptions(window=1.0, stride=0.5))

    def consume(record: dict) -> None:
        if record["index"] == 2:
            raise BrokenPipeError(32, "Broken pipe")

    with open_source(clip) as source:
        engine = LiveEngine(LiveOptions(job=opts), None, source.info, on_window=consume)
        with pytest.raises(RuntimeError, match="BrokenPipeError"):
            engine.run(source)
            engine.finish()
    session = engine.finish()  # the windows labelled up to the failure (the third was labelled, not consumed)
    assert [r["index"] for r in session.records] == [0, 1, 2]
    files = write_session(session, opts, None, key="cut", video=clip, ended="failed", realtime=False)
    doc = json.loads(files.outputs.labels.read_text())
    assert [w["index"] for w in doc["windows"]][:3] == [0, 1, 2]


@pytest.mark.timeout(300)
def test_live_lines_piped_into_a_reader_that_quits_keep_the_session(tmp_path):
    """``python -m pipelines.live CLIP --out DIR | head -1``: the closed pipe killed the
    classifier thread, then a traceback, and no session file was written (the labelled windows
    were lost). Now the lines stop, a note says so, and the session is written (exit 0)."""
    import subprocess

    from tests.cli import start_cli
    from tests.data import VIDEOS_DIR

    out = tmp_path / "session"
    proc = start_cli("pipelines.live", VIDEOS_DIR / "0030_01_0002.mp4", "--out", out, "--window", "1.0",
                     "--stride", "0.25")
    try:
        assert proc.stdout.readline()
        proc.stdout.close()  # the reader quits after one line, as `| head -1` does
        err = proc.stderr.read()
        proc.wait(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0 and "Traceback" not in err, err[-3000:]
    assert "BrokenPipe" not in err and "stdout" in err
    doc = json.loads((out / "0030_01_0002.labels.json").read_text())
    assert len(doc["windows"]) >= 5


def test_events_table_re_saved_with_semicolons_is_refused_not_mangled(tmp_path):
    """A spreadsheet in a European locale saves KEY.events.csv with ';': the merge found no
    common column, stuffed each of the person's rows into one extra column, left the machine's
    rows out as 'deleted' and wrote that over the person's file (exit 0). Now it is refused,
    naming the file, which stays as the person saved it."""
    from pipelines.formats.user_edits import machine_copy, merge_csv_rows, write_keeping_edits

    machine = ("video,start_s,stop_s,duration_s,class_index,code,name,body_code,body_level,mean_prob\n"
               "clip.mp4,0.0,2.5,2.5,1,A3,sitting straightly,A,body,0.9999\n")
    path = tmp_path / "clip.events.csv"
    machine_copy(path).parent.mkdir()
    machine_copy(path).write_text(machine)
    path.write_bytes(machine.replace(",", ";").replace("sitting straightly", "corrected").replace("\n", "\r\n")
                     .encode())
    before = path.read_bytes()
    with pytest.raises(AnnotationError, match=r"clip\.events\.csv.*separator"):
        write_keeping_edits(path, machine.replace("0.9999", "0.9"), merge_csv_rows)
    assert path.read_bytes() == before


@pytest.mark.timeout(300)
def test_jsonl_that_is_a_folder_or_a_full_disk_is_named_without_a_traceback(tmp_path):
    """``--jsonl FOLDER`` was an IsADirectoryError traceback (exit 1); ``--jsonl /dev/full``
    (a full disk) wrote the session but ended in a traceback when the file was closed."""
    from tests.data import VIDEOS_DIR

    clip = VIDEOS_DIR / "0019_02_0078.mp4"
    folder = tmp_path / "lines"
    folder.mkdir()
    res = run_cli("pipelines.live", clip, "--jsonl", folder, timeout=240)
    assert res.returncode == 2 and str(folder) in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    out = tmp_path / "session"
    res = run_cli("pipelines.live", clip, "--jsonl", "/dev/full", "--out", out, timeout=240)
    assert res.returncode == 1 and "No space left" in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert (out / "0019_02_0078.labels.json").is_file()
