"""``--show``: the live overlay in an OpenCV window, drawn by the annotated clip's functions
(:mod:`pipelines.drawing.render`): the subject's skeleton (raw pose of the frame), the current
top-3 (the latest window's record) and a timeline of the last ``span_s`` seconds scrolling
right to left, coloured by each window's top-1 body level."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from pipelines.drawing.render import (
    BODY_LEVEL_COLOURS_BGR,
    NO_LABEL_BGR,
    FrameAnnotation,
    draw_skeleton,
    draw_text_panel,
    draw_timeline,
    timeline_image,
)
from pipelines.engines.live import WindowRecord
from pipelines.engines.live_pose import PosedFrame
from pipelines.stages.pose import LAYOUT

__all__ = ["DEFAULT_SHOW_HEIGHT", "Overlay", "annotation_of", "draw_overlay"]

DEFAULT_SHOW_HEIGHT = 720  # frames are drawn at most this tall (px)
WINDOW_TITLE = "mmn live"


def annotation_of(record: WindowRecord | None) -> FrameAnnotation:
    """The top-3 lines of a window record (none for a skipped or unlabelled window)."""
    if record is None or "top_k" not in record:
        return FrameAnnotation(())
    body = (record.get("body") or {}).get("index", 0)
    return FrameAnnotation(tuple((f"{r.get('code', r['index'])} {r['name']}", float(r["prob"]), int(body))
                                 for r in record["top_k"][:3]))


def _colour(record: WindowRecord) -> tuple[int, int, int]:
    if "top_k" not in record:
        return NO_LABEL_BGR
    body = (record.get("body") or {}).get("index", 0)
    return BODY_LEVEL_COLOURS_BGR[body % len(BODY_LEVEL_COLOURS_BGR)]


def draw_overlay(posed: PosedFrame, records: Sequence[WindowRecord], fps: float, *, span_s: float = 30.0,
                 height: int = DEFAULT_SHOW_HEIGHT, banner: str | None = None) -> np.ndarray:
    """The frame of ``posed`` (scaled to at most ``height`` px) with its skeleton, the latest
    record's top-3 and the timeline of ``records`` over the last ``span_s`` seconds; BGR."""
    import cv2

    image = posed.image
    scale = min(1.0, height / image.shape[0])
    frame = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image.copy()
    if posed.present:
        draw_skeleton(frame, posed.keypoints * scale, posed.scores, None, LAYOUT)
    draw_text_panel(frame, annotation_of(records[-1] if records else None), banner)
    n = max(2, int(round(span_s * fps)))
    now = int(round(posed.timestamp * fps))
    colours = np.tile(np.array(NO_LABEL_BGR, np.uint8), (n, 1))
    for rec in records:  # later windows paint over earlier ones, as on the annotated clip
        a, b = rec["start_frame"] - (now - n + 1), rec["end_frame"] - (now - n + 1)
        if b > 0 and a < n:
            colours[max(a, 0):min(b, n)] = _colour(rec)
    strip = timeline_image(colours, None, frame.shape[1], max(24, frame.shape[0] // 24))
    draw_timeline(frame, strip, n - 1, n)
    return frame


class Overlay:
    """An OpenCV window showing :func:`draw_overlay` for each posed frame; ``records`` gives the
    window records so far (the engine's list)."""

    def __init__(self, records: Callable[[], Sequence[WindowRecord]], fps: float, banner: str | None = None) -> None:
        import cv2

        self.records, self.fps, self.banner = records, fps, banner
        self.frames = 0
        cv2.namedWindow(WINDOW_TITLE, cv2.WINDOW_NORMAL)

    def __call__(self, posed: PosedFrame) -> None:
        import cv2

        if posed.image is None:
            return
        cv2.imshow(WINDOW_TITLE, draw_overlay(posed, self.records(), self.fps, banner=self.banner))
        cv2.waitKey(1)
        self.frames += 1

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(WINDOW_TITLE)
        cv2.waitKey(1)
