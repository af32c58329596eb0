"""The events table (``KEY.events.csv``): one row per merged micro-action segment.

The flat shape that BORIS, R (``read.csv``), pandas and spreadsheets read: a header, then
one row per segment of the labels document, in time order. Times are seconds, the labels
document's own values (frames / fps rounded to 0.1 ms); ``duration_s`` is ``stop_s - start_s``.
A video labelled without a checkpoint has no segments: the file is the header alone.

Columns (:data:`EVENTS_COLUMNS`): ``video`` (the file's name), ``start_s``, ``stop_s``,
``duration_s``, ``class_index``, ``code`` (empty for taxonomies without codes), ``name``,
``body_code`` and ``body_level`` (empty without body levels), ``mean_prob`` (mean top-1
probability of the segment's windows).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from core.csv_table import csv_text

__all__ = ["EVENTS_COLUMNS", "event_rows", "events_csv_text", "write_events_csv"]

EVENTS_COLUMNS = ("video", "start_s", "stop_s", "duration_s", "class_index", "code", "name", "body_code",
                  "body_level", "mean_prob")


def event_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One dict per segment of a labels document (keys :data:`EVENTS_COLUMNS`), by start time."""
    video = str(doc["video"]["file_name"])
    rows = []
    for seg in sorted(doc.get("segments") or [], key=lambda s: (s["start_frame"], s["end_frame"])):
        start, stop = float(seg["start_s"]), float(seg["end_s"])
        rows.append({"video": video, "start_s": round(start, 4), "stop_s": round(stop, 4),
                     "duration_s": round(stop - start, 4), "class_index": int(seg["class_index"]),
                     "code": seg.get("code") or "", "name": str(seg["name"]), "body_code": seg.get("body_code") or "",
                     "body_level": seg.get("body") or "", "mean_prob": round(float(seg["mean_prob"]), 4)})
    return rows


def events_csv_text(doc: Mapping[str, Any]) -> str:
    """The CSV text (comma-separated, ``\\n`` line ends, quoted only where needed)."""
    return csv_text(EVENTS_COLUMNS, [[row[c] for c in EVENTS_COLUMNS] for row in event_rows(doc)])


def write_events_csv(doc: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``KEY.events.csv`` atomically; raises OSError when it cannot be written."""
    return atomic_write_text(path, events_csv_text(doc))
