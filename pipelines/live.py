"""Label a camera, a stream or a video file as it happens: one JSON line per window.

    python -m pipelines.live SOURCE [--weights J.pt [--weights-bone B.pt]] [--out DIR] [--jsonl FILE]
        [--realtime] [--show] [--elan] [--window 2.0] [--stride 0.5] [--connect-timeout 10] [--read-timeout 5]

SOURCE is a camera index (``0``), a stream URL (RTSP, HTTP, anything FFmpeg opens) or a video
file (read as fast as the stages go, dropping nothing; ``--realtime`` paces it at its own frame
rate, as a camera delivers it). The engine is :mod:`pipelines.engines.live`; the session's
files (with ``--out``) :mod:`pipelines.engines.live_session`; docs/live.md. This module is only
the command line.

Exit status: 0 the source ended; 1 the source failed mid-session (what was labelled is written);
2 usage error or a source that cannot be used (named in the message); 130 Ctrl-C or SIGTERM
(the session is written).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from core.atomic import FolderError, ensure_writable_folder
from core.cli import positive_float
from pipelines.cli_flags import (
    add_label_arguments,
    add_pose_arguments,
    add_window_arguments,
    pose_options,
    window_options,
)
from pipelines.formats.labels_doc import NO_LABELS_NOTE, NO_WEIGHTS_REASON
from pipelines.options import JobOptions
from pose.sources import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_QUEUE_FRAMES,
    DEFAULT_READ_TIMEOUT_S,
    SourceError,
    SourceSpec,
    parse_source,
)

if TYPE_CHECKING:
    from pipelines.engines.live import LiveEngine

__all__ = ["LIVE_QUEUE_FRAMES", "build_parser", "main", "session_key"]

# Frames waiting for pose from a live source, at most: when pose is behind, the one it takes next
# is at most this many frames old (a file read without pacing decodes ahead by DEFAULT_QUEUE_FRAMES).
LIVE_QUEUE_FRAMES = 2


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m pipelines.live",
                                 description="Label a camera, a stream or a video file with micro-actions as it "
                                             "happens.")
    ap.add_argument("source", help="camera index (0), stream URL (rtsp://…, http://…) or video file")
    add_label_arguments(ap)
    add_pose_arguments(ap)
    add_window_arguments(ap)
    ap.add_argument("--realtime", action="store_true", help="pace a file at its own frame rate, as a camera")
    ap.add_argument("--jsonl", type=Path, help="write the JSON lines here (default: stdout)")
    ap.add_argument("--out", type=Path, help="session folder: skeleton, labels JSON, events, pictures, recording")
    ap.add_argument("--elan", action="store_true", help="also write the session's ELAN file (with --out)")
    ap.add_argument("--show", action="store_true", help="show the overlay in a window (skeleton, top-3, timeline)")
    ap.add_argument("--connect-timeout", type=positive_float, default=DEFAULT_CONNECT_TIMEOUT_S,
                    help="seconds for a URL to answer")
    ap.add_argument("--read-timeout", type=positive_float, default=DEFAULT_READ_TIMEOUT_S,
                    help="seconds without a frame after which a stream counts as stalled")
    ap.add_argument("--max-seconds", type=positive_float, help="end the session after this much source time")
    return ap


def session_key(spec: SourceSpec, now: _dt.datetime | None = None) -> str:
    """The session's file names: a file's stem; ``camera0-20260101T120000Z`` or
    ``stream-20260101T120000Z`` for a camera or a URL."""
    if spec.kind == "file":
        return spec.path.stem
    stamp = (now or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return f"camera{spec.camera}-{stamp}" if spec.kind == "camera" else f"stream-{stamp}"


def _options(ap: argparse.ArgumentParser, args: argparse.Namespace) -> JobOptions:
    if args.weights_bone and not args.weights:
        ap.error("--weights-bone needs --weights (the joint stream)")
    if args.pose_backend == "precomputed":
        ap.error("--pose-backend precomputed reads results made before; live mode estimates from the frames")
    if args.elan and args.out is None:
        ap.error("--elan needs --out (the session folder)")
    if args.jsonl is not None and not args.jsonl.parent.is_dir():
        ap.error(f"--jsonl {args.jsonl}: no such folder {args.jsonl.parent}")
    if args.jsonl is not None and args.jsonl.is_dir():
        ap.error(f"--jsonl {args.jsonl}: is a folder, not a file")
    try:
        if args.out is not None:
            ensure_writable_folder(args.out)
        return JobOptions(out=args.out or Path("."), pose=pose_options(args), windows=window_options(args),
                          threshold=args.threshold, top_k=args.top_k, heatmap=args.heatmap, elan=args.elan,
                          pictures=args.out is not None)
    except (ValueError, FolderError) as e:
        ap.error(str(e))


@contextlib.contextmanager
def _stop_on_signals(engine: LiveEngine, source) -> Iterator[list[int]]:
    """Ctrl-C or SIGTERM stops the session cleanly (the source closed, the frames taken kept,
    the session written); a second Ctrl-C ends the program at once (KeyboardInterrupt: files
    being written are left out, never half-written). Yields the list of signals received."""
    got: list[int] = []

    def stop(signum, frame) -> None:
        got.append(signum)
        engine.stop()
        threading.Thread(target=source.close, daemon=True).start()  # may wait for the reader
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield got
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _close_quietly(f: IO[str]) -> None:
    with contextlib.suppress(OSError):
        f.close()


def _line_writer(out: IO[str]):
    closed: list[bool] = []

    def write(record: dict) -> None:
        if closed:
            return
        try:
            out.write(json.dumps(record) + "\n")
            out.flush()
        except BrokenPipeError:  # `| head -1`: the reader quit; the session goes on and is written
            closed.append(True)
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())  # no second BrokenPipe at exit
            print("note: the reader of the JSON lines (stdout) went away; the session goes on without them",
                  file=sys.stderr)
    return write


def _load_classifier(args: argparse.Namespace):
    if not args.weights:
        print(f"note: {NO_WEIGHTS_REASON}", file=sys.stderr)
        return None
    from pipelines.video_to_labels import load_recognizer

    return load_recognizer(args)


def _run(engine: LiveEngine, source, spec: SourceSpec, got: list[int]) -> tuple[int, str]:
    """Run the engine over the source; returns (exit status, how the session ended)."""
    try:
        engine.run(source)
    except SourceError as e:
        print(f"error: {e}", file=sys.stderr)
        return (1 if engine.frames_received > 0 else 2), f"source failed: {e}"
    except (ValueError, RuntimeError, OSError) as e:  # pose failing mid-session: keep what was labelled
        print(f"error: {spec.label}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1, f"failed: {type(e).__name__}: {e}"
    if got:
        return 130, "interrupted"
    return 0, "source ended"


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    opts = _options(ap, args)
    try:
        classifier = _load_classifier(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    spec = parse_source(args.source)
    key = session_key(spec)
    recording = args.out / f"{key}.mp4" if args.out is not None and spec.kind != "file" else None
    from pipelines.engines.live_pose import warm_up
    from pipelines.stages.pose import SharedEstimator
    from pose.sources import open_source

    estimator = SharedEstimator(opts.pose)
    if args.realtime or spec.kind != "file":
        warm_up(estimator.get())  # before the source starts: its frames would be dropped meanwhile
    try:
        source = open_source(args.source, realtime=args.realtime, connect_timeout=args.connect_timeout,
                             read_timeout=args.read_timeout, record=recording,
                             queue_frames=LIVE_QUEUE_FRAMES if args.realtime or spec.kind != "file" else
                             DEFAULT_QUEUE_FRAMES)
    except SourceError as e:
        estimator.close()
        print(f"error: {e}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        stack.callback(estimator.close)
        stack.callback(source.close)
        try:
            out = args.jsonl.open("w", encoding="utf-8") if args.jsonl else sys.stdout
        except OSError as e:
            print(f"error: --jsonl {args.jsonl}: {e.strerror or e}", file=sys.stderr)
            return 2
        if args.jsonl:  # a line that could not be written (a full disk) was reported then: not again at close
            stack.callback(_close_quietly, out)
        try:
            return _session(args, opts, classifier, source, estimator, spec, key, _line_writer(out))
        except KeyboardInterrupt:
            # a third Ctrl-C must not cut the closing of the source and the pose model short: an
            # estimator left half-closed aborts the interpreter at exit (C++ terminate, status -6)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            print("\ninterrupted twice: stopped at once", file=sys.stderr)
            return 130


def _session(args, opts: JobOptions, classifier, source, estimator, spec: SourceSpec, key: str, write_line) -> int:
    from pipelines.engines.live import LiveEngine, LiveOptions, latency_summary

    if classifier is not None:  # MMN's threads leave the pose model about two cores (it uses ~1.3)
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 2))

    live = LiveOptions(job=opts, realtime=args.realtime or spec.kind != "file", max_seconds=args.max_seconds)
    overlay = None
    engine = LiveEngine(live, classifier, source.info, on_window=write_line, estimator=estimator)
    if args.show:
        from pipelines.engines.live_overlay import Overlay

        overlay = Overlay(lambda: list(engine.records), engine.fps, None if classifier else NO_LABELS_NOTE)
        engine.on_frame = overlay
        engine.pose.keep_images = True
    with _stop_on_signals(engine, source) as got:
        status, ended = _run(engine, source, spec, got)
        source.close()
        try:
            session = engine.finish()
        except RuntimeError as e:  # the classifier failed after the last frame: what it labelled is kept
            print(f"error: {spec.label}: {e}", file=sys.stderr)
            status, ended = 1, f"failed: {e}"
            session = engine.finish()
        if overlay is not None:
            overlay.close()
        if args.out is not None:
            status = _write(args, opts, classifier, session, spec, key, ended, source) or status
    dropped = max(session.frames_dropped, source.dropped)
    lat = latency_summary(session.records)
    print(f"{len(session.records)} window(s) from {session.frames_received} frame(s) of {spec.label}; "
          f"{dropped} frame(s) dropped; latency p50 {lat['p50']} s, p95 {lat['p95']} s ({ended})", file=sys.stderr)
    return status


def _write(args, opts, classifier, session, spec, key, ended, source) -> int:
    from pipelines.engines.live_session import write_session
    from pipelines.stages.errors import StageError
    from pipelines.stages.progress import silent_progress

    recording = source.recording
    video = spec.path if spec.kind == "file" else (recording or args.out / f"{key}.mp4")
    try:
        files = write_session(session, opts, classifier, key=key, video=video, ended=ended,
                              realtime=args.realtime or spec.kind != "file", recording=recording,
                              dropped=source.dropped, progress=silent_progress,
                              recording_left_out=source.recorder.dropped if source.recorder is not None else None)
    except StageError as e:
        print(f"error: the session files could not be written: {e}", file=sys.stderr)
        return 1
    if files is None:
        print(f"no frame was received from {spec.label}: no session files", file=sys.stderr)
    else:
        print(f"session written to {args.out}: " + ", ".join(p.name for p in files.paths(opts)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    code = main()
    if code == 130:  # interrupted: everything is written and closed, but a classifier thread cut short
        sys.stdout.flush()  # by a second Ctrl-C may still be inside torch, whose teardown then aborts
        sys.stderr.flush()  # the interpreter (C++ terminate, status -6): leave without the teardown
        os._exit(code)
    sys.exit(code)
