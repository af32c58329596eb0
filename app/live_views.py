"""The Live tab's readings of the window records (the live engine's JSON lines): the current
top-k, the growing timeline, the table of windows, and the status line, as HTML/Markdown.

Without a checkpoint the records carry no ``top_k``: the views then show the model-free motion
(per-part pixel motion) and say that there are no labels; they never show a class."""
from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.summaries import top_k_html
from pipelines.drawing.figures import body_colour

__all__ = ["LIVE_CSS", "NO_LABELS", "live_status", "motion_html", "now_html", "overlay_html", "timeline_html",
           "windows_html"]

NO_LABELS = "no labels: no checkpoint configured (model-free motion only)"
TABLE_ROWS = 12  # newest windows listed in the table
LIVE_CSS = """
.mmn-live-overlay img {max-height: 432px; max-width: 100%; display: block; margin: auto;}
.mmn-live-timeline {display: flex; flex-wrap: wrap; gap: 1px; min-height: 18px;}
.mmn-live-timeline span {display: inline-block; width: 9px; height: 18px; border-radius: 1px;}
table.mmn-live {width: 100%; border-collapse: collapse; font-size: 13px;}
table.mmn-live th, table.mmn-live td {padding: 2px 6px; text-align: left; border-bottom: 1px solid #e5e5e5;}
"""


def overlay_html(bgr: np.ndarray | None, quality: int = 80) -> str:
    """The overlay picture (H, W, 3) uint8 BGR as an inline JPEG (no file per frame in
    Gradio's cache); a placeholder before the first posed frame."""
    import cv2

    if bgr is None:
        return "<div class='mmn-live-overlay mmn-empty'>the skeleton appears here once the camera streams</div>"
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"the overlay {bgr.shape} could not be encoded as JPEG")
    data = base64.b64encode(jpeg.tobytes()).decode("ascii")
    return (f"<div class='mmn-live-overlay'><img alt='skeleton, current top-3 and timeline' "
            f"src='data:image/jpeg;base64,{data}'></div>")


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{int(round(c * 255)):02x}" for c in rgb)


def _span(rec: dict[str, Any]) -> str:
    return f"{float(rec['start_s']):.1f}–{float(rec['end_s']):.1f} s"


def _moving(rec: dict[str, Any]) -> tuple[str, float] | None:
    """The body part that moved most in the window (name, pixel motion), None when unmeasured."""
    parts = [(k, float(v)) for k, v in (rec.get("region_motion") or {}).items()
             if v is not None and math.isfinite(float(v))]
    return max(parts, key=lambda kv: kv[1]) if parts else None


def _top1(rec: dict[str, Any]) -> str:
    if rec.get("top_k"):
        r = rec["top_k"][0]
        return f"{r.get('code', r['index'])} {r['name']} ({100 * float(r['prob']):.0f}%)"
    if rec.get("skipped"):
        return f"skipped: {rec['skipped']}"
    return "–"


def now_html(records: Sequence[dict[str, Any]], body_levels: Sequence[Sequence[str]], labelled: bool) -> str:
    """The current top-k (the latest window's), or without a checkpoint its motion."""
    if not records:
        return top_k_html([], "Top-5 now", "waiting for the first window (one window length of frames)")
    rec = records[-1]
    caption = f"Top-5 now: window {rec['index']} ({_span(rec)})"
    if not labelled:
        return top_k_html([], f"Now: window {rec['index']} ({_span(rec)})", NO_LABELS) + motion_html(rec)
    return top_k_html(rec.get("top_k") or [], caption, rec.get("skipped") or "no labels in this window", body_levels)


def motion_html(rec: dict[str, Any]) -> str:
    """The window's per-part pixel motion, largest first (a small table)."""
    parts = sorted(((k, float(v)) for k, v in (rec.get("region_motion") or {}).items()
                    if v is not None and math.isfinite(float(v))), key=lambda kv: -kv[1])
    if not parts:
        return "<div class='mmn-empty'>no motion measured (no person in view)</div>"
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.2f}</td></tr>" for k, v in parts)
    return ("<div class='mmn-caption'>Motion by body part (pixel motion, model-free)</div>"
            "<table class='mmn-live'><thead><tr><th>part</th><th>motion</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def timeline_html(records: Sequence[dict[str, Any]], labelled: bool) -> str:
    """One cell per window, in order, coloured by its top-1 body level (grey without a label);
    each cell's tooltip says the window's time and top-1 (or motion)."""
    cells = []
    for rec in records:
        body = (rec.get("body") or {}).get("index", -1) if labelled and rec.get("top_k") else -1
        moving = _moving(rec)
        tip = f"window {rec['index']}, {_span(rec)}: " + (_top1(rec) if labelled else
                                                          f"most motion: {moving[0]}" if moving else "no motion")
        colour = _hex(body_colour(int(body)))
        cells.append(f"<span style='background:{colour}' title='{html.escape(tip, True)}'></span>")
    return (f"<div class='mmn-caption'>Timeline: {len(records)} windows</div>"
            f"<div class='mmn-live-timeline'>{''.join(cells)}</div>")


def windows_html(records: Sequence[dict[str, Any]], labelled: bool) -> str:
    """The newest windows as a table (newest first), under a caption counting all of them."""
    head = ("<tr><th>window</th><th>time</th><th>top-1</th><th>most motion</th><th>frames</th>"
            "<th>latency</th></tr>")
    rows = []
    for rec in list(records)[::-1][:TABLE_ROWS]:
        moving = _moving(rec)
        top = _top1(rec) if labelled else "– (no checkpoint)"
        rows.append(f"<tr class='mmn-live-window'><td>{rec['index']}</td><td>{_span(rec)}</td>"
                    f"<td>{html.escape(top)}</td><td>{html.escape(moving[0]) if moving else '–'}</td>"
                    f"<td>{rec.get('frames', '')}</td><td>{float(rec.get('latency_s', 0.0)):.2f} s</td></tr>")
    kind = "labelled windows" if labelled else "windows (motion only, no labels)"
    return (f"<div class='mmn-caption'><span class='mmn-live-count'>{len(records)}</span> {kind}</div>"
            f"<table class='mmn-live'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>")


def live_status(elapsed_s: float, max_s: float, received: int, dropped: int, windows: int, labelled: bool) -> str:
    """The status line while a session runs."""
    model = "" if labelled else " · **no checkpoint: motion only, no labels**"
    return (f"**Live:** {elapsed_s:.1f} s of at most {max_s:g} s · {received} frames received, {dropped} dropped "
            f"before pose · {windows} windows{model}. Press **Stop and save** to end the session and get its files.")
