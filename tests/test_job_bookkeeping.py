"""The folder job's resume and failure bookkeeping (pipelines.job), in process and in seconds:
what :func:`triage` decides before a video is processed (done, redo, known failure), when
:func:`finished_document` accepts a labels document, how :func:`record_failure` and
:func:`known_failure` remember a broken file, and what :func:`run_video` does with each.

The inputs are real: the bundled MA-52 clips, broken files beside them, and poses given as
AlphaPose results (the ``precomputed`` backend, so no pose model runs). No checkpoint: the
labels are the model-free ones, which the bookkeeping treats like any other.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipelines.discovery import VideoJob
from pipelines.job import (
    JobOptions,
    Outputs,
    PoseOptions,
    StageError,
    VideoOutcome,
    finished_document,
    job_record,
    known_failure,
    record_failure,
    run_video,
    triage,
)
from pipelines.stages.windowing import WindowOptions
from tests.data import VIDEOS_DIR
from tests.media import faststart_truncated

CLIP = VIDEOS_DIR / "0010_02_0101.mp4"    # 47 frames
OTHER = VIDEOS_DIR / "0019_02_0078.mp4"   # 50 frames


class _Quiet:
    """A progress bar that shows nothing."""

    def __init__(self, total: int, desc: str) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def update(self, n: int = 1) -> None:
        pass


def _alphapose(path: Path, frames: range) -> Path:
    """AlphaPose results (Halpe-136) with one person in ``frames``: a fixed point cloud in the
    middle of the 1080×1296 picture that drifts a few pixels a frame."""
    rng = np.random.default_rng(0)
    body = rng.uniform([420, 200], [680, 1200], (136, 2))
    dets = []
    for t in frames:
        kps = np.concatenate([body + [2.0 * t, 1.0 * t], np.full((136, 1), 0.8)], axis=1)
        dets.append({"image_id": f"{t}.jpg", "category_id": 1, "keypoints": kps.ravel().tolist(), "score": 2.5,
                     "idx": 0})
    path.write_text(json.dumps(dets))
    return path


@pytest.fixture(scope="module")
def poses(tmp_path_factory) -> Path:
    return _alphapose(tmp_path_factory.mktemp("poses") / "alphapose-results.json", range(50))


def _opts(out: Path, poses: Path, smoothing: str = "savgol", window: float = 2.0, stride: float = 0.5,
          **kw) -> JobOptions:
    """The folder job's options with the poses from ``poses`` and no pictures (unless ``pictures=True``)."""
    return JobOptions(out=out, pose=PoseOptions("precomputed", {"path": str(poses)}, smoothing),
                      windows=WindowOptions(window, stride), **{"pictures": False, **kw})


def _run(job: VideoJob, opts: JobOptions, **kw) -> VideoOutcome:
    return run_video(job, opts, None, progress=_Quiet, **kw)


def _mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in out.iterdir()}


@pytest.fixture
def talk(tmp_path) -> VideoJob:
    """A real clip copied to ``in/talk.mp4`` (so the test may change it)."""
    (tmp_path / "in").mkdir()
    shutil.copy(CLIP, tmp_path / "in" / "talk.mp4")
    return VideoJob(tmp_path / "in" / "talk.mp4", "talk")


# --------------------------------------------------------------------------- finished videos


def test_a_finished_video_is_already_done_and_nothing_is_rewritten(talk, poses, tmp_path):
    opts = _opts(tmp_path / "out", poses)
    first = _run(talk, opts)
    assert first.status == "done" and first.error is None, first.error
    outputs = Outputs.for_key(opts.out, "talk")
    assert all(p.is_file() for p in outputs.expected(opts)) and not outputs.failed.exists()
    assert first.doc["job"] == json.loads(json.dumps(job_record(talk, opts, None)))
    assert first.doc["video"]["frame_count"] == 47

    decided = triage(talk, opts)
    assert isinstance(decided, VideoOutcome) and decided.status == "already done"
    assert decided.doc == json.loads(outputs.labels.read_text()) == json.loads(json.dumps(first.doc))
    assert finished_document(outputs, opts, job_record(talk, opts, None)) == decided.doc
    stamps = _mtimes(opts.out)
    again = _run(talk, opts)
    assert again.status == "already done" and again.doc == decided.doc
    assert _mtimes(opts.out) == stamps


def test_overwrite_redoes_a_finished_video(talk, poses, tmp_path):
    opts = _opts(tmp_path / "out", poses)
    assert _run(talk, opts).status == "done"
    labels = Outputs.for_key(opts.out, "talk").labels
    before = labels.stat().st_mtime_ns
    redo = replace(opts, overwrite=True)
    assert isinstance(triage(talk, redo), dict)
    assert _run(talk, redo).status == "done" and labels.stat().st_mtime_ns > before


def test_a_changed_option_is_redone_and_the_pose_reused_unless_a_pose_option_changed(talk, poses, tmp_path):
    opts = _opts(tmp_path / "out", poses)
    assert _run(talk, opts).status == "done"
    outputs = Outputs.for_key(opts.out, "talk")
    skeleton = outputs.skeleton.stat().st_mtime_ns

    longer = _opts(opts.out, poses, window=1.0, stride=0.25)   # a labelling option
    record = triage(talk, longer)
    assert isinstance(record, dict) and record["labels"]["window_s"] == 1.0
    assert finished_document(outputs, longer, record) is None  # the document on disk has window 2.0
    done = _run(talk, longer)
    assert done.status == "done" and done.doc["windowing"]["window_s"] == 1.0
    assert outputs.skeleton.stat().st_mtime_ns == skeleton     # same video, same pose options: reused
    assert _run(talk, longer).status == "already done"

    pictures = _opts(opts.out, poses, window=1.0, stride=0.25, pictures=True)   # one more output
    assert not isinstance(triage(talk, pictures), VideoOutcome)
    assert _run(talk, pictures).status == "done" and outputs.heatmap.is_file() and outputs.timeline.is_file()
    assert outputs.skeleton.stat().st_mtime_ns == skeleton

    rough = _opts(opts.out, poses, window=1.0, stride=0.25, pictures=True, smoothing="none")  # a pose option
    done = _run(talk, rough)
    assert done.status == "done" and done.doc["job"]["pose"]["smoothing"]["method"] == "none"
    assert outputs.skeleton.stat().st_mtime_ns != skeleton     # the skeleton was made again


def test_a_changed_input_is_redone_pose_included(talk, poses, tmp_path):
    opts = _opts(tmp_path / "out", poses)
    assert _run(talk, opts).status == "done"
    outputs = Outputs.for_key(opts.out, "talk")
    skeleton = outputs.skeleton.stat().st_mtime_ns
    shutil.copy(OTHER, talk.path)                               # another video under the same name
    record = triage(talk, opts)
    assert isinstance(record, dict) and record["input"]["size"] == OTHER.stat().st_size
    done = _run(talk, opts)
    assert done.status == "done" and done.doc["video"]["frame_count"] == 50
    assert done.doc["job"]["input"]["size"] == OTHER.stat().st_size
    assert outputs.skeleton.stat().st_mtime_ns != skeleton


@pytest.mark.parametrize("damage", ["missing events table", "truncated document", "other job record",
                                    "not an object"])
def test_a_missing_or_damaged_output_is_not_finished(talk, poses, tmp_path, damage):
    opts = _opts(tmp_path / "out", poses)
    assert _run(talk, opts).status == "done"
    outputs = Outputs.for_key(opts.out, "talk")
    record = job_record(talk, opts, None)
    assert finished_document(outputs, opts, record) is not None
    text = outputs.labels.read_text()
    if damage == "missing events table":
        outputs.events.unlink()
    elif damage == "truncated document":
        outputs.labels.write_text(text[: len(text) // 2])
    elif damage == "other job record":
        doc = json.loads(text)
        doc["job"]["labels"]["top_k"] = 3
        outputs.labels.write_text(json.dumps(doc))
    else:
        outputs.labels.write_text("[1, 2, 3]")
    assert finished_document(outputs, opts, record) is None
    assert not isinstance(triage(talk, opts), VideoOutcome)
    again = _run(talk, opts)
    assert again.status == "done" and outputs.events.is_file()
    assert json.loads(outputs.labels.read_text())["job"]["labels"]["top_k"] == 5


# --------------------------------------------------------------------------- failures


def test_a_broken_file_fails_once_and_is_not_retried_until_it_changes(tmp_path, poses):
    (tmp_path / "in").mkdir()
    broken = tmp_path / "in" / "notes.mp4"
    broken.write_text("this is a text file, not a video\n")
    job, opts = VideoJob(broken, "notes"), _opts(tmp_path / "out", poses)
    outputs = Outputs.for_key(opts.out, "notes")

    first = _run(job, opts)
    assert first.status == "failed" and not first.known and first.doc is None
    assert first.error.stage == "probe" and "cannot be opened as a video" in str(first.error)
    assert [p.name for p in opts.out.iterdir()] == ["notes.failed.json"]
    record = json.loads(outputs.failed.read_text())
    assert (record["file"], record["stage"], record["reason"]) == (str(broken), "probe", str(first.error))

    known = known_failure(job, outputs, opts)
    assert isinstance(known, StageError) and (known.stage, str(known)) == ("probe", str(first.error))
    again = _run(job, opts)                                     # unchanged: not tried again
    assert again.status == "failed" and again.known and str(again.error) == str(first.error)
    decided = triage(job, opts)
    assert isinstance(decided, VideoOutcome) and decided.known

    retried = _run(job, opts, retry_failed=True)                # --retry-failed: tried, fails again
    assert retried.status == "failed" and not retried.known and retried.error.stage == "probe"
    forced = _run(job, replace(opts, overwrite=True))
    assert forced.status == "failed" and not forced.known

    assert known_failure(job, outputs, _opts(opts.out, poses, smoothing="none")) is None  # another pose option
    assert known_failure(job, outputs, _opts(opts.out, poses, window=1.0)) is not None    # a labelling option

    shutil.copy(CLIP, broken)                                   # the file was fixed: processed
    assert known_failure(job, outputs, opts) is None
    fixed = _run(job, opts)
    assert fixed.status == "done" and fixed.doc["video"]["frame_count"] == 47
    assert not outputs.failed.exists()


def test_each_kind_of_broken_input_fails_at_its_stage(tmp_path, poses):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "empty.mp4").write_bytes(b"")
    faststart_truncated(CLIP, inp / "cut_short.mp4")
    shutil.copy(CLIP, inp / "nobody.mp4")
    nobody = _alphapose(tmp_path / "nobody.json", range(1000, 1010))   # detections past the clip's end only
    cases = {"empty": ("probe", "empty", poses), "cut_short": ("decode", "truncated", poses),
             "nobody": ("pose", "no person detected", nobody), "gone": ("probe", "No such file", poses)}
    for key, (stage, words, results) in cases.items():
        job, opts = VideoJob(inp / f"{key}.mp4", key), _opts(tmp_path / "out", results)
        got = _run(job, opts)
        assert got.status == "failed" and got.error.stage == stage and words in str(got.error), (key, got.error)
        assert sorted(p.name for p in opts.out.glob(f"{key}.*")) == ([] if key == "gone" else [f"{key}.failed.json"])
    # the person-less video with other results (a pose option) is a new try, and works
    opts = _opts(tmp_path / "out", poses)
    assert known_failure(VideoJob(inp / "nobody.mp4", "nobody"), Outputs.for_key(opts.out, "nobody"), opts) is None
    assert _run(VideoJob(inp / "nobody.mp4", "nobody"), opts).status == "done"


def test_record_failure_leaves_only_the_failure_record_and_it_is_known(talk, poses, tmp_path):
    opts = _opts(tmp_path / "out", poses, pictures=True)
    assert _run(talk, opts).status == "done"
    outputs = Outputs.for_key(opts.out, "talk")
    neighbour = opts.out / "talk2.labels.json"                  # another video's file: left alone
    neighbour.write_text("{}")
    record_failure(talk, outputs, StageError("render", "disk full while writing talk.annotated.mp4"), opts)
    assert sorted(p.name for p in opts.out.iterdir()) == ["talk.failed.json", "talk2.labels.json"]
    decided = triage(talk, opts)
    assert isinstance(decided, VideoOutcome) and decided.status == "failed" and decided.known
    assert (decided.error.stage, str(decided.error)) == ("render", "disk full while writing talk.annotated.mp4")
    redone = _run(talk, opts, retry_failed=True)
    assert redone.status == "done" and not outputs.failed.exists()
    assert all(p.is_file() for p in outputs.expected(opts))
