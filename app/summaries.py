"""Readings of a labels document for the page: the window at a time, whole-clip top-k, and
the top-k as an HTML table (codes, names, body levels, probabilities)."""
from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from pipelines.drawing.figures import body_colour


def window_at(windows: Sequence[dict[str, Any]], t: float) -> dict[str, Any] | None:
    """The window shown at time ``t`` s: as on the annotated video, the latest-starting window
    that covers ``t`` (the last window for ``t`` past the end, the first before the start)."""
    if not windows:
        return None
    covering = [w for w in windows if w["start_s"] <= t < w["end_s"]]
    if covering:
        return max(covering, key=lambda w: w["start_s"])
    return windows[-1] if t >= windows[-1]["end_s"] else windows[0]


def clip_top_k(windows: Sequence[dict[str, Any]], k: int = 5) -> tuple[list[dict[str, Any]], int]:
    """Whole-video top-``k``: each class's probability averaged over the labelled windows
    (a class outside a window's stored top-k counts 0 there). Returns (records, windows used)."""
    labelled = [w for w in windows if w.get("top_k")]
    if not labelled:
        return [], 0
    total: dict[int, float] = {}
    info: dict[int, dict[str, Any]] = {}
    for w in labelled:
        for r in w["top_k"]:
            total[r["index"]] = total.get(r["index"], 0.0) + float(r["prob"])
            info.setdefault(r["index"], {key: v for key, v in r.items() if key != "prob"})
    best = sorted(total, key=lambda i: (-total[i], i))[:k]
    return [{**info[i], "prob": total[i] / len(labelled)} for i in best], len(labelled)


def top_k_html(records: Sequence[dict[str, Any]], caption: str, empty: str = "no labels",
               body_levels: Sequence[Sequence[str]] = ()) -> str:
    """An HTML table: rank, code, action, body level (colour chip), probability (bar and %).
    ``body_levels``: the taxonomy's ``(code, name)`` levels, which give the chips' colours."""
    body_index = {code: i for i, (code, _) in enumerate(body_levels)}
    cap = f"<div class='mmn-caption'>{html.escape(caption)}</div>"
    if not records:
        return cap + f"<div class='mmn-empty'>{html.escape(empty)}</div>"
    rows = []
    for rank, r in enumerate(records, 1):
        body_code = r.get("body_code", "")
        rgb = body_colour(body_index.get(body_code, -1))
        colour = "#" + "".join(f"{int(round(c * 255)):02x}" for c in rgb)
        body = f"{body_code} {r.get('body', '')}".strip() or "–"
        pct = 100.0 * float(r["prob"])
        rows.append(
            "<tr>"
            f"<td>{rank}</td>"
            f"<td><b>{html.escape(str(r.get('code', r['index'])))}</b></td>"
            f"<td>{html.escape(r['name'])}</td>"
            f"<td><span class='mmn-chip' style='background:{colour}'></span>{html.escape(body)}</td>"
            f"<td class='mmn-prob'><div class='mmn-bar' style='width:{max(pct, 0.5):.1f}%;background:{colour}'>"
            f"</div><span>{pct:.1f}%</span></td>"
            "</tr>")
    head = "<tr><th>#</th><th>code</th><th>action</th><th>body level</th><th>probability</th></tr>"
    return cap + f"<table class='mmn-top'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


CSS = """
.mmn-caption {font-weight: 600; margin: 4px 0 6px 0;}
.mmn-empty {color: #666; font-style: italic;}
table.mmn-top {width: 100%; border-collapse: collapse; font-size: 14px;}
table.mmn-top th, table.mmn-top td {padding: 3px 6px; text-align: left; border-bottom: 1px solid #e5e5e5;}
.mmn-chip {display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 6px;
           vertical-align: middle;}
td.mmn-prob {position: relative; width: 34%;}
td.mmn-prob .mmn-bar {position: absolute; left: 0; top: 4px; bottom: 4px; opacity: 0.35; border-radius: 2px;}
td.mmn-prob span {position: relative;}
.mmn-banner {border: 2px solid #d9822b; background: #fff4e5; border-radius: 6px; padding: 10px 14px;}
"""
