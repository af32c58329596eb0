"""Three-way merge of a BORIS project a coder edited with the job's refreshed observations.

The unit is the coded interval (rules in :mod:`pipelines.formats.user_edits`). BORIS stores a
state behaviour as alternating START and STOP events per subject and code; they are paired
into intervals first (a point event is an interval of length 0), compared by start, stop,
subject, code, modifiers and comment (times to the millisecond), and written back as events.
Intervals a coder added or changed are kept; the machine's are refreshed; intervals a coder
deleted stay deleted; a refreshed machine interval that would overlap a kept one of the same
subject and code is left out, so a coder's correction is never overwritten. Observations,
behaviours of the ethogram and project fields a coder added or changed are kept too.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipelines.formats.spans import AnnotationError
from pipelines.formats.user_edits import EditReport

__all__ = ["merge_boris"]

_MERGED_FIELDS = ("observations", "behaviors_conf", "project_date")
Interval = tuple[float, float, str, str, str, str]  # start, stop, subject, code, modifiers, comment


def _load(path: Path) -> dict[str, Any]:
    try:
        project = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise AnnotationError(f"{path}: cannot be read as a BORIS project to keep its edits ({e})") from None
    if not isinstance(project, dict) or not isinstance(project.get("observations"), dict):
        raise AnnotationError(f"{path}: not a BORIS project (no observations)")
    return project


def _point_codes(*projects: Mapping[str, Any]) -> set[str]:
    return {b.get("code") for p in projects for b in (p.get("behaviors_conf") or {}).values()
            if "point" in str(b.get("type", "")).lower()}


def _intervals(events: Iterable[Sequence[Any]], points: set[str]) -> list[tuple[Interval, list[list[Any]]]]:
    """Events → (interval, its events), pairing each subject's START and STOP of one code."""
    out: list[tuple[Interval, list[list[Any]]]] = []
    open_: dict[tuple[str, str], list[Any]] = {}
    for ev in sorted(events, key=lambda e: float(e[0])):
        ev = list(ev)
        subject, code = str(ev[1]), str(ev[2])
        rest = (str(ev[3]) if len(ev) > 3 else "", str(ev[4]) if len(ev) > 4 else "")
        if code in points:
            out.append(((round(float(ev[0]), 3), round(float(ev[0]), 3), subject, code, *rest), [ev]))
        elif (subject, code) in open_:
            start = open_.pop((subject, code))
            out.append(((round(float(start[0]), 3), round(float(ev[0]), 3), subject, code, *rest), [start, ev]))
        else:
            open_[(subject, code)] = ev
    for (subject, code), start in open_.items():  # a START without STOP: kept as it is
        t = round(float(start[0]), 3)
        out.append(((t, t, subject, code, str(start[3]) if len(start) > 3 else "", ""), [start]))
    return out


def _overlaps(a: Interval, b: Interval) -> bool:
    return a[2:4] == b[2:4] and a[0] < b[1] and b[0] < a[1]


def _merge_events(user: list, base: list, new: list, points: set[str], where: str,
                  kept: list[str], deleted: list[str]) -> list[list[Any]]:
    base_ids = {i for i, _ in _intervals(base, points)}
    user_items = _intervals(user, points)
    user_ids = {i for i, _ in user_items}
    mine = [(i, evs) for i, evs in user_items if i not in base_ids]
    gone = base_ids - user_ids
    fresh = [(i, evs) for i, evs in _intervals(new, points)
             if i not in gone and not any(_overlaps(i, m) for m, _ in mine)]
    kept += [f"{where}: {i[3]} {i[0]:g}-{i[1]:g} s" for i, _ in mine]
    deleted += [f"{where}: {i[3]} {i[0]:g}-{i[1]:g} s" for i, _ in _intervals(new, points) if i in gone]
    return sorted((ev for _, evs in mine + fresh for ev in evs), key=lambda e: float(e[0]))


def _ethogram(user: Mapping, base: Mapping, new: Mapping) -> dict[str, Any]:
    """The machine's behaviours, then those a coder added or changed (by code)."""
    base_by_code = {b.get("code"): b for b in (base.get("behaviors_conf") or {}).values()}
    rows = list((new.get("behaviors_conf") or {}).values())
    codes = {b.get("code") for b in rows}
    for b in (user.get("behaviors_conf") or {}).values():
        if b.get("code") not in codes and base_by_code.get(b.get("code")) != b:
            rows.append(b)
        elif b.get("code") in codes and base_by_code.get(b.get("code")) not in (None, b):
            rows[[r.get("code") for r in rows].index(b.get("code"))] = b  # a coder's edit of a behaviour
    return {str(i): b for i, b in enumerate(rows)}


def merge_boris(path: Path, base_text: str | None, new_text: str) -> tuple[str, EditReport]:
    """The merged project text of the edited ``path``, its machine copy ``base_text`` and the
    job's ``new_text`` (module doc); raises :class:`AnnotationError` naming ``path`` (also for a
    project whose parts have the wrong shapes: an observation that is a number, an event that is
    no list). A machine copy that is no longer a project counts as none: all the person's kept."""
    user = _load(path)
    try:
        base = json.loads(base_text) if base_text is not None else None
    except (ValueError, RecursionError):
        base = None
    if not isinstance(base, dict) or not isinstance(base.get("observations"), dict):
        base = {"observations": {}, "behaviors_conf": {}}
    try:
        return _merge(path, user, base, json.loads(new_text))
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as e:
        raise AnnotationError(f"{path}: a part of the project is not what BORIS writes, so its edits cannot be "
                              f"kept ({type(e).__name__}: {str(e)[:200]})") from None


def _merge(path: Path, user: dict[str, Any], base: dict[str, Any], new: dict[str, Any]) -> tuple[str, EditReport]:
    merged = {k: v for k, v in new.items()}
    merged.update({k: v for k, v in user.items() if k not in _MERGED_FIELDS and base.get(k) != v})
    merged["behaviors_conf"] = _ethogram(user, base, new)
    points = _point_codes(user, new)
    kept: list[str] = []
    deleted: list[str] = []
    observations: dict[str, Any] = {}
    for oid, obs in user["observations"].items():
        machine, before = new["observations"].get(oid), base["observations"].get(oid)
        if before is None or machine is None:  # a coder's own observation, or one the job no longer writes
            observations[oid] = obs
            kept.append(f"observation {oid}") if before is None else None
            continue
        merged_obs = {**machine, **{k: v for k, v in obs.items() if k != "events" and before.get(k) != v}}
        merged_obs["events"] = _merge_events(obs.get("events") or [], before.get("events") or [],
                                             machine.get("events") or [], points, oid, kept, deleted)
        observations[oid] = merged_obs
    for oid, obs in new["observations"].items():
        if oid in observations:
            continue
        if oid in base["observations"]:
            deleted.append(f"observation {oid}")
        else:
            observations[oid] = obs
    merged["observations"] = observations
    text = json.dumps(merged, indent=1, ensure_ascii=False) + "\n"
    return text, EditReport(path, kept=tuple(kept), deleted=tuple(deleted))
