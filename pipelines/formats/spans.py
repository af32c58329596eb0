"""Annotated spans (a label over an interval of a video) from CSV tables, and the rules they obey.

A :class:`Span` is what an annotation tool marks: ``label`` from ``start_s`` to ``end_s``
(seconds from the start of the video), with ``source`` naming where it came from
(``file.csv:17`` or ``file.eaf:120: annotation a45 (tier 'X')``) so every later error can
point at it. ELAN files are read by :mod:`pipelines.formats.elan`; this module reads the CSV form and
holds the rules (:func:`check_spans`):

- a span may end past the end of its video by at most one frame (``1/fps``): it is clipped to
  the end; further past the end, or starting at or after the end, is an error;
- spans with the same label that overlap or touch are merged into one (so that a window over
  the seam still lies mostly inside one span);
- spans with different labels must not overlap (touching is fine): an error names both.

CSV form (:func:`read_csv_spans`): UTF-8 (a BOM is allowed), a header row, then one row per
span with the columns ``video,start_s,end_s,label`` in any order (others are ignored;
``stop_s`` is accepted for ``end_s``). A table without ``label`` but with ``name`` (and
``code``) — a ``KEY.events.csv`` corrected in a spreadsheet — takes ``"code name"`` (or the
name) as the label. ``video`` is a file name or path (see :mod:`pipelines.dataset_builder`).
"""
from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from core.csv_table import plain_cell
from core.taxonomy import label_problem, shown_label

__all__ = ["CSV_COLUMNS", "AnnotationError", "Span", "check_annotation_file", "check_spans", "read_csv_spans"]

CSV_COLUMNS = ("video", "start_s", "end_s", "label")
_ALIASES = {"stop_s": "end_s"}  # KEY.events.csv's name for the end
_MAX_ERRORS = 20


class AnnotationError(ValueError):
    """An annotation file or span that cannot be used; the message names the file and the
    line or annotation."""


def check_annotation_file(path: Path) -> None:
    """Refuse a path that is missing or not a regular file (a folder, a FIFO, a device: reading
    a FIFO would wait for a writer forever)."""
    if not path.exists():
        raise AnnotationError(f"{path}: no such file")
    if not path.is_file():
        raise AnnotationError(f"{path}: not a regular file (a folder, a FIFO or a device)")


@dataclass(frozen=True)
class Span:
    """``label`` on ``[start_s, end_s)`` seconds of a video.

    ``source``: where it was read (file:line, and the annotation for ELAN); ``video``: the
    CSV row's video (None for ELAN, whose file links its video); ``interpolated``: a bound
    came from an ELAN time slot without a time value (placed as ELAN shows it)."""

    start_s: float
    end_s: float
    label: str
    source: str
    video: str | None = None
    interpolated: bool = False

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def _header_columns(header: list[str], path: Path) -> tuple[dict[str, int], str]:
    """Column indices of video, start_s, end_s and the label; and how the label is formed."""
    names = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    if "label" in names:
        label_mode = "label"
    elif "name" in names:
        label_mode = "code name" if "code" in names else "name"
    else:
        label_mode = "label"
    wanted = ["video", "start_s", "end_s"] + label_mode.split()
    missing = [c for c in wanted if c not in names]
    if missing:
        raise AnnotationError(f"{path}:1: the header {','.join(h.strip() for h in header)!r} lacks the column(s) "
                              f"{', '.join(missing)}; expected {','.join(CSV_COLUMNS)}")
    return {c: names.index(c) for c in wanted}, label_mode


def read_csv_spans(path: str | os.PathLike) -> list[Span]:
    """Spans of a CSV annotation table (module doc), in file order. Every bad row is reported
    (up to 20) in one :class:`AnnotationError`, each as ``file:line: problem``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not UTF-8 text (byte {e.start}); save the table as UTF-8 CSV") from None
    except OSError as e:
        raise AnnotationError(f"{path}: cannot read ({e.strerror or e})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise AnnotationError(f"{path}: empty file; expected a header {','.join(CSV_COLUMNS)}") from None
    except csv.Error as e:
        raise AnnotationError(f"{path}:1: not a CSV header ({e})") from None
    col, label_mode = _header_columns(header, path)
    spans: list[Span] = []
    errors: list[str] = []
    line = reader.line_num
    while len(errors) < _MAX_ERRORS:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            errors.append(f"{path}:{line + 1}: {e}")
            break
        row_line, line = line + 1, reader.line_num  # a quoted field may span lines
        if not any(c.strip() for c in row):
            continue
        if len(row) <= max(col.values()):
            errors.append(f"{path}:{row_line}: {len(row)} field(s), the header has {len(header)}")
            continue
        video = plain_cell(row[col["video"]].strip())
        label = " ".join(plain_cell(row[col[c]].strip()) for c in label_mode.split() if row[col[c]].strip())
        raw_start, raw_end = row[col["start_s"]].strip(), row[col["end_s"]].strip()
        try:
            start, end = float(raw_start), float(raw_end)
        except ValueError:
            errors.append(f"{path}:{row_line}: start_s and end_s must be numbers of seconds (a decimal point, "
                          f"not a comma), got {raw_start!r} and {raw_end!r}")
            continue
        problems = []
        if not video:
            problems.append("empty video")
        if not label:
            problems.append("empty label")
        if not (math.isfinite(start) and math.isfinite(end)):
            problems.append(f"times must be finite, got {raw_start!r} and {raw_end!r}")
        elif start < 0:
            problems.append(f"negative start {start:g} s")
        elif end <= start:
            problems.append(f"end {end:g} s is not after start {start:g} s")
        if problems:
            errors.append(f"{path}:{row_line}: " + "; ".join(problems))
            continue
        spans.append(Span(start, end, label, f"{path}:{row_line}", video))
    if errors:
        more = f" (stopped after the first {_MAX_ERRORS})" if len(errors) >= _MAX_ERRORS else ""
        raise AnnotationError(f"{len(errors)} bad row(s) in {path}{more}:\n  " + "\n  ".join(errors))
    return spans


def check_spans(spans: Sequence[Span], duration_s: float, fps: float, what: str = "the video") -> list[Span]:
    """Apply the rules of the module doc to the spans of one video (``duration_s`` seconds at
    ``fps``): returns them sorted by start, clipped to the end, with same-label spans that
    overlap or touch merged; raises :class:`AnnotationError` naming the span(s) otherwise."""
    tolerance = 1.0 / fps
    out: list[Span] = []
    for sp in sorted(spans, key=lambda s: (s.start_s, s.end_s)):
        if problem := label_problem(sp.label):
            raise AnnotationError(f"{sp.source}: the label {shown_label(sp.label)} cannot be a class name: {problem}")
        if sp.start_s >= duration_s:
            raise AnnotationError(f"{sp.source}: span {sp.start_s:.3f}-{sp.end_s:.3f} s starts at or after the end "
                                  f"of {what} ({duration_s:.3f} s)")
        if sp.end_s > duration_s + tolerance + 1e-9:
            raise AnnotationError(f"{sp.source}: span {sp.start_s:.3f}-{sp.end_s:.3f} s ends "
                                  f"{sp.end_s - duration_s:.3f} s after the end of {what} ({duration_s:.3f} s); "
                                  f"only up to one frame ({tolerance:.3f} s) past the end is clipped")
        if sp.end_s > duration_s:
            sp = replace(sp, end_s=duration_s)
        if out and sp.start_s <= out[-1].end_s + 1e-9 and sp.label == out[-1].label:
            prev = out[-1]
            out[-1] = replace(prev, end_s=max(prev.end_s, sp.end_s), source=f"{prev.source} + {sp.source}",
                              interpolated=prev.interpolated or sp.interpolated)
            continue
        if out and sp.start_s < out[-1].end_s - 1e-9:
            prev = out[-1]
            raise AnnotationError(
                f"overlapping spans with different labels: {prev.source} ({prev.label!r} "
                f"{prev.start_s:.3f}-{prev.end_s:.3f} s) and {sp.source} ({sp.label!r} "
                f"{sp.start_s:.3f}-{sp.end_s:.3f} s); a window could not take one label")
        out.append(sp)
    return out
