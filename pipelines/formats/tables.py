"""The folder job's run tables: ``windows.csv``, ``summary.csv``, ``failures.csv``, ``review.csv``.

One row per window, one per video (status, duration, windows labelled and skipped for want of
the subject, dominant action, hottest joints), one per failed video (file, stage, reason), and
every labelled window ranked by the margin between its top-1 and top-2 probabilities, least
certain first (:mod:`pipelines.evaluation.review`): the order in which a coder checks them.
With ``--shard K/N`` the names get ``.shard-K-of-N`` before ``.csv``. Each is written
atomically at the end of a run (also after Ctrl-C), so the tables always describe one whole run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.atomic import atomic_write_text
from core.csv_table import csv_text
from pipelines.evaluation.review import ReviewItem, review_csv_text, review_items

__all__ = ["RunTables", "summary_row", "window_rows"]

WINDOW_HEADER = ["video", "window", "start_s", "end_s", "start_frame", "end_frame", "top1_code", "top1_name",
                 "top1_prob", "body", "top_k", "skipped"]
SUMMARY_HEADER = ["video", "status", "frames", "duration_s", "fps", "windows", "labelled_windows", "skipped_windows",
                  "dominant_action", "heat_source", "hottest_joints", "hottest_part_motion", "hottest_part_pixels"]
FAILURE_HEADER = ["file", "stage", "reason"]


def window_rows(key: str, doc: dict) -> list[list[object]]:
    """``windows.csv`` rows of one labels document."""
    rows = []
    for w in doc["windows"]:
        top = w.get("top_k") or []
        first = top[0] if top else {}
        rows.append([key, w["index"], w["start_s"], w["end_s"], w["start_frame"], w["end_frame"],
                     first.get("code", first.get("index", "")), first.get("name", ""),
                     round(first["prob"], 6) if first else "", w.get("body", {}).get("name", ""),
                     ";".join(f"{r.get('code', r['index'])}:{r['prob']:.4f}" for r in top), w.get("skipped", "")])
    return rows


def summary_row(key: str, status: str, doc: dict | None) -> list[object]:
    """The ``summary.csv`` row of one video (``doc`` None for a failed or skipped one)."""
    if doc is None:
        return [key, status] + [""] * (len(SUMMARY_HEADER) - 2)
    by_class: dict[str, float] = {}
    for s in doc["segments"]:
        label = f"{s.get('code', s['class_index'])} {s['name']}"
        by_class[label] = by_class.get(label, 0.0) + s["end_s"] - s["start_s"]
    dominant = max(by_class, key=by_class.get) if by_class else ""
    labelled = sum(1 for w in doc["windows"] if "top_k" in w)
    skipped = sum(1 for w in doc["windows"] if "skipped" in w)
    motion = doc["motion"]["hottest_part"]
    return [key, status, doc["video"]["frame_count"], doc["video"]["duration_s"], doc["video"]["fps"],
            len(doc["windows"]), labelled, skipped, dominant, doc["heatmap"]["source"],
            " ".join(doc["heatmap"]["hottest_joints"][:3]), motion["heat"], motion["pixels"] or ""]


@dataclass
class RunTables:
    """Rows gathered over a run, written by :meth:`write`."""

    windows: list[list[object]] = field(default_factory=list)
    summary: list[list[object]] = field(default_factory=list)
    failures: list[list[object]] = field(default_factory=list)
    review: list[ReviewItem] = field(default_factory=list)

    def add_done(self, key: str, status: str, doc: dict) -> None:
        self.windows.extend(window_rows(key, doc))
        self.summary.append(summary_row(key, status, doc))
        self.review.extend(review_items(doc))

    def add_failed(self, key: str, path: Path, stage: str, reason: str, status: str = "failed") -> None:
        self.failures.append([str(path), stage, reason])
        self.summary.append(summary_row(key, status, None))

    def skipped_windows(self) -> int:
        """Windows skipped (subject absent) over the run's labelled videos."""
        col = SUMMARY_HEADER.index("skipped_windows")
        return sum(int(row[col]) for row in self.summary if row[col] != "")

    def write(self, out: Path, suffix: str = "") -> list[Path]:
        """Write the four tables (``suffix`` e.g. ``.shard-0-of-2``); returns their paths.
        ``review.csv`` ranks every labelled window of the run, least certain first."""
        return [atomic_write_text(out / f"windows{suffix}.csv", csv_text(WINDOW_HEADER, self.windows)),
                atomic_write_text(out / f"summary{suffix}.csv", csv_text(SUMMARY_HEADER, self.summary)),
                atomic_write_text(out / f"failures{suffix}.csv", csv_text(FAILURE_HEADER, self.failures)),
                atomic_write_text(out / f"review{suffix}.csv", review_csv_text(self.review))]
