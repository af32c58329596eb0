"""The Live tab: the browser's webcam streamed to the server (Gradio's streaming input), the
skeleton overlay, the current top-k, a growing timeline and the table of windows updated as the
person moves; **Stop and save** ends the session and offers its files (labels JSON, events
table, ELAN, skeleton, motion table, the recording).

Frames reach :class:`app.live.LiveSessions` through ``gr.Image(sources=["webcam"],
streaming=True).stream(...)`` every ``1 / live_fps`` s (the browser sends a frame only when the
previous one was answered, so a slow server gets fewer frames, never a queue), for at most
``live_max_s`` s (Gradio's ``time_limit`` too). One session at a time by default: another
browser gets an error that says so. Closing or reloading the page discards its session.
"""
from __future__ import annotations

import atexit
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from app.config import AppConfig
from app.engine import Models, server_pose_options
from app.folders import RequestFolders
from app.live import LiveBusy, LiveFiles, LiveLimits, LiveSessions, LiveUpdate
from app.live_views import NO_LABELS, live_status, now_html, overlay_html, timeline_html, windows_html
from app.summaries import top_k_html

__all__ = ["LiveTab", "live_tab"]

SERVE_S = 600.0  # a session folder is removed this long after its files were handed to Gradio (which copies them)
# The Stop button also stops the browser's camera stream: the webcam's own button, while it reads "Stop".
STOP_CAMERA_JS = """() => {
  const b = [...document.querySelectorAll('#live-cam button')].find(x => /stop/i.test(x.textContent || ''));
  if (b) b.click();
}"""


@dataclass(frozen=True)
class LiveTab:
    """The tab's components (for the events and the tests' selectors)."""

    cam: Any
    overlay: Any
    status: Any
    now: Any
    timeline: Any
    windows: Any
    stop: Any
    downloads: Any

    @property
    def views(self) -> list[Any]:
        """The outputs of a frame: overlay, status, top-k, timeline, windows, downloads."""
        return [self.overlay, self.status, self.now, self.timeline, self.windows, self.downloads]


def _layout(cfg: AppConfig, labelled: bool) -> LiveTab:
    """The tab's components (inside an open ``gr.Tab``)."""
    gr.Markdown("Label a person live from this browser's webcam: press the camera's **Record** button to start; "
                "the skeleton, the current top-5 and the timeline follow as the person moves. "
                f"<small>{cfg.live_limits_text()}</small>", elem_id="live-intro")
    if not labelled:
        gr.Markdown(f"**No checkpoint:** {NO_LABELS}. The overlay shows the skeleton and the table the motion "
                    "of each body part; nothing here is an action label.", elem_id="live-no-labels")
    with gr.Row():
        cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam", elem_id="live-cam",
                       webcam_options=gr.WebcamOptions(mirror=False), height=360)
        overlay = gr.HTML(overlay_html(None), label="Skeleton, current top-3 and timeline", elem_id="live-overlay")
    status = gr.Markdown("", elem_id="live-status")
    with gr.Row():
        now = gr.HTML(top_k_html([], "Top-5 now", "start the camera"), elem_id="live-now")
        windows = gr.HTML(windows_html([], labelled), elem_id="live-windows")
    timeline = gr.HTML(timeline_html([], labelled), elem_id="live-timeline")
    stop = gr.Button("Stop and save", variant="stop", elem_id="live-stop")
    downloads = gr.File(label="Session files: labels JSON, events table, ELAN, skeleton HDF5, motion table, "
                              "recording", file_count="multiple", interactive=False, elem_id="live-downloads")
    return LiveTab(cam, overlay, status, now, timeline, windows, stop, downloads)


def _remove_later(folder: Path | None, delay_s: float = SERVE_S) -> None:
    """Remove a finished session's folder once Gradio has copied its files (a timer)."""
    if folder is not None:
        timer = threading.Timer(delay_s, shutil.rmtree, (folder,), {"ignore_errors": True})
        timer.daemon = True
        timer.start()


def _ended_views(files: LiveFiles, labelled: bool, levels: list) -> tuple:
    status = f"**Done:** {files.message} The files are below."
    records = files.records
    return (gr.skip(), status, now_html(records, levels, labelled), timeline_html(records, labelled),
            windows_html(records, labelled), [str(p) for p in files.files] or None)


def _frame_views(u: LiveUpdate, limits: LiveLimits, labelled: bool, levels: list) -> tuple:
    status = live_status(u.elapsed_s, limits.max_s, u.received, u.dropped, len(u.records), labelled)
    picture = overlay_html(u.overlay) if u.overlay is not None else gr.skip()
    if not u.new:
        return (picture, status, gr.skip(), gr.skip(), gr.skip(), gr.skip())
    return (picture, status, now_html(u.records, levels, labelled),
            timeline_html(u.records, labelled), windows_html(u.records, labelled), gr.skip())


def _callbacks(sessions: LiveSessions, labelled: bool, levels: list) -> tuple[Callable, ...]:
    """The frame, stop and leave callbacks of the tab."""
    limits = sessions.limits

    def on_frame(image: Any, request: gr.Request) -> tuple:
        if image is None:
            return (gr.skip(),) * 6
        try:
            update = sessions.frame(request.session_hash or "anonymous", image)
        except LiveBusy as e:
            raise gr.Error(str(e), duration=None, print_exception=False) from None
        if update is None:
            return (gr.skip(), "**Stopped.** Stop the camera, then press its **Record** button for a new session.",
                    gr.skip(), gr.skip(), gr.skip(), gr.skip())
        if update.ended is not None:
            _remove_later(update.ended.folder)
            return _ended_views(update.ended, labelled, levels)
        return _frame_views(update, limits, labelled, levels)

    def on_stop(request: gr.Request) -> Iterator[tuple]:
        files = sessions.stop(request.session_hash or "anonymous")
        if files is None:
            yield ("**No live session is running.** Press the camera's **Record** button to start one.",
                   gr.skip(), gr.skip(), gr.skip(), gr.skip())
            return
        try:
            yield _ended_views(files, labelled, levels)[1:]
        finally:
            _remove_later(files.folder, 5.0)

    def on_leave(request: gr.Request) -> None:
        sessions.discard(request.session_hash or "anonymous")

    return on_frame, on_stop, on_leave


def live_tab(cfg: AppConfig, models: Models | None, folders: RequestFolders, blocks: gr.Blocks) -> LiveSessions:
    """Build the Live tab (inside an open ``gr.Tab`` of ``blocks``) and wire its events; returns
    the server's :class:`LiveSessions` (closed at exit)."""
    classifier = models.get(None) if models is not None else None
    sessions = LiveSessions(LiveLimits.of(cfg), classifier, server_pose_options(cfg), folders)
    atexit.register(sessions.close)
    labelled = classifier is not None
    levels = [tuple(b) for b in (classifier.taxonomy.body_levels or ())] if labelled else []
    tab = _layout(cfg, labelled)
    on_frame, on_stop, on_leave = _callbacks(sessions, labelled, levels)
    tab.cam.stream(on_frame, [tab.cam], tab.views, stream_every=1.0 / cfg.live_fps, time_limit=cfg.live_max_s + 5,
                   concurrency_limit=cfg.live_sessions + 1, concurrency_id="live", api_name="live_frame",
                   show_progress="hidden")
    tab.stop.click(on_stop, None, tab.views[1:], js=STOP_CAMERA_JS, api_name="live_stop", concurrency_id="live_stop",
                   concurrency_limit=cfg.live_sessions)
    blocks.unload(on_leave)
    return sessions
