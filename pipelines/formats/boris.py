"""BORIS files both ways: events read from its exports and projects, projects written.

**Reading** (:func:`read_boris`). BORIS (Behavioral Observation Research Interactive Software)
codes behaviours as *state* events (a start and a stop) and *point* events (an instant). Three
kinds of file are read; all give :class:`pipelines.formats.spans.Span` per state event (``label``
= the behaviour, ``video`` = the media file's name) and :class:`BorisPoint` per point event:

- tabular events (``.tsv``/``.csv``): one row per START, STOP or POINT. The current header is
  ``Observation id, …, Subject, Behavior, Behavioral category, [Modifier #k], Behavior type,
  Time, Media file name, …``; the older one is ``Time, Media file path, Total length, FPS,
  Subject, Behavior, Behavioral category, Comment, Status`` below a block of observation facts.
  A START is closed by the next STOP of the same observation, subject, behaviour and modifiers;
- aggregated events (``.tsv``/``.csv``): one row per event with ``Behavior type`` (STATE/POINT),
  ``Start (s)``, ``Stop (s)``; the media column is ``Media file name`` (current) or ``Media file``
  (older, beside ``Total length`` and ``FPS``);
- a project (``.boris``, JSON): each media observation's events, paired as BORIS pairs them (a
  state behaviour's events alternate start, stop per subject and modifiers). Its media is the
  first player's one media file.

A *subject* is BORIS's tier: ``subject`` keeps one (``"No focal subject"`` is the empty one);
None keeps all. A point event is not a span: the reader returns it apart, the caller says how
it counts (``pipelines.agreement`` leaves points out of the scores and reports how many).

**Writing** (:func:`write_boris_project`): one project with one media observation per video, the
taxonomy as the ethogram (every class a state event, its code ``"code name"``, its category the
body level), each segment a start and a stop event. BORIS 8 opens it as it is.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from core.taxonomy import Taxonomy
from pipelines.formats.spans import AnnotationError, Span

__all__ = ["BORIS_PROJECT_FORMAT", "NO_FOCAL_SUBJECT", "BorisAnnotations", "BorisObservation", "BorisPoint",
           "boris_project", "is_boris_header", "media_stem", "observation_from_labels", "read_boris", "table_rows",
           "write_boris_project"]

BORIS_PROJECT_FORMAT = "7.0"  # BORIS 8's project_format_version
NO_FOCAL_SUBJECT = "No focal subject"
_MEDIA_COLUMNS = ("Media file name", "Media file path", "Media file")
_N_PLAYERS = 8


@dataclass(frozen=True)
class BorisPoint:
    """A point event: ``label`` at ``time_s`` of the media ``video``; ``source`` is file:line."""

    time_s: float
    label: str
    video: str
    source: str
    subject: str = ""


@dataclass(frozen=True)
class BorisAnnotations:
    """What a BORIS file holds for the chosen subject(s): state events as spans, point events,
    and every subject seen (``""`` for no focal subject)."""

    spans: tuple[Span, ...]
    points: tuple[BorisPoint, ...]
    subjects: tuple[str, ...]


def media_stem(name: str) -> str:
    """The stem of a media path as BORIS stores it (``/`` or ``\\`` separated)."""
    return Path(name.replace("\\", "/").rsplit("/", 1)[-1]).stem


def _subject(text: str) -> str:
    return "" if text.strip() in ("", NO_FOCAL_SUBJECT) else text.strip()


def _check_subject(path: Path, subject: str | None, seen: Iterable[str]) -> None:
    seen = sorted(set(seen))
    if subject is not None and _subject(subject) not in seen:
        shown = ", ".join(repr(s or NO_FOCAL_SUBJECT) for s in seen) or "none"
        raise AnnotationError(f"{path}: no subject {subject!r} (the tier of a BORIS file is a subject); "
                              f"its subjects: {shown}")


def _span(path: Path, where: str, start: float, stop: float, label: str, video: str) -> Span:
    if not (math.isfinite(start) and math.isfinite(stop)) or start < 0:
        raise AnnotationError(f"{where}: state event {label!r} has start {start} s, stop {stop} s")
    if stop <= start:
        raise AnnotationError(f"{where}: state event {label!r} stops at {stop:.3f} s, not after its start "
                              f"{start:.3f} s (zero-length or negative)")
    return Span(start, stop, label, where, video)


# ---------------------------------------------------------------------------------------- exports

def is_boris_header(cells: Sequence[str]) -> bool:
    """Whether a table row is the header of a BORIS events export."""
    names = {c.strip() for c in cells}
    return {"Subject", "Behavior"} <= names and ("Time" in names or "Start (s)" in names)


def table_rows(path: Path, limit: int | None = None) -> list[list[str]]:
    """The rows (the first ``limit``) of a CSV or TSV table, tab-separated when its first line
    has a tab (BORIS writes both); raises :class:`AnnotationError` for an unreadable or empty file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: cannot read as UTF-8 text ({e})") from None
    if not text.strip():
        raise AnnotationError(f"{path}: empty file")
    first = text.splitlines()[0]
    rows = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if "\t" in first else ",")
    return list(rows) if limit is None else [row for _, row in zip(range(limit), rows)]


def _table(path: Path) -> tuple[list[list[str]], int]:
    """The rows of an export and the index of its header row."""
    rows = table_rows(path)
    for i, row in enumerate(rows):
        if is_boris_header(row):
            return rows, i
    raise AnnotationError(f"{path}: no BORIS events header (a row with Subject, Behavior and Time or Start (s)); "
                          f"export the events from BORIS as tabular or aggregated events")


def _meta_media(rows: Sequence[Sequence[str]], header_at: int) -> tuple[str, str]:
    """Observation id and player #1 media from the facts above an older tabular header."""
    facts = {r[0].strip(): (r[1].strip() if len(r) > 1 else "") for r in rows[:header_at] if r}
    return facts.get("Observation id", ""), facts.get("Player #1", "")


@dataclass
class _Export:
    path: Path
    header: list[str]
    meta_obs: str = ""
    meta_media: str = ""
    col: dict[str, int] = field(default_factory=dict)

    def get(self, row: Sequence[str], name: str, default: str = "") -> str:
        i = self.col.get(name)
        return row[i].strip() if i is not None and i < len(row) else default

    def media(self, row: Sequence[str], where: str) -> str:
        for name in _MEDIA_COLUMNS:
            value = self.get(row, name)
            if value and value != "NA":
                return value.replace("\\", "/").rsplit("/", 1)[-1]
        if self.meta_media:
            return self.meta_media.replace("\\", "/").rsplit("/", 1)[-1]
        raise AnnotationError(f"{where}: no media file name (a live observation?); the videos are matched by it")

    def modifiers(self, row: Sequence[str]) -> str:
        return "|".join(self.get(row, h) for h in self.header if h.startswith("Modifier"))


def _number(text: str, where: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise AnnotationError(f"{where}: {what} {text!r} is not a number of seconds") from None


def _read_export(path: Path, subject: str | None) -> BorisAnnotations:
    rows, at = _table(path)
    header = [h.strip() for h in rows[at]]
    exp = _Export(path, header, *_meta_media(rows, at), col={h: i for i, h in enumerate(header)})
    aggregated = "Start (s)" in exp.col
    kind = "Behavior type" if "Behavior type" in exp.col else "Status"
    if kind not in exp.col:
        raise AnnotationError(f"{path}:{at + 1}: the header has neither 'Behavior type' nor 'Status'")
    spans, points, subjects, open_ = [], [], set(), {}
    for i, row in enumerate(rows[at + 1:], at + 2):
        if not any(c.strip() for c in row):
            continue
        where = f"{path}:{i}"
        who, label, status = _subject(exp.get(row, "Subject")), exp.get(row, "Behavior"), exp.get(row, kind).upper()
        subjects.add(who)
        if subject is not None and who != _subject(subject):
            continue
        if not label:
            raise AnnotationError(f"{where}: empty Behavior")
        video = exp.media(row, where)
        if aggregated:
            start = _number(exp.get(row, "Start (s)"), where, "Start (s)")
            if status == "POINT":
                points.append(BorisPoint(start, label, video, where, who))
                continue
            if status != "STATE":
                raise AnnotationError(f"{where}: Behavior type {status!r}, expected STATE or POINT")
            spans.append(_span(path, where, start, _number(exp.get(row, "Stop (s)"), where, "Stop (s)"), label, video))
            continue
        time = _number(exp.get(row, "Time"), where, "Time")
        key = (exp.get(row, "Observation id", exp.meta_obs), who, label, exp.modifiers(row), video)
        if status == "POINT":
            points.append(BorisPoint(time, label, video, where, who))
        elif status == "START":
            if key in open_:
                raise AnnotationError(f"{where}: START of {label!r} while the START on line "
                                      f"{open_[key][1].rsplit(':', 1)[-1]} is not stopped")
            open_[key] = (time, where)
        elif status == "STOP":
            if key not in open_:
                raise AnnotationError(f"{where}: STOP of {label!r} without a START")
            start, first = open_.pop(key)
            spans.append(_span(path, f"{first}-{i}", start, time, label, video))
        else:
            raise AnnotationError(f"{where}: {kind} {status!r}, expected START, STOP or POINT")
    if open_:
        (_, _, label, _, _), (_, where) = next(iter(open_.items()))
        raise AnnotationError(f"{where}: START of {label!r} is never stopped")
    _check_subject(path, subject, subjects)
    return BorisAnnotations(tuple(spans), tuple(points), tuple(sorted(subjects)))


# ---------------------------------------------------------------------------------------- projects

def _project_events(path: Path, where: str, obs: Mapping[str, Any], ethogram: Mapping[str, str],
                    subject: str | None, out: tuple[list[Span], list[BorisPoint], set[str]]) -> None:
    """Add one observation's state events (as spans), points and subjects to ``out``."""
    spans, points, subjects = out
    media = (obs.get("file") or {}).get("1") or []
    if len(media) != 1:
        raise AnnotationError(f"{where}: {len(media)} media files on player 1; one is needed to match a video")
    video = media[0].replace("\\", "/").rsplit("/", 1)[-1]
    open_: dict[tuple[str, str, str], tuple[float, int]] = {}
    for n, ev in enumerate(sorted(obs.get("events", []), key=lambda e: float(e[0])), 1):
        time, who, code, modifier = float(ev[0]), _subject(str(ev[1])), str(ev[2]), str(ev[3])
        subjects.add(who)
        if subject is not None and who != _subject(subject):
            continue
        if code not in ethogram:
            raise AnnotationError(f"{where}: event {n} codes {code!r}, which the ethogram lacks")
        if "state" not in ethogram[code].lower():
            points.append(BorisPoint(time, code, video, f"{where} event {n}", who))
            continue
        key = (who, code, modifier)
        if key in open_:
            start, first = open_.pop(key)
            spans.append(_span(path, f"{where} events {first}-{n}", start, time, code, video))
        else:
            open_[key] = (time, n)
    if open_:
        (_, code, _), (_, n) = next(iter(open_.items()))
        raise AnnotationError(f"{where}: state event {code!r} (event {n}) is never stopped")


def _read_project(path: Path, subject: str | None) -> BorisAnnotations:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: cannot read as UTF-8 text ({e})") from None
    if not text.strip():
        raise AnnotationError(f"{path}: empty file")
    try:
        pj = json.loads(text)
        ethogram = {b["code"]: str(b.get("type", "")) for b in pj["behaviors_conf"].values()}
        observations = dict(pj["observations"].items())
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise AnnotationError(f"{path}: not a BORIS project ({type(e).__name__}: {str(e)[:200]})") from None
    out: tuple[list[Span], list[BorisPoint], set[str]] = ([], [], set())
    for obs_id, obs in observations.items():
        where = f"{path}: observation {str(obs_id)[:80]!r}"
        try:
            if obs.get("type") == "MEDIA":
                _project_events(path, where, obs, ethogram, subject, out)
        except AnnotationError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:  # a list where a dict goes …
            raise AnnotationError(f"{where}: not a BORIS observation ({type(e).__name__}: {str(e)[:200]})") from None
    spans, points, subjects = out
    _check_subject(path, subject, subjects)
    return BorisAnnotations(tuple(spans), tuple(points), tuple(sorted(subjects)))


def read_boris(path: str | os.PathLike, subject: str | None = None) -> BorisAnnotations:
    """The events of a BORIS project (``.boris``) or events export (tabular or aggregated,
    ``.tsv``/``.csv``, current or older header) for ``subject`` (None: all). Raises
    :class:`pipelines.formats.spans.AnnotationError` naming the file and the line or observation:
    an empty file, an unknown subject, an unpaired START or STOP, a state event that does not
    stop after it starts."""
    path = Path(path)
    if path.suffix.lower() == ".boris":
        return _read_project(path, subject)
    if path.suffix.lower() in (".xlsx", ".xls", ".ods", ".html"):
        raise AnnotationError(f"{path}: export the events from BORIS as TSV or CSV; {path.suffix} is not read")
    return _read_export(path, subject)


# ---------------------------------------------------------------------------------------- writing

@dataclass(frozen=True)
class BorisObservation:
    """One video as a BORIS observation: ``media`` (its path), ``duration_s``, ``fps``, and the
    segments as spans whose ``label`` is an ethogram code (:attr:`core.taxonomy.ActionClass.label`)."""

    media: str
    duration_s: float
    fps: float
    spans: tuple[Span, ...]


def observation_from_labels(doc: Mapping[str, Any], media: str | os.PathLike) -> BorisObservation:
    """A labels document's top-1 segments as an observation of the video at ``media``."""
    video = doc["video"]
    spans = tuple(Span(float(s["start_s"]), float(s["end_s"]), f"{s['code']} {s['name']}" if s.get("code")
                       else str(s["name"]), f"segment {i}") for i, s in enumerate(doc.get("segments") or []))
    return BorisObservation(str(media), float(video["duration_s"]), float(video["fps"]), spans)


def _merged(spans: Iterable[Span]) -> list[Span]:
    """Same-label spans that overlap or touch as one (BORIS alternates start and stop)."""
    out: list[Span] = []
    for sp in sorted(spans, key=lambda s: (s.label, s.start_s)):
        if out and out[-1].label == sp.label and sp.start_s <= out[-1].end_s:
            out[-1] = Span(out[-1].start_s, max(out[-1].end_s, sp.end_s), sp.label, out[-1].source)
        else:
            out.append(sp)
    return out


def _observation(obs: BorisObservation, media: str, codes: set[str], date: str) -> dict[str, Any]:
    events = []
    for sp in _merged(obs.spans):
        if sp.label not in codes:
            raise ValueError(f"{obs.media}: segment label {sp.label!r} is not in the ethogram")
        for t in (sp.start_s, sp.end_s):
            events.append([round(t, 3), "", sp.label, "", "", int(round(t * obs.fps))])
    events.sort(key=lambda e: e[0])
    return {"file": {str(p): ([media] if p == 1 else []) for p in range(1, _N_PLAYERS + 1)}, "type": "MEDIA",
            "date": date, "description": "labelled by mmn-microaction (python -m pipelines.video_to_labels)",
            "time offset": 0.0, "events": events, "independent_variables": {}, "visualize_spectrogram": False,
            "visualize_waveform": False, "media_creation_date_as_offset": False, "media_scan_sampling_duration": 0,
            "image_display_duration": 1, "close_behaviors_between_videos": False,
            "media_info": {"length": {media: round(obs.duration_s, 3)}, "fps": {media: obs.fps},
                           "hasVideo": {media: True}, "hasAudio": {media: False}, "offset": {"1": 0.0}}}


def boris_project(observations: Sequence[BorisObservation], taxonomy: Taxonomy, *, name: str = "micro-actions",
                  project_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The BORIS project (a JSON-ready dict). Media paths are written relative to
    ``project_dir`` where they lie below it (BORIS resolves them against the project's folder),
    else as given. Observation ids are the media stems (``stem (2)`` for a repeated one)."""
    date = dt.datetime.now().isoformat(timespec="seconds")
    ethogram = {str(i): {"type": "State event", "key": "", "code": c.label, "description": c.name,
                         "category": c.body or "", "modifiers": {}, "excluded": "", "coding map": ""}
                for i, c in enumerate(taxonomy.classes)}
    codes = {c.label for c in taxonomy.classes}
    out: dict[str, Any] = {}
    for obs in observations:
        media = obs.media
        if project_dir is not None:
            try:
                media = Path(os.path.relpath(Path(obs.media).resolve(), Path(project_dir).resolve())).as_posix()
            except ValueError:  # another drive on Windows
                media = obs.media
            media = obs.media if media.startswith("../") else media
        obs_id, k = media_stem(obs.media), 2
        while obs_id in out:
            obs_id, k = f"{media_stem(obs.media)} ({k})", k + 1
        out[obs_id] = _observation(obs, media, codes, date)
    return {"time_format": "s", "project_date": date, "project_name": name,
            "project_description": f"micro-actions of the {taxonomy.name} taxonomy as state events",
            "project_format_version": BORIS_PROJECT_FORMAT, "subjects_conf": {}, "behaviors_conf": ethogram,
            "observations": out, "behavioral_categories": sorted({c.body for c in taxonomy.classes if c.body}),
            "independent_variables": {}, "coding_map": {}, "behaviors_coding_map": [], "converters": {}}


def write_boris_project(path: str | os.PathLike, observations: Sequence[BorisObservation], taxonomy: Taxonomy,
                        name: str = "micro-actions") -> Path:
    """Write :func:`boris_project` atomically to ``path`` (``OUT/labels.boris``)."""
    path = Path(path)
    pj = boris_project(observations, taxonomy, name=name, project_dir=path.parent)
    return atomic_write_text(path, json.dumps(pj, indent=1, ensure_ascii=False) + "\n")
