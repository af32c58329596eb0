"""A live session's files: what the folder job writes for a video, made by the same stages.

:func:`write_session` takes a :class:`pipelines.engines.live.LiveSession` and writes, each
atomically, in the folder job's names (:class:`pipelines.options.Outputs`): ``KEY.skeleton.h5``,
``KEY.motion.csv``, the pictures (``pictures``), ``KEY.events.csv``, ``KEY.eaf`` (``elan``) and
``KEY.labels.json`` last, with a ``live`` section (source, frames received and dropped,
latency). The recording (``KEY.mp4``, for a camera or a URL) is written by the source
(:class:`pose.sources.Recorder`); the ``.eaf`` links it.

The document is labelled over the whole session as the file job labels a video
(:func:`pipelines.stages.labelling.label_track` on the received track, with the scores the
windows got live), so its per-frame heat averages overlapping windows as a file's does (the
JSON lines had each window's own). Frames dropped before pose are placed back on the source's
frame grid for the files: MISSING in the skeleton (``meta["live"]["dropped"]`` lists them),
empty pixel motion, the heat and labels of the frame received before them; window, segment and
detection times are the grid's.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import platform
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.hashing import MIB, sha256_file
from pipelines.discovery import VideoJob
from pipelines.engines.live import LiveSession, latency_summary
from pipelines.job import job_record
from pipelines.options import JobOptions, Outputs
from pipelines.stages.classify import Classifier, ModelInfo, WindowScores, usable_windows
from pipelines.stages.document import assemble_document
from pipelines.stages.errors import write_error
from pipelines.stages.labelling import LabelResult, label_track
from pipelines.stages.pose import LAYOUT
from pipelines.stages.progress import ProgressFactory
from pipelines.stages.windowing import Window
from pipelines.stages.write import write_document_outputs, write_media
from pose.keypoint_tables import MISSING
from pose.skeleton_file import SCHEMA_VERSION, Skeleton, write_skeleton
from pose.video import VideoInfo, probe_video

__all__ = ["SessionFiles", "session_document", "write_session"]


@dataclass(frozen=True)
class SessionFiles:
    """What :func:`write_session` wrote: the labels document and the session's files."""

    doc: dict[str, Any]
    outputs: Outputs
    recording: Path | None

    def paths(self, opts: JobOptions) -> list[Path]:
        """The files written (the recording included)."""
        files = [p for p in self.outputs.expected(opts) if p.is_file()]
        return files + ([self.recording] if self.recording is not None and self.recording.is_file() else [])


# --------------------------------------------------------------------------- the source's frame grid


def _grid_index(pos: np.ndarray, n: int) -> np.ndarray:
    """(N,) for each grid frame, the received frame at or before it (the first one before it)."""
    return np.clip(np.searchsorted(pos, np.arange(n), side="right") - 1, 0, max(len(pos) - 1, 0))


def _on_grid(values: np.ndarray, pos: np.ndarray, n: int, fill: float | None) -> np.ndarray:
    """Per-frame ``values`` (n_received, ...) on the N-frame grid: dropped frames get ``fill``,
    or the value of the frame received before them when ``fill`` is None."""
    if fill is None:
        return values[_grid_index(pos, n)]
    out = np.full((n,) + values.shape[1:], fill, values.dtype)
    out[pos] = values
    return out


def _regrid_windows(records: list[dict[str, Any]], windows: list[Window], fps: float) -> list[dict[str, Any]]:
    out = []
    for rec in records:
        w = windows[rec["index"]]
        start_s, end_s = w.seconds(fps)
        heat = [0.0 if not np.isfinite(v) else v for v in rec["joint_heat"]]  # a window with no frame
        out.append({**rec, "start_frame": w.start, "end_frame": w.end, "start_s": round(start_s, 4),
                    "end_s": round(end_s, 4), "joint_heat": heat})
    return out


def _regrid_span(rec: dict[str, Any], start: int, end: int, fps: float) -> dict[str, Any]:
    return {**rec, "start_frame": start, "end_frame": end, "start_s": round(start / fps, 4),
            "end_s": round(end / fps, 4)}


def _regrid(result: LabelResult, session: LiveSession, n: int) -> LabelResult:
    """``result`` (on the received frames) on the source's N-frame grid (module doc)."""
    pos, fps, windows = session.pos, session.fps, session.windows
    segments = [_regrid_span(s, windows[s["windows"][0]].start, windows[s["windows"][-1]].end, fps)
                for s in result.segments]
    detections = [_regrid_span(d, int(pos[d["start_frame"]]), int(pos[d["end_frame"] - 1]) + 1, fps)
                  for d in result.detections]
    idx = _grid_index(pos, n)
    return dataclasses.replace(
        result, windows=_regrid_windows(result.windows, windows, fps), segments=segments, detections=detections,
        frame_heat=result.frame_heat[idx], frame_top=[result.frame_top[i] for i in idx],
        frame_body=result.frame_body[idx], motion_energy=result.motion_energy[idx],
        region_motion=None if result.region_motion is None else _on_grid(result.region_motion, pos, n, np.nan))


def _dropped_runs(pos: np.ndarray, n: int) -> list[list[int]]:
    got = np.zeros(n, bool)
    got[pos] = True
    runs, start = [], None
    for f in range(n + 1):
        if f < n and not got[f]:
            start = f if start is None else start
        elif start is not None:
            runs.append([start, f])
            start = None
    return runs


# --------------------------------------------------------------------------- the session's stages


def label_session(session: LiveSession, opts: JobOptions, classifier: Classifier | None) -> LabelResult:
    """The whole session labelled as the file job labels a video, with the windows' live scores."""
    kp = session.keypoints
    compact = [Window(w.index, lo, hi) for w, (lo, hi) in zip(session.windows, session.spans)]
    usable = usable_windows(kp, compact)
    scores, taxonomy = None, None
    if classifier is not None:
        taxonomy = classifier.taxonomy
        rows = [session.window_scores[w.index] for w in usable]
        if rows:
            heats = [r[2] for r in rows]
            scores = WindowScores(np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]),
                                  None if any(h is None for h in heats) else np.stack(heats), opts.heatmap)
    return label_track(kp, session.fps, compact, LAYOUT, taxonomy, scores, top_k=opts.top_k,
                       threshold=opts.threshold, flags=session.flags, region_motion=session.region)


def _grid_skeleton(session: LiveSession, n: int, video: Mapping[str, Any], live: Mapping[str, Any]) -> Skeleton:
    pos = session.pos
    kp = _on_grid(session.keypoints, pos, n, np.nan)
    flags = _on_grid(session.flags, pos, n, MISSING)
    scores = _on_grid(session.scores, pos, n, 0.0)
    ts = np.interp(np.arange(n), pos, session.timestamps) if len(pos) > 1 else np.full(n, session.timestamps[0])
    ts[pos] = session.timestamps
    meta = dict(session.meta)
    cuts = meta.get("shot_cuts")
    if isinstance(cuts, dict) and isinstance(cuts.get("frames"), list):
        meta["shot_cuts"] = {**cuts, "frames": [int(pos[f]) for f in cuts["frames"]]}
    meta.update(video=dict(video), postprocess=session.postprocess, live=dict(live),
                created={"utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                         "schema_version": SCHEMA_VERSION, "python": platform.python_version(),
                         "numpy": np.__version__})
    return Skeleton(kp, scores, np.maximum.accumulate(ts), flags, meta, LAYOUT,
                    _on_grid(session.region, pos, n, np.nan)).validate()


def _video_info(session: LiveSession, path: Path, n: int) -> VideoInfo:
    """The file's :class:`VideoInfo` for a file source; for a camera or URL that of its
    recording (its size and hash), with the session's frame count."""
    info = session.info
    if info.kind == "file":
        return probe_video(path)
    size = path.stat().st_size if path.is_file() else 0
    digest = sha256_file(path, MIB) if path.is_file() else ""
    return VideoInfo(str(path), path.name, size, info.width, info.height, float(session.fps), n, 0, n / session.fps,
                     digest)


def _record(job: VideoJob, opts: JobOptions, classifier: Classifier | None, source: str) -> dict[str, Any]:
    """The job record; a session without a file to fingerprint (no recording) names its source."""
    if job.path.is_file():
        return job_record(job, opts, classifier)
    with tempfile.NamedTemporaryFile() as empty:
        record = job_record(VideoJob(Path(empty.name), job.key), opts, classifier)
    record["input"] = {"source": source}
    return record


def live_section(session: LiveSession, ended: str, recording: Path | None, realtime: bool,
                 dropped: int | None = None, recording_left_out: int | None = None) -> dict[str, Any]:
    """The labels document's ``live`` part: source, how it ended, frames and latency, the
    recording and the frames its encoder could not keep (None: not counted)."""
    drops = max(session.frames_dropped, dropped or 0)
    total = session.frames_received + drops
    return {"source": session.info.source, "kind": session.info.kind, "realtime": realtime, "ended": ended,
            "frames_received": session.frames_received, "frames_dropped": drops,
            "drop_rate": round(drops / total, 4) if total else 0.0, "windows": len(session.records),
            "latency_s": latency_summary(session.records), "recording": recording.name if recording else None,
            "recording_frames_left_out": recording_left_out if recording else None}


def session_document(session: LiveSession, job: VideoJob, opts: JobOptions, classifier: Classifier | None,
                     live: Mapping[str, Any]) -> tuple[dict[str, Any], Skeleton, LabelResult, list[Window]]:
    """The labels document of a session (``live``: its :func:`live_section`), with the grid
    skeleton, labelled result and windows it was made from."""
    t0 = time.perf_counter()
    n = int(session.pos[-1]) + 1
    result = _regrid(label_session(session, opts, classifier), session, n)
    info = _video_info(session, job.path, n)
    record = _record(job, opts, classifier, session.info.source)
    video = {**{k: v for k, v in info.to_dict().items() if k != "path"}, "decoded_frames": n}
    live = {**live, "dropped": _dropped_runs(session.pos, n)}
    skel = _grid_skeleton(session, n, video, live)
    skel.meta["job_pose"] = {"input": record["input"], "pose": record["pose"]}
    model = ModelInfo.of(classifier) if classifier is not None else None
    outputs = Outputs.for_key(opts.out, job.key)
    doc = assemble_document(job, info, skel, session.windows, result, model, opts, outputs, record,
                            {"session_files": time.perf_counter() - t0})
    doc["live"] = {k: v for k, v in live.items() if k != "dropped"}
    return doc, skel, result, session.windows


def write_session(session: LiveSession, opts: JobOptions, classifier: Classifier | None, *, key: str,
                  video: Path, ended: str, realtime: bool, recording: Path | None = None,
                  dropped: int | None = None, recording_left_out: int | None = None,
                  progress: ProgressFactory | None = None) -> SessionFiles | None:
    """Write the session's files into ``opts.out`` under ``key`` (module doc); ``video``: the
    file the outputs link (the source file, or the recording); ``ended``: how the session
    ended (``"source ended"``, ``"interrupted"``, ``"source failed: …"``); ``dropped``: the
    source's own drop count when it knows more (frames dropped after the last one received);
    ``recording_left_out``: frames the recording's encoder could not keep up with
    (:attr:`pose.sources.Recorder.dropped`).
    None when no frame was received (nothing to write). Raises
    :class:`pipelines.stages.errors.StageError` for a file that cannot be written."""
    from pipelines.stages.progress import tqdm_frames

    if session.frames_received == 0 or len(session.pos) == 0:
        return None
    job = VideoJob(video, key)
    outputs = Outputs.for_key(opts.out, key)
    outputs.clean_leftovers()
    live = live_section(session, ended, recording, realtime, dropped, recording_left_out)
    doc, skel, result, _ = session_document(session, job, opts, classifier, live)
    try:
        write_skeleton(skel, outputs.skeleton)
    except OSError as e:
        raise write_error("pose", outputs.skeleton, e) from e
    taxonomy = classifier.taxonomy if classifier is not None else None
    media = dataclasses.replace(opts, export_clips=False)
    write_media(job, session.fps, skel, result, taxonomy, media, outputs, progress or tqdm_frames)
    write_document_outputs(job, doc, result, session.fps, taxonomy, opts, outputs)
    return SessionFiles(doc, outputs, recording)
