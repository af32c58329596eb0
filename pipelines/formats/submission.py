"""MMA-52 submission tables: ``video_id,t_start,t_end,class,score``, one row per detection.

The form the MMA-52 micro-action detection challenge takes, so that any detector's output can be
scored (``python -m pipelines.agreement``) and ours can be submitted. ``video_id`` is the video's
stem, ``t_start``/``t_end`` seconds, ``class`` the taxonomy's class index, ``score`` the
detection's confidence. Written through :func:`core.csv_table.csv_text`; times are rounded to
:data:`TIME_DECIMALS` and scores to :data:`SCORE_DECIMALS` decimals, and whoever scores the rows
reads them back (:func:`read_submission`) so that the scores use exactly the written values.
"""
from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable
from pathlib import Path

from core.atomic import atomic_write_text
from core.csv_table import csv_text, plain_cell
from pipelines.evaluation.detection_ap import ScoredSegment
from pipelines.formats.spans import AnnotationError

__all__ = ["SCORE_DECIMALS", "SUBMISSION_COLUMNS", "TIME_DECIMALS", "is_submission_header", "read_submission",
           "submission_text", "write_detection_submission"]

SUBMISSION_COLUMNS = ("video_id", "t_start", "t_end", "class", "score")
TIME_DECIMALS = 4
SCORE_DECIMALS = 6


def is_submission_header(header: Iterable[str]) -> bool:
    """Whether a CSV header names the submission columns (any order, others allowed)."""
    return set(SUBMISSION_COLUMNS) <= {h.strip().lower() for h in header}


def submission_text(segments: Iterable[ScoredSegment]) -> str:
    """The CSV text of ``segments`` (``label`` = class index), rounded as the module doc says."""
    rows = [(s.video, round(s.start_s, TIME_DECIMALS), round(s.end_s, TIME_DECIMALS), int(s.label),
             round(s.score, SCORE_DECIMALS)) for s in segments]
    return csv_text(SUBMISSION_COLUMNS, rows)


def write_detection_submission(path: str | os.PathLike, segments: Iterable[ScoredSegment]) -> Path:
    """Write :func:`submission_text` atomically to ``path``."""
    return atomic_write_text(path, submission_text(segments))


def _row(row: list[str], col: dict[str, int], where: str, num_classes: int | None) -> ScoredSegment:
    video = plain_cell(row[col["video_id"]].strip())
    cells = {k: row[col[k]].strip() for k in ("t_start", "t_end", "class", "score")}
    try:
        start, end, score = float(cells["t_start"]), float(cells["t_end"]), float(cells["score"])
        label = int(cells["class"])
    except ValueError:
        raise AnnotationError(f"{where}: t_start, t_end and score must be numbers and class a whole class index, "
                              f"got {cells}") from None
    if not video:
        raise AnnotationError(f"{where}: empty video_id")
    if not all(math.isfinite(v) for v in (start, end, score)):
        raise AnnotationError(f"{where}: times and score must be finite, got {cells}")
    if start < 0:
        raise AnnotationError(f"{where}: negative t_start {start:g} s")
    if end <= start:
        raise AnnotationError(f"{where}: t_end {end:g} s is not after t_start {start:g} s (zero-length or negative)")
    if label < 0 or (num_classes is not None and label >= num_classes):
        raise AnnotationError(f"{where}: class {label} is outside 0..{(num_classes or 1) - 1}")
    return ScoredSegment(video, start, end, label, score)


def read_submission(path: str | os.PathLike, num_classes: int | None = None) -> list[ScoredSegment]:
    """The rows of a submission CSV, in file order. Raises
    :class:`pipelines.formats.spans.AnnotationError` naming the file and line of the first bad row
    (a missing column, a number that is not one, a zero-length or negative span, a class outside
    ``0 … num_classes-1``) or an empty file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: cannot read as UTF-8 text ({e})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise AnnotationError(f"{path}: empty file; expected a header {','.join(SUBMISSION_COLUMNS)}")
    names = [h.strip().lower() for h in header]
    if not is_submission_header(names):
        raise AnnotationError(f"{path}:1: the header {','.join(header)!r} is not {','.join(SUBMISSION_COLUMNS)}")
    col = {c: names.index(c) for c in SUBMISSION_COLUMNS}
    out = []
    for row in reader:
        if not any(c.strip() for c in row):
            continue
        where = f"{path}:{reader.line_num}"
        if len(row) <= max(col.values()):
            raise AnnotationError(f"{where}: {len(row)} field(s), the header has {len(header)}")
        out.append(_row(row, col, where, num_classes))
    return out
