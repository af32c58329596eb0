"""Live sessions of the web app's Live tab: browser webcam frames in, window records out.

Each browser (Gradio's ``session_hash``, the *owner*) gets at most one session: its first
frame starts a :class:`pipelines.engines.live_feed.LiveRunner` in a private folder (the
recording and the session's files go there); later frames are pushed to it, stamped with the
server's clock; :meth:`LiveSessions.stop` ends it and writes the session's files
(:func:`pipelines.engines.live_session.write_session`: labels JSON, events table, ELAN, skeleton,
motion table, and the recording).

The bounds, the live counterparts of the upload limits (:class:`LiveLimits`, from
:class:`app.config.AppConfig`): at most ``sessions`` sessions at a time (another browser's
first frame raises :class:`LiveBusy`; a session that sent no frame for ``idle_s`` gives its place
up), and at most ``max_s`` seconds per session (the session then ends by itself and its files
are offered). Frames larger than ``max_frame_pixels`` are scaled down.

After a stop, the same owner's stream may still deliver a frame or two (or keep streaming if the
browser did not stop its camera): those are ignored until the owner's frames pause for
:data:`RESTART_GAP_S`, so a stop never silently starts a new session.
"""
from __future__ import annotations

import datetime as dt
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.config import AppConfig
from app.folders import RequestFolders
from pipelines.engines.live import LiveOptions, WindowRecord
from pipelines.engines.live_feed import LiveRunner
from pipelines.engines.live_session import write_session
from pipelines.options import JobOptions
from pipelines.stages.classify import Classifier
from pipelines.stages.pose import PoseOptions, SharedEstimator

__all__ = ["RESTART_GAP_S", "LiveBusy", "LiveFiles", "LiveLimits", "LiveSessions", "LiveUpdate"]

log = logging.getLogger("app.live")
RESTART_GAP_S = 1.5  # a stopped owner's frames start a new session only after a pause this long


class LiveBusy(RuntimeError):
    """Every live place is taken by another browser (the message says so, for the page)."""


@dataclass(frozen=True)
class LiveLimits:
    """The Live tab's bounds: ``max_s`` seconds per session, ``sessions`` at a time, ``fps``
    frames a second from the browser, ``idle_s`` without frames before a place is given up,
    ``max_frame_pixels`` (width × height) above which frames are scaled down."""

    max_s: float = 300.0
    sessions: int = 1
    fps: float = 10.0
    idle_s: float = 30.0
    max_frame_pixels: int = 1920 * 1088

    @classmethod
    def of(cls, cfg: AppConfig) -> LiveLimits:
        """The limits of an :class:`app.config.AppConfig`."""
        return cls(cfg.live_max_s, cfg.live_sessions, cfg.live_fps, cfg.live_idle_s, cfg.max_frame_pixels)


@dataclass(frozen=True)
class LiveFiles:
    """A finished session: its files (labels JSON first), the labels JSON, its window count, a
    sentence for the page, and the private ``folder`` they are in (removed by the caller once
    the files were served)."""

    files: tuple[Path, ...]
    labels: Path | None
    windows: int
    message: str
    folder: Path | None = None
    records: tuple[WindowRecord, ...] = ()


@dataclass(frozen=True)
class LiveUpdate:
    """What the page shows after a frame: the ``overlay`` (H, W, 3) uint8 BGR (None before the
    first posed frame), every window record so far (``records``), how many are ``new`` since
    the last update, the session's ``elapsed_s``, frames ``received`` and ``dropped``
    (before pose), and ``ended``: the session's files when it just ended at the length limit."""

    overlay: np.ndarray | None
    records: tuple[WindowRecord, ...]
    new: int
    elapsed_s: float
    received: int
    dropped: int
    ended: LiveFiles | None = None


def fit_frame(rgb: np.ndarray, max_pixels: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """A browser frame (H, W, 3) RGB as the engine's BGR, scaled down to at most ``max_pixels``
    (keeping its aspect), or to ``size`` (width, height) when given (the session's first size)."""
    import cv2

    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"a webcam frame must be (H, W, 3) RGB, got shape {rgb.shape}")
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3], np.uint8), cv2.COLOR_RGB2BGR)
    h, w = bgr.shape[:2]
    if size is None:
        scale = min(1.0, (max_pixels / float(w * h)) ** 0.5)
        size = (max(2, int(w * scale)), max(2, int(h * scale)))
    if (w, h) != size:
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    return bgr


class _Session:
    """One browser's running session: its runner, private folder and clock."""

    def __init__(self, owner: str, runner: LiveRunner, workdir: Path, key: str, opts: JobOptions,
                 estimator: SharedEstimator, t0: float, size: tuple[int, int]) -> None:
        self.owner, self.runner, self.workdir, self.key, self.opts = owner, runner, workdir, key, opts
        self.estimator, self.t0, self.size = estimator, t0, size
        self.last_frame = t0
        self.lock = threading.Lock()


class LiveSessions:
    """The server's live sessions (module doc). ``classifier`` None: model-free motion only;
    ``pose``: the server's pose options; ``folders``: where the private session folders go;
    ``clock``: seconds, monotonic (tests pass their own)."""

    def __init__(self, limits: LiveLimits, classifier: Classifier | None, pose: PoseOptions, folders: RequestFolders,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits, self.classifier, self.pose, self.folders, self.clock = limits, classifier, pose, folders, clock
        self._sessions: dict[str, _Session] = {}
        self._stopped: dict[str, float] = {}  # owner → the last frame seen after its stop
        self._estimators: list[SharedEstimator] = []  # idle pose models, reused by later sessions
        self._warm: set[int] = set()
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        """Sessions running now."""
        return len(self._sessions)

    def owns(self, owner: str) -> bool:
        """Whether ``owner`` has a running session."""
        return owner in self._sessions

    def frame(self, owner: str, rgb: np.ndarray) -> LiveUpdate | None:
        """Push one webcam frame (H, W, 3) RGB from ``owner``; the first one starts its
        session. None when the frame is ignored (the owner stopped and is still streaming).
        Raises :class:`LiveBusy` when every place is taken."""
        session = self._session_for(owner, rgb, self.clock())
        if session is None:
            return None
        with session.lock:
            if self._sessions.get(owner) is not session:  # stopped meanwhile
                return None
            now = self.clock()
            t = max(0.0, now - session.t0)
            if t > self.limits.max_s:
                files = self._end(session, f"ended at the session length limit ({self.limits.max_s:g} s)")
                return LiveUpdate(None, files.records, len(session.runner.poll()), self.limits.max_s,
                                  session.runner.feed.pushed, session.runner.feed.dropped, ended=files)
            session.last_frame = now
            session.runner.push(fit_frame(rgb, self.limits.max_frame_pixels, session.size), t)
            new = session.runner.poll()
            picture = session.runner.overlay()
            return LiveUpdate(picture, tuple(session.runner.records), len(new), t, session.runner.feed.pushed,
                              session.runner.feed.dropped)

    def _session_for(self, owner: str, rgb: np.ndarray, now: float) -> _Session | None:
        """The owner's session, a new one (its first frame), or None (a stopped owner still streaming)."""
        with self._lock:
            session = self._sessions.get(owner)
            if session is not None:
                return session
            last = self._stopped.get(owner)
            if last is not None and now - last < RESTART_GAP_S:
                self._stopped[owner] = now
                return None
            self._stopped.pop(owner, None)
            self._reap_idle(now)
            if len(self._sessions) >= self.limits.sessions:
                raise LiveBusy(busy_message(self.limits))
            session = self._start(owner, rgb, now)
            self._sessions[owner] = session
            return session

    def _reap_idle(self, now: float) -> None:
        """Give up the places of sessions that sent no frame for ``idle_s`` (their browser left)."""
        for owner, s in list(self._sessions.items()):
            if now - s.last_frame > self.limits.idle_s:
                log.info("live session %s sent no frame for %.0f s: discarded", s.key, now - s.last_frame)
                self._sessions.pop(owner, None)
                self._discard(s)

    def _start(self, owner: str, rgb: np.ndarray, now: float) -> _Session:
        from pipelines.engines.live_pose import warm_up

        first = fit_frame(rgb, self.limits.max_frame_pixels)
        h, w = first.shape[:2]
        estimator = self._estimators.pop() if self._estimators else SharedEstimator(self.pose)
        if id(estimator) not in self._warm:  # load the pose model before the clock starts
            warm_up(estimator.get(), w, h)
            self._warm.add(id(estimator))
            now = self.clock()
        workdir = self.folders.new()
        key = "live-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        opts = JobOptions(out=workdir, pose=self.pose, pictures=False, elan=True, link_video_by_name=True,
                          overwrite=True)
        runner = LiveRunner(LiveOptions(job=opts, realtime=True, max_seconds=self.limits.max_s), self.classifier,
                            width=w, height=h, fps=self.limits.fps, source="browser camera", estimator=estimator,
                            record=workdir / f"{key}.mp4", overlay=True)
        log.info("live session %s started (%dx%d)", key, w, h)
        return _Session(owner, runner, workdir, key, opts, estimator, now, (w, h))

    def stop(self, owner: str) -> LiveFiles | None:
        """End ``owner``'s session and write its files; None when it has none running."""
        with self._lock:
            session = self._sessions.get(owner)
        if session is None:
            return None
        with session.lock:
            if self._sessions.get(owner) is not session:
                return None
            return self._end(session, "stopped")

    def _end(self, session: _Session, ended: str) -> LiveFiles:
        """Stop the runner, write the files (caller holds ``session.lock``), free the place."""
        try:
            result = session.runner.stop()
            written = write_session(result, session.opts, self.classifier, key=session.key,
                                    video=session.runner.recording or session.workdir / f"{session.key}.mp4",
                                    ended=ended, realtime=True, recording=session.runner.recording)
        finally:
            self._release(session)
        records = tuple(session.runner.records)
        if written is None:
            shutil.rmtree(session.workdir, ignore_errors=True)
            return LiveFiles((), None, 0, "No frame reached the pose model: nothing to save.", None, records)
        files = written.paths(session.opts)
        labels = written.outputs.labels
        files = [labels] + [p for p in files if p != labels]
        n = len(written.doc.get("windows", []))
        message = (f"Session {session.key} {ended}: {result.frames_received} frames, {n} windows, "
                   f"{result.frames_dropped} frames dropped.")
        return LiveFiles(tuple(files), labels, n, message, session.workdir, records)

    def _release(self, session: _Session) -> None:
        with self._lock:
            if self._sessions.get(session.owner) is session:
                del self._sessions[session.owner]
            self._stopped[session.owner] = self.clock()
            self._estimators.append(session.estimator)

    def _discard(self, session: _Session) -> None:
        """End a session without files (its browser left); its folder is removed."""
        try:
            session.runner.stop()
        except Exception:  # noqa: BLE001 - nothing is kept of a discarded session
            log.exception("discarding live session %s", session.key)
        if session.runner.recording is not None:
            session.runner.recording.unlink(missing_ok=True)
        self._estimators.append(session.estimator)
        shutil.rmtree(session.workdir, ignore_errors=True)

    def discard(self, owner: str) -> None:
        """The owner's browser left (closed or reloaded the page): its session ends without files."""
        with self._lock:
            session = self._sessions.pop(owner, None)
            self._stopped.pop(owner, None)
        if session is not None:
            with session.lock:
                self._discard(session)

    def close(self) -> None:
        """Discard every session and close the pose models (server shutdown)."""
        for owner in list(self._sessions):
            self.discard(owner)
        for est in self._estimators:
            est.close()
        self._estimators.clear()


def busy_message(limits: LiveLimits) -> str:
    """What another browser is told while every place is taken."""
    at_once = "one live session at a time" if limits.sessions == 1 else f"{limits.sessions} live sessions at a time"
    return (f"Another browser is running a live session: this server runs {at_once}. Try again when it "
            f"ends (sessions last at most {limits.max_s:g} s).")
