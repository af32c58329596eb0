"""The per-video pictures drawn straight into pixels: the heatmap and the timeline in ~10–30 ms.

Same inputs, layout and :class:`~pipelines.drawing.picture.Picture` output as the matplotlib
versions in :mod:`pipelines.drawing.figures`, which cost 0.2–0.4 s per video (most of a short
clip's time after the pose). Shapes, lines and the heat grid are drawn with NumPy and OpenCV
(anti-aliased lines, turbo colour map); text with Pillow in DejaVu Sans (matplotlib's own font
file when matplotlib is installed, else Pillow's built-in font); the PNG is encoded by OpenCV
at a low compression level with the row labels written as a ``tEXt`` chunk, as before.
``benchmarks/bench_pictures.py`` times both.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import math
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.layouts import MA52_44, SkeletonLayout
from pipelines.drawing.picture import (
    PART_COLOURS_RGB,
    ROWS_KEY,
    Picture,
    body_rgb,
    grouped_joint_order,
    heat_name,
    pack_rows,
)

__all__ = ["joint_heatmap", "nice_ticks", "png_bytes", "timeline"]

RGB = tuple[int, int, int]
WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (77, 77, 77)


@functools.lru_cache(maxsize=16)
def _font(size: int, bold: bool = False) -> Any:
    from PIL import ImageFont

    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin:
        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        ttf = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / name
        if ttf.is_file():
            return ImageFont.truetype(str(ttf), size)
    return ImageFont.load_default(size)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _one_line(text: str) -> str:
    return _CONTROL.sub(" ", text)


@functools.lru_cache(maxsize=4096)
def _text_mask(text: str, size: int, bold: bool, anchor: str) -> tuple[np.ndarray, int, int]:
    """A text's coverage (h, w) float32 in [0, 1] and its offset from the anchor point, cached:
    the joint names, part names and tick labels repeat from picture to picture."""
    from PIL import Image, ImageDraw

    font = _font(size, bold)
    left, top, right, bottom = (int(v) for v in font.getbbox(text, anchor=anchor))
    im = Image.new("L", (max(right - left, 1), max(bottom - top, 1)), 0)
    ImageDraw.Draw(im).text((-left, -top), text, fill=255, font=font, anchor=anchor)
    return np.asarray(im, np.float32) / 255.0, left, top


@functools.lru_cache(maxsize=1)
def _turbo_rgb() -> np.ndarray:
    """(256, 3) uint8 RGB: OpenCV's turbo colour map, as on the annotated clip."""
    return cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1].copy()


class _Canvas:
    """An RGB image; text is queued and blended in by :meth:`finish` (cached glyph masks)."""

    def __init__(self, width: int, height: int) -> None:
        self.img = np.full((height, width, 3), 255, np.uint8)
        self.texts: list[tuple[tuple[float, float], str, int, bool, RGB, str]] = []

    def text(self, xy: tuple[float, float], text: str, size: int = 11, bold: bool = False, fill: RGB = BLACK,
             anchor: str = "lm") -> None:
        """``anchor``: Pillow's two letters (l/m/r horizontally, t/m/b vertically). Control
        characters (a newline in a file name) are drawn as spaces: one line per label."""
        self.texts.append((xy, _one_line(text), size, bold, fill, anchor))

    def text_width(self, text: str, size: int = 11, bold: bool = False) -> float:
        return float(_font(size, bold).getlength(text))

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: RGB, alpha: float = 1.0) -> None:
        h, w = self.img.shape[:2]
        a, b = min(max(round(x0), 0), w), min(max(round(x1), 0), w)
        c, d = min(max(round(y0), 0), h), min(max(round(y1), 0), h)
        if b <= a or d <= c:
            return
        region = self.img[c:d, a:b]
        if alpha >= 1.0:
            region[:] = fill
        else:
            region[:] = (region * (1 - alpha) + np.asarray(fill, np.float32) * alpha).astype(np.uint8)

    def line(self, p0: tuple[float, float], p1: tuple[float, float], colour: RGB, thick: int = 1) -> None:
        cv2.line(self.img, (int(round(p0[0])), int(round(p0[1]))), (int(round(p1[0])), int(round(p1[1]))),
                 colour, thick, cv2.LINE_AA)

    def finish(self) -> np.ndarray:
        img = self.img
        h, w = img.shape[:2]
        for (x, y), text, size, bold, fill, anchor in self.texts:
            mask, dx, dy = _text_mask(text, size, bold, anchor)
            x0, y0 = int(round(x)) + dx, int(round(y)) + dy
            a, b = max(x0, 0), min(x0 + mask.shape[1], w)
            c, d = max(y0, 0), min(y0 + mask.shape[0], h)
            if b <= a or d <= c:
                continue
            m = mask[c - y0:d - y0, a - x0:b - x0, None]
            region = img[c:d, a:b]
            region[:] = (region * (1.0 - m) + np.asarray(fill, np.float32) * m + 0.5).astype(np.uint8)
        self.texts = []
        return img


def nice_ticks(lo: float, hi: float, max_ticks: int = 8) -> list[float]:
    """Round tick positions (1, 2, 2.5 or 5 × 10^k apart) covering [lo, hi], at most ``max_ticks``."""
    span = hi - lo
    if not math.isfinite(span) or span <= 0:
        return [lo]
    raw = span / max(max_ticks - 1, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return [round(k * step, 10) for k in range(first, last + 1)]


def _tick_label(t: float, ticks: Sequence[float]) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    digits = next((d for d in range(4) if abs(round(step, d) - step) < 1e-9), 3)
    return f"{0.0 if abs(t) < 1e-9 else t:.{digits}f}"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(rgb: np.ndarray, text: Mapping[str, str] = (), compression: int = 1) -> bytes:
    """(H, W, 3) uint8 RGB → PNG bytes, with ``text`` as ``tEXt`` chunks after the header
    (keys and values Latin-1; JSON is ASCII)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise ValueError(f"could not encode a {rgb.shape} picture as PNG")
    png = buf.tobytes()
    chunks = b"".join(_chunk(b"tEXt", k.encode("latin-1") + b"\0" + v.encode("latin-1")) for k, v in dict(text).items())
    end_of_header = 8 + 4 + 4 + 13 + 4  # signature, IHDR length, type, data, CRC
    return png[:end_of_header] + chunks + png[end_of_header:]


def _picture(img: np.ndarray, row_labels: Sequence[str] = ()) -> Picture:
    meta = {"Software": "mmn-microaction"}
    if row_labels:
        meta[ROWS_KEY] = json.dumps(list(row_labels))
    return Picture(png_bytes(img, meta), img.shape[1], img.shape[0], tuple(row_labels))


def _x_axis(c: _Canvas, x0: int, x1: int, y: int, t0: float, t1: float, labels: bool = True) -> None:
    """Ticks (and labels) for times t0 … t1 along y between pixel columns x0 … x1."""
    c.line((x0, y), (x1, y), BLACK)
    ticks = nice_ticks(t0, t1, max(3, (x1 - x0) // 60))
    for t in ticks:
        x = x0 + (t - t0) / max(t1 - t0, 1e-9) * (x1 - x0)
        c.line((x, y), (x, y + 4), BLACK)
        if labels:
            c.text((x, y + 6), _tick_label(t, ticks), 10, anchor="mt")


# --------------------------------------------------------------------------- heatmap


def joint_heatmap(heat: np.ndarray, fps: float, start_frame: int = 0, layout: SkeletonLayout = MA52_44,
                  source: str = "motion_energy", title: str | None = None, marker_frame: int | None = None,
                  vmax: float | None = None, dpi: int = 100) -> Picture:
    """Time × joints heat picture, one labelled row per joint grouped by body part (as
    :func:`pipelines.drawing.figures.joint_heatmap`; ``dpi`` scales the picture, 100 = 720 px
    wide). Returns a :class:`~pipelines.drawing.picture.Picture` with the row labels."""
    heat = np.nan_to_num(np.asarray(heat, np.float32))
    if heat.ndim != 2 or heat.shape[1] != layout.num_joints:
        raise ValueError(f"heat must be (T, {layout.num_joints}), got {heat.shape}")
    k = dpi / 100
    order, groups = grouped_joint_order(layout)
    v, t = layout.num_joints, max(heat.shape[0], 1)
    grid = heat[:, order].T if heat.shape[0] else np.zeros((v, 1), np.float32)
    row_h = max(8, int(round(15 * k)))
    left, right, top_m = int(145 * k), int(122 * k), int(40 * k)
    width = int(round(720 * k))
    x0, x1, y0 = left, width - right, top_m
    y1 = y0 + row_h * v
    height = y1 + int(125 * k)
    c = _Canvas(width, height)
    top = float(vmax) if vmax is not None else float(grid.max()) if grid.size else 1.0
    top = max(top, 1e-9)
    levels = (np.clip(grid / top, 0, 1) * 255).astype(np.uint8)
    cols = np.clip((np.arange(x1 - x0) * t) // max(x1 - x0, 1), 0, t - 1)
    cells = _turbo_rgb()[levels[:, cols]]  # (V, W, 3) RGB
    c.img[y0:y1, x0:x1] = np.repeat(cells, row_h, axis=0)
    names = [layout.joint_names[j].replace("_", " ") for j in order]
    fs = max(7, int(round(9 * k)))
    for r, name in enumerate(names):
        ym = y0 + (r + 0.5) * row_h
        c.line((x0 - 4, ym), (x0, ym), BLACK)
        c.text((x0 - 6, ym), name, fs, anchor="rm")
    for name, first, count in groups:
        if first:
            c.rect(x0, y0 + first * row_h - 1.5 * k, x1, y0 + first * row_h + 1.5 * k, WHITE)
        c.text((x1 + 8, y0 + (first + count / 2) * row_h), name, int(round(12 * k)), bold=True)
    t0 = start_frame / fps
    t1 = t0 + t / fps
    if marker_frame is not None:
        xm = x0 + ((marker_frame + 0.5) / fps - t0) / (t1 - t0) * (x1 - x0)
        for ya in range(y0, y1, int(8 * k) or 1):
            c.line((xm, ya), (xm, min(ya + 4 * k, y1)), WHITE, max(1, int(round(1.5 * k))))
    _frame(c, x0, y0, x1, y1)
    _x_axis(c, x0, x1, y1, t0, t1)
    c.text(((x0 + x1) / 2, y1 + 30 * k), "time (s)", int(round(12 * k)), anchor="mt")
    c.text(((x0 + x1) / 2, 14 * k), title or f"per-joint {heat_name(source)}", int(round(13 * k)), anchor="mt")
    _colour_bar(c, x0, x1, int(y1 + 62 * k), int(12 * k), top, heat_name(source))
    return _picture(c.finish(), [layout.joint_names[j] for j in order])


def _frame(c: _Canvas, x0: int, y0: int, x1: int, y1: int) -> None:
    cv2.rectangle(c.img, (x0 - 1, y0 - 1), (x1, y1), BLACK, 1)


def _colour_bar(c: _Canvas, x0: int, x1: int, y: int, h: int, top: float, label: str) -> None:
    ramp = _turbo_rgb()[np.linspace(0, 255, x1 - x0).astype(np.uint8)[None]]
    c.img[y:y + h, x0:x1] = np.repeat(ramp, h, axis=0)
    _frame(c, x0, y, x1, y + h)
    ticks = nice_ticks(0.0, top, 6)
    for v in ticks:
        x = x0 + v / top * (x1 - x0)
        c.line((x, y + h), (x, y + h + 3), BLACK)
        c.text((x, y + h + 5), _tick_label(v, ticks), 9, anchor="mt")
    c.text(((x0 + x1) / 2, y + h + 20), label, 10, anchor="mt")


# --------------------------------------------------------------------------- timeline


def timeline(duration_s: float, segments: Sequence[dict[str, Any]], windows: Sequence[dict[str, Any]],
             energy: np.ndarray | None = None, fps: float | None = None, marker_s: float | None = None,
             note: str | None = None, title: str = "Predicted micro-actions over time",
             body_levels: Sequence[tuple[str, str]] = (), region_motion: Mapping[str, np.ndarray] | None = None,
             width_in: float = 12.0, dpi: int = 100) -> Picture:
    """Micro-action timeline of one video: segments, each window's top-1, the skeleton's motion
    and (``region_motion``) the pixel motion per body part. Arguments and meaning as
    :func:`pipelines.drawing.figures.timeline`; ``width_in × dpi`` is the width in pixels."""
    duration_s = max(float(duration_s), 1e-3)
    labelled = [w for w in windows if w.get("top_k")]
    rows = pack_rows([(w["start_s"], w["end_s"]) for w in windows])
    n_rows = max(rows, default=0) + 1
    width = int(round(width_in * dpi))
    heights = [125, 35 + 12 * n_rows, 80] + ([120] if region_motion else [])
    x0, x1, gap, top_m = 110, width - 12, 12, 72
    height = top_m + sum(heights) + gap * (len(heights) - 1) + 50
    c = _Canvas(width, height)
    panels, y = [], top_m
    for h in heights:
        panels.append((y, y + h))
        y += h + gap
    xs = lambda s: x0 + float(s) / duration_s * (x1 - x0)  # noqa: E731
    body_index = {code: i for i, (code, _) in enumerate(body_levels)}
    _segments(c, panels[0], xs, segments, body_index, duration_s,
              note or ("no window reached the confidence threshold" if labelled else "no labels"))
    _windows(c, panels[1], xs, windows, rows, n_rows, body_index, duration_s)
    _energy(c, panels[2], x0, x1, energy, fps, duration_s)
    if region_motion:
        _pixels(c, panels[3], x0, x1, region_motion, fps, duration_s)
    for (ya, yb), label in zip(panels, ("segments", "windows\n(top-1)", "skeleton\nmotion", "pixel motion\nper part")):
        c.line((x0, ya), (x0, yb), BLACK)
        _x_axis(c, x0, x1, yb, 0.0, duration_s, labels=(ya, yb) == panels[-1])
        lines = label.split("\n")
        for i, text in enumerate(lines):
            c.text((x0 - 8, (ya + yb) / 2 + (i - (len(lines) - 1) / 2) * 15), text, 12, anchor="rm")
    c.text(((x0 + x1) / 2, panels[-1][1] + 28), "time (s)", 12, anchor="mt")
    if marker_s is not None:
        for ya, yb in panels:
            for yy in range(ya, yb, 10):
                c.line((xs(marker_s), yy), (xs(marker_s), min(yy + 6, yb)), BLACK, 2)
    c.text((x0 - 2, 16), title, 14, bold=True, anchor="lm")
    lx = x0
    for i, (code, name) in enumerate(body_levels):
        c.rect(lx, 38, lx + 16, 50, body_rgb(i))
        c.text((lx + 21, 44), f"{code} {name}", 11)
        lx += 21 + c.text_width(f"{code} {name}", 11) + 18
    return _picture(c.finish())


def _fit(c: _Canvas, text: str, width: float, size: int, bold: bool) -> bool:
    return c.text_width(text, size, bold) <= width - 4


def _segments(c: _Canvas, panel: tuple[int, int], xs: Any, segments: Sequence[dict[str, Any]],
              body_index: Mapping[str, int], duration_s: float, empty_note: str) -> None:
    ya, yb = panel
    h = yb - ya
    for seg in segments:
        a, b = xs(seg["start_s"]), xs(seg["end_s"])
        c.rect(a, ya + 0.08 * h, b, yb - 0.08 * h, body_rgb(body_index.get(seg.get("body_code", ""), -1)))
        c.rect(b - 1, ya + 0.08 * h, b + 1, yb - 0.08 * h, WHITE)
        code = str(seg.get("code", seg["class_index"]))
        name, prob = f"{code} {seg['name']}", f"{seg['mean_prob']:.0%}"
        size = 13 if (seg["end_s"] - seg["start_s"]) / duration_s > 0.15 else 11
        mid = ((a + b) / 2, (ya + yb) / 2)
        if _fit(c, name, b - a, size, True):
            c.text((mid[0], mid[1] - 9), name, size, bold=True, fill=WHITE, anchor="mm")
            c.text((mid[0], mid[1] + 9), prob, size, bold=True, fill=WHITE, anchor="mm")
        elif _fit(c, code, b - a, 9, False):
            c.text(mid, code, 9, fill=WHITE, anchor="mm")
    if not segments:
        c.text((xs(duration_s / 2), (ya + yb) / 2), empty_note, 13, fill=GREY, anchor="mm")


def _windows(c: _Canvas, panel: tuple[int, int], xs: Any, windows: Sequence[dict[str, Any]], rows: Sequence[int],
             n_rows: int, body_index: Mapping[str, int], duration_s: float) -> None:
    ya, yb = panel
    rh = (yb - ya) / n_rows
    for w, row in zip(windows, rows):
        top = (w.get("top_k") or [None])[0]
        if top is None:
            colour, alpha = body_rgb(-1), 0.35
        else:
            colour, alpha = body_rgb(body_index.get(top.get("body_code", ""), -1)), 0.35 + 0.65 * float(top["prob"])
        r0 = yb - (row + 0.88) * rh
        a, b = xs(w["start_s"]), xs(w["end_s"])
        c.rect(a, r0, b, r0 + 0.76 * rh, colour, alpha)
        c.rect(b - 0.5, r0, b + 0.5, r0 + 0.76 * rh, WHITE)
        if top is not None and (w["end_s"] - w["start_s"]) / duration_s > 0.08 and n_rows <= 4:
            c.text(((a + b) / 2, r0 + 0.38 * rh), str(top.get("code", top["index"])), 9, fill=WHITE, anchor="mm")


def _curve(x0: int, x1: int, ya: int, yb: int, v: np.ndarray, fps: float | None, top: float,
           duration: float) -> np.ndarray:
    t = (np.arange(len(v)) + 0.5) / fps if fps else np.arange(len(v), dtype=np.float64)
    px = x0 + t / max(duration, 1e-9) * (x1 - x0)
    py = yb - np.clip(np.nan_to_num(v) / top, 0, 1) * (yb - ya - 4)
    return np.stack([px, py], axis=1)


def _energy(c: _Canvas, panel: tuple[int, int], x0: int, x1: int, energy: np.ndarray | None,
            fps: float | None, duration_s: float) -> None:
    ya, yb = panel
    if energy is None or len(energy) < 2 or not fps:
        return
    e = np.nan_to_num(np.asarray(energy, np.float64))
    top = max(float(e.max()) * 1.1, 1e-6)
    pts = _curve(x0, x1, ya, yb, e, fps, top, duration_s)
    shift = 4  # sub-pixel precision of cv2's polygon functions
    poly = np.vstack([[pts[0, 0], yb], pts, [pts[-1, 0], yb]])
    fill = c.img.copy()
    cv2.fillPoly(fill, [np.round(poly * (1 << shift)).astype(np.int32)], (141, 141, 141), cv2.LINE_AA, shift)
    cv2.addWeighted(fill, 0.5, c.img, 0.5, 0, dst=c.img)
    cv2.polylines(c.img, [np.round(pts * (1 << shift)).astype(np.int32)], False, (64, 64, 64), 1, cv2.LINE_AA, shift)


def _pixels(c: _Canvas, panel: tuple[int, int], x0: int, x1: int, region_motion: Mapping[str, np.ndarray],
            fps: float | None, duration_s: float) -> None:
    ya, yb = panel
    series = {name: np.asarray(v, np.float64) for name, v in region_motion.items()}
    top = max([1e-6] + [float(np.nanmax(v)) for v in series.values() if np.isfinite(v).any()]) * 1.1
    shift = 4
    lx = x1
    for i, (name, v) in enumerate(reversed(list(series.items()))):  # legend right-aligned, in part order
        colour = PART_COLOURS_RGB[(len(series) - 1 - i) % len(PART_COLOURS_RGB)]
        n = len(v)
        pts = _curve(x0, x1, ya, yb, v, fps, top, duration_s if fps else float(n))
        ok = np.isfinite(v)
        for run in np.split(np.arange(n), np.flatnonzero(np.diff(ok.astype(np.int8))) + 1):  # gaps stay gaps
            if run.size > 1 and ok[run[0]]:
                cv2.polylines(c.img, [np.round(pts[run] * (1 << shift)).astype(np.int32)], False, colour, 1,
                              cv2.LINE_AA, shift)
        lx -= c.text_width(name, 10) + 8
        c.text((lx, ya + 8), name, 10)
        lx -= 22
        c.line((lx, ya + 8), (lx + 16, ya + 8), colour, 2)
        lx -= 14
