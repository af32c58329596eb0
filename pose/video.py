"""Open and stream a video with OpenCV: :class:`VideoInfo`, :func:`probe_video`, :func:`iter_frames`,
and :func:`prefetch`, which decodes ahead on a thread while the caller works on earlier frames.

Frames are streamed one at a time (never the whole video in memory). Every problem with the
file raises :class:`VideoError` whose message names the file and the problem, so that a batch
pipeline can catch it and record it against that video.
"""
from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from core.hashing import MIB, sha256_file

# FFmpeg inside OpenCV prints decoder complaints ("[h264 @ …] error while decoding") straight
# to the terminal, through the progress bars; the problems they describe surface as VideoError.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

T = TypeVar("T")


class VideoError(RuntimeError):
    """A video cannot be used: missing, empty, not a video, no frames, or truncated."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video file before decoding it all.

    ``width`` and ``height`` are those of the decoded frames (after OpenCV applied the
    container's rotation, if any); ``rotation`` is the container's rotation in degrees
    (0, 90, 180, 270). ``frame_count`` is the container's count (an estimate for some
    formats; the decoded count is authoritative). ``sha256_first_mib`` hashes the first MiB of
    the file, ``sha256`` the whole file when asked for (else ``None``).
    """

    path: str
    file_name: str
    file_size: int
    width: int
    height: int
    fps: float
    frame_count: int
    rotation: int
    duration: float
    sha256_first_mib: str
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoError(path, "file not found")
    if not path.is_file():
        raise VideoError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise VideoError(path, "file is empty (0 bytes)")


def _open(path: Path):
    import cv2

    _check_file(path)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise VideoError(path, "cannot be opened as a video (not a video file, or an unsupported "
                               "or damaged container)")
    return cap


def probe_video(path: str | os.PathLike, *, hash_whole_file: bool = False) -> VideoInfo:
    """Read a video's metadata and its first frame (to check that it decodes).

    Args:
        path: video file.
        hash_whole_file: also compute the sha256 of the whole file (slower on big files).
    Returns:
        :class:`VideoInfo`.
    Raises:
        VideoError: missing, empty, not a video, or no decodable frame.
    """
    import cv2

    path = Path(path)
    cap = _open(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        rotation = int(cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0) % 360
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError(path, "contains no decodable video frames")
        height, width = frame.shape[:2]
    finally:
        cap.release()
    if not math.isfinite(fps) or fps <= 0:
        raise VideoError(path, f"has no usable frame rate (container reports {fps})")
    return VideoInfo(
        path=str(path), file_name=path.name, file_size=path.stat().st_size,
        width=int(width), height=int(height), fps=fps, frame_count=max(count, 0), rotation=rotation,
        duration=max(count, 0) / fps, sha256_first_mib=sha256_file(path, MIB),
        sha256=sha256_file(path) if hash_whole_file else None,
    )


def iter_frames(path: str | os.PathLike, *, decode: bool = True, strict: bool = True,
                max_frames: int | None = None) -> Iterator[tuple[int, float, np.ndarray | None]]:
    """Stream ``(index, timestamp_s, frame)`` for every decodable frame, in order.

    ``frame`` is an (H, W, 3) uint8 BGR array, or ``None`` when ``decode=False`` (frames are
    then only demuxed, for estimators that read precomputed results). ``timestamp_s`` is the
    frame's presentation time from the container when it is usable (monotonic), else
    ``index / fps``.

    Raises:
        VideoError: when the file cannot be opened, yields no frame, (``strict``) stops
            well before the container's frame count, i.e. looks truncated, or holds more than
            ``max_frames`` frames (a bound on work whatever the container claims). The
            truncation error comes after the decodable frames were yielded.
    """
    import cv2

    path = Path(path)
    cap = _open(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        fps = fps if math.isfinite(fps) and fps > 0 else 0.0
        expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        index = 0
        last_t = -math.inf
        while True:
            if decode:
                ok, frame = cap.read()
                ok = ok and frame is not None
            else:
                ok, frame = cap.grab(), None
            if not ok:
                break
            if max_frames is not None and index >= max_frames:
                raise VideoError(path, f"has more than {max_frames} frames, the limit for one video")
            t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if not (math.isfinite(t) and t > last_t and (index > 0 or t >= 0)):
                t = index / fps if fps else float(index)
                if t <= last_t:
                    t = last_t + (1.0 / fps if fps else 1.0)
            last_t = t
            yield index, t, frame
            index += 1
    finally:
        cap.release()
    if index == 0:
        raise VideoError(path, "contains no decodable video frames")
    # Container counts may be estimates: tolerate a couple of frames (or 2%) of difference.
    if strict and expected > 0 and index < expected - max(2, int(0.02 * expected)):
        raise VideoError(path, f"truncated or damaged: decoded {index} of {expected} frames")


def prefetch(items: Iterable[T], depth: int = 8) -> Iterator[T]:
    """Yield ``items`` in order while a background thread produces up to ``depth`` ahead.

    Decoding (OpenCV, PyAV) and the pose and encoding libraries release the GIL, so on two
    cores decoding overlaps with estimation or drawing instead of adding to it. An exception
    raised by ``items`` (e.g. :class:`VideoError` for a truncated file, after its decodable
    frames) is raised here at the same point of the sequence. Closing this generator early
    stops the producer and closes ``items``.
    """
    buf: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    source = iter(items)

    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                buf.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as e:  # handed to the consumer, raised there
            put(("error", e))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = buf.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        worker.join()
