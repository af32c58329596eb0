"""The inputs of an agreement run, read into one form: labelled spans and scored detections per video.

Gold and predictions are matched by video *stem*: a labels document's video file; an ELAN
file's linked media (which takes precedence over the ``.eaf``'s own stem); a BORIS event's media
file; a CSV span table's ``video`` column; a submission's ``video_id``.

- :func:`read_annotations` reads coders' files: ELAN (``.eaf``, one tier), the project's CSV
  spans, BORIS exports and projects. Their values stay text (:class:`ValueSpan`); overlapping
  spans of one value in one video are merged; BORIS point events are counted, not kept.
- :func:`read_predictions` reads a model's output: labels documents (``KEY.labels.json``, or
  the folders holding them) and MMA-52 submission CSVs, as class-indexed
  :class:`pipelines.evaluation.detection_ap.ScoredSegment` — or, for another coder's files,
  falls back to :func:`read_annotations`.
"""
from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pipelines.discovery import VIDEO_SUFFIXES
from pipelines.evaluation.detection_ap import ScoredSegment
from pipelines.evaluation.detections import detections_from_probs, window_probs
from pipelines.formats.boris import is_boris_header, media_stem, read_boris, table_rows
from pipelines.formats.elan import read_eaf_spans
from pipelines.formats.spans import AnnotationError, check_annotation_file, read_csv_spans
from pipelines.formats.submission import is_submission_header, read_submission

__all__ = ["Annotations", "Predictions", "ValueSpan", "VideoFacts", "eaf_media_stem", "is_prediction_file",
           "merge_same_value", "read_annotations", "read_predictions"]


@dataclass(frozen=True)
class ValueSpan:
    """An annotated ``value`` on ``[start_s, end_s)`` of video ``video`` (a stem); ``source``
    names the file and line or annotation."""

    video: str
    start_s: float
    end_s: float
    value: str
    source: str


@dataclass(frozen=True)
class VideoFacts:
    """What is known of a video: the file its spans came from, frame rate and duration (None
    where the input does not say)."""

    file: str
    fps: float | None = None
    duration_s: float | None = None


@dataclass
class Annotations:
    """Coders' spans of every file read, the videos they cover, and the BORIS points left out."""

    spans: list[ValueSpan] = field(default_factory=list)
    videos: dict[str, VideoFacts] = field(default_factory=dict)
    points: int = 0


@dataclass
class Predictions:
    """A model's class-indexed detections, the videos they cover, and the taxonomy name the
    input names (a labels document's ``model.taxonomy.name``; ``"ma52"`` for a submission)."""

    detections: list[ScoredSegment] = field(default_factory=list)
    videos: dict[str, VideoFacts] = field(default_factory=dict)
    taxonomy: str | None = None
    num_classes: int | None = None


def eaf_media_stem(path: Path) -> str | None:
    """The stem of the first video an ELAN file links (MEDIA_URL, else RELATIVE_MEDIA_URL), or None."""
    header = ET.parse(path).getroot().find("HEADER")
    for md in header.findall("MEDIA_DESCRIPTOR") if header is not None else []:
        for key in ("MEDIA_URL", "RELATIVE_MEDIA_URL"):
            url = unquote(md.get(key) or "")
            name = url.replace("\\", "/").rsplit("/", 1)[-1]
            if name and (md.get("MIME_TYPE", "").startswith("video") or Path(name).suffix.lower() in VIDEO_SUFFIXES):
                return Path(name).stem
    return None


def merge_same_value(spans: Iterable[ValueSpan]) -> list[ValueSpan]:
    """Spans of one value in one video that overlap, as one; sorted by video, then start."""
    out: list[ValueSpan] = []
    for sp in sorted(spans, key=lambda s: (s.video, s.value, s.start_s, s.end_s)):
        prev = out[-1] if out else None
        if prev is not None and (prev.video, prev.value) == (sp.video, sp.value) and sp.start_s < prev.end_s:
            out[-1] = ValueSpan(prev.video, prev.start_s, max(prev.end_s, sp.end_s), prev.value,
                                f"{prev.source} + {sp.source}")
        else:
            out.append(sp)
    return sorted(out, key=lambda s: (s.video, s.start_s, s.end_s, s.value))


def _csv_header(path: Path) -> list[list[str]]:
    """The first rows of a table (enough to find a BORIS header below its facts block)."""
    return table_rows(path, limit=60)


def _table_kind(path: Path) -> str:
    rows = _csv_header(path)
    if any(is_boris_header(r) for r in rows):
        return "boris"
    return "submission" if is_submission_header(rows[0]) else "spans"


def _one_annotation_file(path: Path, tier: str | None, out: Annotations) -> None:
    suffix = path.suffix.lower()
    if suffix == ".eaf":
        spans = read_eaf_spans(path, tier)
        stem = eaf_media_stem(path) or path.stem
        out.spans += [ValueSpan(stem, s.start_s, s.end_s, s.label, s.source) for s in spans]
        out.videos.setdefault(stem, VideoFacts(str(path)))
        return
    if suffix == ".boris" or (suffix in (".csv", ".tsv", ".txt") and _table_kind(path) == "boris"):
        read = read_boris(path, tier)
        for s in read.spans:
            out.spans.append(ValueSpan(media_stem(s.video or ""), s.start_s, s.end_s, s.label, s.source))
            out.videos.setdefault(media_stem(s.video or ""), VideoFacts(str(path)))
        out.points += len(read.points)
        return
    if suffix in (".csv", ".tsv", ".txt"):
        if _table_kind(path) == "submission":
            raise AnnotationError(f"{path}: a submission CSV (video_id,t_start,t_end,class,score) holds detections, "
                                  f"not coders' annotations; give it as a prediction")
        for s in read_csv_spans(path):
            stem = media_stem(s.video or "")
            out.spans.append(ValueSpan(stem, s.start_s, s.end_s, s.label, s.source))
            out.videos.setdefault(stem, VideoFacts(str(path)))
        return
    raise AnnotationError(f"{path}: not an annotation file this reads (.eaf, .csv span table, BORIS .tsv/.csv export "
                          f"or .boris project)")


def read_annotations(paths: Sequence[str | os.PathLike], tier: str | None = None) -> Annotations:
    """Coders' spans of all ``paths`` (module doc); a file that gives no span at all is an error."""
    out = Annotations()
    for p in map(Path, paths):
        check_annotation_file(p)
        before = len(out.spans)
        _one_annotation_file(p, tier, out)
        if len(out.spans) == before:
            raise AnnotationError(f"{p}: no annotated spans" + (f" for tier {tier!r}" if tier else ""))
    out.spans = merge_same_value(out.spans)
    return out


def _checked(path: Path, stem: str, r: Any, num_classes: int) -> ScoredSegment:
    """One detection record of a labels document, refused unless its times are finite,
    non-negative and ordered and its class is in ``0 … num_classes-1``."""
    seg = ScoredSegment(stem, float(r["start_s"]), float(r["end_s"]), int(r["class_index"]), float(r["score"]))
    if not (math.isfinite(seg.start_s) and math.isfinite(seg.end_s) and math.isfinite(seg.score)) \
            or not 0 <= seg.start_s < seg.end_s or not 0 <= seg.label < num_classes:
        raise AnnotationError(f"{path}: detection {str(r)[:200]} needs finite times 0 <= start_s < end_s, a finite "
                              f"score and a class_index in 0..{num_classes - 1}")
    return seg


def _labels_doc(path: Path, out: Predictions) -> None:
    check_annotation_file(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        video, model = doc["video"], doc["model"]
        stem, fps, frames = Path(str(video["file_name"])).stem, float(video["fps"]), int(video["frame_count"])
        duration = float(video["duration_s"])
        tax = model["taxonomy"] if model is not None else None
        name, k = (str(tax["name"]), int(tax["num_classes"])) if tax is not None else (None, 0)
    except (OSError, ValueError, KeyError, TypeError, IndexError, RecursionError) as e:
        raise AnnotationError(f"{path}: not a labels document of python -m pipelines.video_to_labels "
                              f"({type(e).__name__}: {str(e)[:200]})") from None
    if not (math.isfinite(fps) and fps > 0 and math.isfinite(duration) and duration >= 0 and frames >= 0):
        raise AnnotationError(f"{path}: video fps {fps}, duration_s {duration} and frame_count {frames} must be "
                              f"finite, fps positive, the others not negative")
    if model is None:
        raise AnnotationError(f"{path}: labelled without a checkpoint (no --weights): it has no labels to score")
    if out.taxonomy not in (None, name) or out.num_classes not in (None, k):
        raise AnnotationError(f"{path}: taxonomy {name!r} ({k} classes) differs from the "
                              f"other predictions' {out.taxonomy!r}")
    out.taxonomy, out.num_classes = name, k
    try:
        records = doc.get("detections")
        if records is None:  # a document from before detections: derive them from the windows' top-k
            probs, bounds = window_probs(doc.get("windows") or [], k)
            records = [{"class_index": d.class_index, "start_s": d.start_frame / fps, "end_s": d.end_frame / fps,
                        "score": d.score} for d in detections_from_probs(probs, bounds, frames)]
        segments = [_checked(path, stem, r, k) for r in records]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError) as e:
        if isinstance(e, AnnotationError):
            raise
        raise AnnotationError(f"{path}: a detection or window that is not one ({type(e).__name__}: "
                              f"{str(e)[:200]})") from None
    if stem in out.videos:
        raise AnnotationError(f"{path}: video {stem!r} is also predicted by {out.videos[stem].file}")
    out.detections += segments
    out.videos[stem] = VideoFacts(str(path), fps, duration)


def is_prediction_file(path: Path) -> bool:
    """A labels document, a folder of them, or a submission CSV (else: annotations)."""
    if path.is_dir():
        return True
    check_annotation_file(path)
    if path.name.endswith(".json"):
        return True
    return path.suffix.lower() in (".csv", ".tsv", ".txt") and _table_kind(path) == "submission"


def read_predictions(paths: Sequence[str | os.PathLike], num_classes: int | None = None) -> Predictions:
    """Detections of labels documents / output folders / submission CSVs (all ``paths`` must be
    of these kinds; see :func:`is_prediction_file`)."""
    out = Predictions()
    for p in map(Path, paths):
        if p.is_dir():
            docs = sorted(p.glob("*.labels.json"))
            if not docs:
                raise AnnotationError(f"{p}: a folder without KEY.labels.json files")
            for d in docs:
                _labels_doc(d, out)
        elif p.name.endswith(".json"):
            _labels_doc(p, out)
        else:
            rows = read_submission(p, num_classes)
            if not rows:
                raise AnnotationError(f"{p}: a submission without rows")
            out.taxonomy = out.taxonomy or "ma52"
            out.detections += rows
            for r in rows:
                out.videos.setdefault(r.video, VideoFacts(str(p)))
    return out

