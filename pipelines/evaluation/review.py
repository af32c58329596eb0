"""Which windows a coder should look at first: the smallest margin between top-1 and top-2.

A window whose two most probable classes are nearly tied is where the model is least sure; a
coder who corrects those first spends the time where it changes most. :func:`review_items`
reads the margins from a labels document (its windows' ``top_k``; a window with one class
listed has margin = its top-1 probability), :func:`rank_for_review` orders any number of videos'
windows by margin (smallest first; ties by video, then start), :func:`least_certain` keeps the
``n`` least certain of one video in time order, :func:`review_marks` turns them into the
non-overlapping annotations of the ``to review`` ELAN tier, and :func:`review_csv_text` is the
run's ``review.csv``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.csv_table import csv_text

__all__ = ["REVIEW_COLUMNS", "REVIEW_TIER", "REVIEW_TOP", "ReviewItem", "ReviewMark", "least_certain",
           "rank_for_review", "review_csv_text", "review_items", "review_marks"]

REVIEW_COLUMNS = ("video", "start_s", "end_s", "top1", "top1_prob", "top2", "top2_prob", "margin")
REVIEW_TOP = 20  # windows marked per video by default (--review-top)
REVIEW_TIER = "to review"


@dataclass(frozen=True)
class ReviewItem:
    """One labelled window: ``video`` (file name), seconds, top-1 and top-2 ``"code name"`` labels
    and probabilities (``top2`` empty and 0 when only one class is listed), ``margin`` = their
    difference."""

    video: str
    window: int
    start_s: float
    end_s: float
    top1: str
    top1_prob: float
    top2: str
    top2_prob: float

    @property
    def margin(self) -> float:
        return self.top1_prob - self.top2_prob


def _label(rec: Mapping[str, Any]) -> str:
    return f"{rec['code']} {rec['name']}" if rec.get("code") else str(rec["name"])


def review_items(doc: Mapping[str, Any]) -> list[ReviewItem]:
    """The labelled windows of one labels document (skipped windows and a run without a
    checkpoint have none), in window order."""
    labelled = [w for w in doc.get("windows") or [] if w.get("top_k")]
    if not labelled:
        return []
    video = str(doc["video"]["file_name"])
    out = []
    for w in labelled:
        top = w["top_k"]
        second = top[1] if len(top) > 1 else None
        out.append(ReviewItem(video, int(w["index"]), float(w["start_s"]), float(w["end_s"]), _label(top[0]),
                              float(top[0]["prob"]), _label(second) if second else "",
                              float(second["prob"]) if second else 0.0))
    return out


def rank_for_review(items: Iterable[ReviewItem], top: int | None = None) -> list[ReviewItem]:
    """Windows by increasing margin (ties: video, then start); the first ``top`` if given."""
    ranked = sorted(items, key=lambda r: (r.margin, r.video, r.start_s, r.window))
    return ranked if top is None else ranked[:top]


def least_certain(items: Sequence[ReviewItem], n: int = REVIEW_TOP) -> list[ReviewItem]:
    """The ``n`` least certain windows of one video, back in time order."""
    return sorted(rank_for_review(items, n), key=lambda r: (r.start_s, r.window))


@dataclass(frozen=True)
class ReviewMark:
    """One annotation of the ``to review`` tier: ``[start_s, end_s)`` and its text."""

    start_s: float
    end_s: float
    text: str


def review_marks(items: Sequence[ReviewItem]) -> list[ReviewMark]:
    """Windows to review (e.g. :func:`least_certain`) as annotations a tier can hold: windows
    that overlap or touch become one mark (an ELAN tier's annotations may not overlap), whose
    text names its least certain window, ``"margin 0.05: A1 shaking body / B1 nodding (3 windows)"``."""
    groups: list[list[ReviewItem]] = []
    for it in sorted(items, key=lambda r: (r.start_s, r.end_s)):
        if groups and it.start_s <= max(g.end_s for g in groups[-1]):
            groups[-1].append(it)
        else:
            groups.append([it])
    marks = []
    for g in groups:
        worst = min(g, key=lambda r: (r.margin, r.start_s))
        text = f"margin {worst.margin:.2f}: {worst.top1} / {worst.top2 or '-'}"
        marks.append(ReviewMark(g[0].start_s, max(r.end_s for r in g), text + (f" ({len(g)} windows)" if len(g) > 1
                                                                              else "")))
    return marks


def review_csv_text(items: Iterable[ReviewItem]) -> str:
    """``review.csv``: every window ranked (:func:`rank_for_review`), columns :data:`REVIEW_COLUMNS`;
    probabilities and margin to 6 decimals."""
    return csv_text(REVIEW_COLUMNS, [(r.video, r.start_s, r.end_s, r.top1, round(r.top1_prob, 6), r.top2,
                                      round(r.top2_prob, 6), round(r.margin, 6)) for r in rank_for_review(items)])
