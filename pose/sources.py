"""Frame sources for live mode: a camera, a stream URL or a video file, read on a thread.

``open_source("0" | "rtsp://…" | "http://…" | "clip.mp4")`` returns a started
:class:`FrameSource`; iterating it yields :class:`Frame` s (BGR image, the source's timestamp,
the source's frame number) until the source ends. Between the reader thread and the consumer
sits a queue of ``queue_frames`` frames, never more:

- a camera, a URL, or a file read with ``realtime=True`` (paced at its own frame rate, as a
  camera delivers it) is *lossy*: when the consumer is behind and the queue is full, the
  oldest queued frame is dropped and counted (:attr:`FrameSource.dropped`), so what the
  consumer gets next is at most ``queue_frames`` frames old; the frame numbers show the holes;
- a file read without pacing is *lossless*: the reader waits for the consumer, nothing is
  dropped (the queue then decodes ahead, as :func:`pose.video.prefetch` does).

Bad sources raise :class:`SourceError`, whose message names the source and the problem: a
camera index that does not exist, a URL that does not answer within ``connect_timeout``
seconds, a stream that delivers no frame for ``read_timeout`` seconds (a stall), a file that is
not a video. :class:`Recorder` writes the frames received (e.g. from a camera or a URL) to an
H.264 mp4 atomically, with the source's timestamps, for a session recording
(``open_source(..., record=PATH)``).
"""
from __future__ import annotations

import collections
import math
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np

from core.atomic import temp_path_beside

from .video import VideoError, iter_frames, probe_video

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_S", "DEFAULT_READ_TIMEOUT_S", "DEFAULT_QUEUE_FRAMES", "DEFAULT_RECORD_QUEUE_FRAMES",
    "SourceError", "SourceSpec", "parse_source", "SourceInfo", "Frame", "FrameSource", "open_source",
    "Recorder",
]

DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 5.0
DEFAULT_QUEUE_FRAMES = 4
DEFAULT_RECORD_QUEUE_FRAMES = 30  # a second of frames waiting for the recording's encoder, at most
_OPEN_GRACE_S = 5.0  # beyond connect_timeout, for FFmpeg's own open to give up first
_TCP_SCHEMES = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322, "rtmp": 1935, "rtmps": 443, "tcp": None,
                "srt": None}

SourceKind = Literal["camera", "url", "file"]


class SourceError(VideoError):
    """A source cannot be used, or failed: ``source`` names it, ``problem`` says what is wrong;
    ``frames_read`` frames had been delivered before (0: it failed at the start)."""

    def __init__(self, source: str, problem: str, frames_read: int = 0) -> None:
        super().__init__(source, problem)
        self.source = source
        self.frames_read = frames_read


@dataclass(frozen=True)
class SourceSpec:
    """What a SOURCE argument names: ``kind`` and the camera index, URL or file path."""

    text: str
    kind: SourceKind
    camera: int | None = None
    url: str | None = None
    path: Path | None = None

    @property
    def label(self) -> str:
        """How errors name the source: ``camera 0``, the URL or the file path."""
        return f"camera {self.camera}" if self.kind == "camera" else self.text


def parse_source(source: str | int | os.PathLike) -> SourceSpec:
    """``"0"`` (digits) or an int: a camera index; ``scheme://…``: a stream URL; anything else: a
    video file."""
    if isinstance(source, int):
        return SourceSpec(str(source), "camera", camera=source)
    text = os.fspath(source)
    if text.strip().isdigit():
        return SourceSpec(text, "camera", camera=int(text))
    if "://" in text:
        return SourceSpec(text, "url", url=text)
    return SourceSpec(text, "file", path=Path(text))


@dataclass(frozen=True)
class SourceInfo:
    """A source once opened: frame size (px), the nominal frame rate (frames/s; 30 when the
    source does not say) and, for a file, its frame count."""

    source: str
    kind: SourceKind
    width: int
    height: int
    fps: float
    frame_count: int | None = None


@dataclass(frozen=True)
class Frame:
    """One frame as the reader got it.

    Attributes:
        index: the source's frame number (0, 1, …, counting frames dropped before the consumer).
        timestamp: seconds, from the source: for a file the container's presentation time (as
            :func:`pose.video.iter_frames` gives it); for a URL or a camera the stream's or the
            driver's time counted from the first frame, or, where that is unusable (missing, not
            increasing), the arrival clock since the first frame.
        image: (H, W, 3) uint8 BGR.
        arrival: ``time.monotonic()`` when the reader had the frame (after pacing).
    """

    index: int
    timestamp: float
    image: np.ndarray
    arrival: float


def _fps_or_default(fps: float) -> float:
    return fps if math.isfinite(fps) and 0 < fps <= 1000 else 30.0


def _not_opened(elapsed_s: float, timeout_s: float) -> str:
    """Why a URL did not open: the time limit, or FFmpeg giving up sooner (a redirect loop, a
    refused protocol, a stream it cannot read)."""
    if elapsed_s >= 0.75 * timeout_s:
        return f"cannot be opened as a video stream within {timeout_s:g} s"
    return f"cannot be opened as a video stream (FFmpeg gave up after {elapsed_s:.1f} s)"


def _check_tcp(spec: SourceSpec, timeout: float) -> None:
    """Connect to a URL's host and port first, so that a refused or silent address gets its own
    message (OpenCV only says that it could not open)."""
    parts = urlsplit(spec.text)
    scheme = parts.scheme.lower()
    if scheme not in _TCP_SCHEMES:
        return
    try:
        port = parts.port or _TCP_SCHEMES[scheme]
    except ValueError as e:
        raise SourceError(spec.label, f"bad URL: {e}") from None
    if not parts.hostname or port is None:
        raise SourceError(spec.label, "bad URL: no host or port")
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except socket.gaierror as e:
        raise SourceError(spec.label, f"unknown host {parts.hostname!r} ({e.strerror})") from None
    except ConnectionRefusedError:
        raise SourceError(spec.label, f"connection refused: nothing listens at {parts.hostname}:{port}") from None
    except TimeoutError:
        raise SourceError(spec.label, f"did not answer within {timeout:g} s (connect timeout)") from None
    except OSError as e:
        raise SourceError(spec.label, f"cannot connect to {parts.hostname}:{port}: {e.strerror or e}") from None


class _Capture:
    """A camera or URL opened with OpenCV; yields ``(index, timestamp, image)``."""

    def __init__(self, spec: SourceSpec, connect_timeout: float, read_timeout: float) -> None:
        import cv2

        self.spec, self.read_timeout = spec, read_timeout
        if spec.kind == "camera":
            if sys.platform.startswith("linux") and not Path(f"/dev/video{spec.camera}").exists():
                raise SourceError(spec.label, f"no such camera (no /dev/video{spec.camera})")
            self.cap = cv2.VideoCapture(spec.camera)
            why_not_opened = "camera cannot be opened (busy, or not a capture device)"
        else:
            _check_tcp(spec, connect_timeout)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(connect_timeout * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int((read_timeout + 1) * 1000)]
            started = time.monotonic()
            self.cap = cv2.VideoCapture(spec.text, cv2.CAP_FFMPEG, params)
            why_not_opened = _not_opened(time.monotonic() - started, connect_timeout)
        if not self.cap.isOpened():
            self.cap.release()
            raise SourceError(spec.label, why_not_opened)
        self.fps = _fps_or_default(float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0))
        count = float(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)  # a URL of a file says; live streams don't
        self.frame_count = int(count) if spec.kind == "url" and math.isfinite(count) and 0 < count < 1e9 else None
        self.width = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        import cv2

        index, last_t, clock0, t0 = 0, -math.inf, None, None
        try:
            while True:
                started = time.monotonic()
                ok, image = self.cap.read()
                if not ok or image is None:
                    if time.monotonic() - started >= self.read_timeout:
                        raise SourceError(self.spec.label, f"no frame for {self.read_timeout:g} s: the stream "
                                                           "stalled (read timeout)", index)
                    if index == 0:
                        raise SourceError(self.spec.label, "delivered no video frame")
                    if self.frame_count is not None and index < self.frame_count - max(2, self.frame_count // 100):
                        raise SourceError(self.spec.label, f"the stream ended after {index} of the {self.frame_count} "
                                                           "frames it announced: the server went away or the "
                                                           "connection was lost", index)
                    return
                now = time.monotonic()
                clock0 = now if clock0 is None else clock0
                t = self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                t0 = t if t0 is None and math.isfinite(t) else t0
                t = t - t0 if t0 is not None else math.nan  # the source's clock, 0 at the first frame
                if not (math.isfinite(t) and t > last_t and (index > 0 or t >= 0)):
                    t = max(now - clock0, last_t + 1e-3) if last_t > -math.inf else 0.0
                last_t = t
                yield index, t, image
                index += 1
        finally:
            self.cap.release()


def _open_file(spec: SourceSpec) -> tuple[SourceInfo, Iterator[tuple[int, float, np.ndarray]]]:
    try:
        info = probe_video(spec.path)
    except VideoError as e:
        raise SourceError(spec.label, e.problem) from None
    frames = iter_frames(spec.path, decode=True)
    return SourceInfo(spec.label, "file", info.width, info.height, info.fps, info.frame_count), frames


class FrameSource:
    """A started source (see the module docstring); use :func:`open_source` to make one.

    Iterate it for :class:`Frame` s; ``close()`` (or leaving a ``with`` block) stops the reader
    and finishes the recording. :attr:`dropped` counts the frames dropped before the consumer,
    :attr:`delivered` those it got, :attr:`max_queued` the most frames ever queued (never more
    than ``queue_frames``); with ``record``, :attr:`recorder` is the :class:`Recorder` (its
    ``dropped`` counts frames left out of the recording) and :attr:`recording` the finished file.
    """

    def __init__(self, spec: SourceSpec, *, realtime: bool, connect_timeout: float, read_timeout: float,
                 queue_frames: int, lossless: bool | None, record: str | os.PathLike | None,
                 record_options: dict[str, Any] | None) -> None:
        if connect_timeout <= 0 or read_timeout <= 0 or queue_frames < 1:
            raise ValueError("connect_timeout and read_timeout must be > 0 and queue_frames >= 1")
        self.spec = spec
        self.realtime = realtime
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.queue_frames = queue_frames
        self.lossless = (spec.kind == "file" and not realtime) if lossless is None else lossless
        self.dropped = self.delivered = self.read = self.max_queued = 0
        self.info: SourceInfo | None = None
        self.recorder: Recorder | None = None
        self.recording: Path | None = None
        self._record = None if record is None else Path(record)
        self._record_options = record_options or {}
        self._queue: collections.deque[Frame] = collections.deque()
        self._cond = threading.Condition()
        self._opened = threading.Event()
        self._stop = threading.Event()
        self._ended = False
        self._error: BaseException | None = None
        self._activity = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"source {spec.label}", daemon=True)

    # -- reader thread -------------------------------------------------------------------
    def _open(self) -> Iterator[tuple[int, float, np.ndarray]]:
        if self.spec.kind == "file":
            self.info, frames = _open_file(self.spec)
            return frames
        cap = _Capture(self.spec, self.connect_timeout, self.read_timeout)
        self.info = SourceInfo(self.spec.label, self.spec.kind, cap.width, cap.height, cap.fps)
        return cap.frames()

    def _run(self) -> None:
        frames = None
        try:
            frames = self._open()
            if self._record is not None:
                options = {"background_frames": DEFAULT_RECORD_QUEUE_FRAMES, **self._record_options}
                self.recorder = Recorder(self._record, self.info.width, self.info.height, self.info.fps, **options)
            self._opened.set()
            pace0: tuple[float, float] | None = None
            for index, t, image in frames:
                if self._stop.is_set():
                    break
                self.read += 1
                if self.recorder is not None:
                    self.recorder.write(image, t)
                if self.realtime:
                    pace0 = pace0 or (time.monotonic() - t, t)
                    wait = pace0[0] + t - time.monotonic()
                    if wait > 0 and self._stop.wait(wait):
                        break
                self._put(Frame(index, t, image, time.monotonic()))
        except BaseException as e:  # handed to the consumer
            if isinstance(e, VideoError) and not isinstance(e, SourceError):
                e = SourceError(self.spec.label, e.problem, self.read)
            self._error = e
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()
            self._finish_recording()
            with self._cond:
                self._ended = True
                self._cond.notify_all()
            self._opened.set()

    def _finish_recording(self) -> None:
        if self.recorder is None:
            return
        try:
            self.recording = self.recorder.close() if self.recorder.accepted else None
            if self.recording is None:
                self.recorder.abort()
        except Exception as e:  # noqa: BLE001 - reported to the consumer, after the source's own error
            self.recorder.abort()
            self._error = self._error or e

    def _put(self, frame: Frame) -> None:
        with self._cond:
            while self.lossless and len(self._queue) >= self.queue_frames and not self._stop.is_set():
                self._cond.wait(0.1)
            if len(self._queue) >= self.queue_frames:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(frame)
            self.max_queued = max(self.max_queued, len(self._queue))
            self._activity = time.monotonic()
            self._cond.notify_all()

    # -- consumer ------------------------------------------------------------------------
    def start(self) -> FrameSource:
        """Start the reader and wait until the source is open (at most ``connect_timeout`` s plus
        a few seconds of grace). Raises :class:`SourceError` when it cannot be opened."""
        self._thread.start()
        if not self._opened.wait(self.connect_timeout + _OPEN_GRACE_S):
            self._stop.set()
            raise SourceError(self.spec.label, f"did not answer within {self.connect_timeout:g} s (connect timeout)")
        if self.info is None:
            self._thread.join(1.0)
            raise self._error or SourceError(self.spec.label, "cannot be opened")
        self._activity = time.monotonic()
        return self

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        with self._cond:
            while not self._queue:
                if self._ended:
                    if isinstance(self._error, SourceError):
                        self._error.frames_read = self.delivered  # what this consumer got first
                    if self._error is not None:
                        raise self._error
                    raise StopIteration
                left = self._activity + self.read_timeout - time.monotonic()
                if left <= 0:
                    self._stop.set()
                    raise SourceError(self.spec.label, f"no frame for {self.read_timeout:g} s: the stream stalled "
                                                       "(read timeout)", self.delivered)
                self._cond.wait(left)
            frame = self._queue.popleft()
            if self.lossless:
                self._activity = time.monotonic()  # the reader waited for us, it did not stall
            self.delivered += 1
            self._cond.notify_all()
            return frame

    def close(self, timeout: float = 10.0) -> None:
        """Stop reading; wait (up to ``timeout`` s) for the reader to finish the recording."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(source: str | int | os.PathLike, *, realtime: bool = False,
                connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S, read_timeout: float = DEFAULT_READ_TIMEOUT_S,
                queue_frames: int = DEFAULT_QUEUE_FRAMES, lossless: bool | None = None,
                record: str | os.PathLike | None = None,
                record_options: dict[str, Any] | None = None) -> FrameSource:
    """Open SOURCE (camera index, stream URL or video file) and start reading it.

    Args:
        source: ``"0"``/``0`` (camera), ``"rtsp://…"``, ``"http://…"`` (anything FFmpeg opens), or a
            video file path.
        realtime: deliver frames at the pace of their timestamps (a file then behaves as a camera).
        connect_timeout: seconds for a URL to answer and open.
        read_timeout: seconds without a frame after which the stream counts as stalled.
        queue_frames: frames queued between the reader and the consumer, at most.
        lossless: wait for the consumer instead of dropping frames; default: only for a file
            read without ``realtime``.
        record: write the frames read to this mp4 (atomically, when the source ends or is closed).
        record_options: keyword arguments for :class:`Recorder` (``preset``, ``crf``).
    Raises:
        SourceError: the source does not exist, does not answer, or is not a video.
    """
    spec = parse_source(source)
    return FrameSource(spec, realtime=realtime, connect_timeout=connect_timeout, read_timeout=read_timeout,
                       queue_frames=queue_frames, lossless=lossless, record=record,
                       record_options=record_options).start()


class Recorder:
    """Write BGR frames with their timestamps to an H.264 mp4 (yuv420p; odd sizes padded by a
    pixel) under a temporary name beside ``path``; :meth:`close` renames it onto ``path``,
    :meth:`abort` removes it. The frames' presentation times are the given timestamps (ms
    resolution, 0 at the first frame), so the recording stays on the source's clock even where
    frames were lost.

    With ``background_frames`` > 0 the encoding runs on its own thread behind a queue of that
    many frames (copies), so a slow encoder never holds up the caller: a frame that finds the
    queue full is not recorded and is counted in :attr:`dropped`. With 0 (the default),
    :meth:`write` encodes before it returns.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: float, *,
                 preset: str = "ultrafast", crf: int = 23, background_frames: int = 0) -> None:
        import av

        self.path = Path(path)
        self.width, self.height = width, height
        self.frames = 0     # encoded
        self.accepted = 0   # written and not dropped
        self.dropped = 0
        self._t0: float | None = None
        self._last_pts = -1
        self.tmp = temp_path_beside(self.path)
        self._container = av.open(str(self.tmp), "w", format="mp4", options={"movflags": "+faststart"})
        rate = Fraction(_fps_or_default(fps)).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate, options={"preset": preset, "crf": str(crf)})
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.time_base = Fraction(1, 1000)
        self._av = av
        self._error: BaseException | None = None
        self._discard = False
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        if background_frames > 0:
            self._queue = queue.Queue(maxsize=background_frames)
            self._thread = threading.Thread(target=self._drain, name=f"recorder {self.path.name}", daemon=True)
            self._thread.start()

    def write(self, image: np.ndarray, timestamp: float) -> bool:
        """Record one (H, W, 3) uint8 BGR frame shown at ``timestamp`` seconds. Returns False when
        it was dropped (background queue full)."""
        if image.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame {image.shape[:2]} differs from the recording's {(self.height, self.width)}")
        if self._error is not None:
            raise self._error
        if self._queue is None:
            self._encode(image, timestamp)
        else:
            try:
                self._queue.put_nowait((image.copy(), timestamp))
            except queue.Full:
                self.dropped += 1
                return False
        self.accepted += 1
        return True

    def _encode(self, image: np.ndarray, timestamp: float) -> None:
        import cv2

        if self.width % 2 or self.height % 2:
            image = cv2.copyMakeBorder(image, 0, self.height % 2, 0, self.width % 2, cv2.BORDER_REPLICATE)
        self._t0 = timestamp if self._t0 is None else self._t0
        pts = max(int(round((timestamp - self._t0) * 1000)), self._last_pts + 1)
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        self._last_pts = pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None and not self._discard:
                try:
                    self._encode(*item)
                except BaseException as e:  # noqa: BLE001 - raised by the next write() or close()
                    self._error = e

    def _join(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def close(self) -> Path:
        """Encode what is queued, finish the file and rename it onto ``path``; returns ``path``."""
        self._join()
        if self._error is not None:
            self.abort()
            raise self._error
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the recording (the temporary file is removed)."""
        self._discard = True
        self._join()
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the file goes anyway
            pass
        finally:
            self.tmp.unlink(missing_ok=True)
