"""Three-way merge of an ELAN file a coder edited with the job's refreshed tiers.

The unit is the tier (rules in :mod:`pipelines.formats.user_edits`): a tier whose annotations
(times in ms and values; for a reference tier, its parent's times) equal the same-named tier
of the machine copy is the machine's and is refreshed; any other tier is a person's and is
kept with every annotation and value, its linguistic type and controlled vocabulary. A kept
tier's ancestors and children are kept with it: a comment tier a coder hung under
``micro-action`` keeps its parent, and an edited ``micro-action`` keeps its ``micro-action p``
(the refreshed ones are written beside, under the renamed machine parent). A machine tier
that would take a kept tier's name is written as ``NAME (machine)``.
Extra media a coder linked (an audio track) are kept.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pipelines.formats.elan import check_eaf, eaf_text
from pipelines.formats.spans import AnnotationError
from pipelines.formats.user_edits import EditReport

__all__ = ["MACHINE_SUFFIX", "merge_eaf"]

MACHINE_SUFFIX = " (machine)"


def _load(path: Path) -> Any:
    from pympi.Elan import Eaf

    return Eaf(str(path), suppress_version_warning=True)


def _load_text(text: str) -> Any:
    fd, name = tempfile.mkstemp(suffix=".eaf")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return _load(Path(name))
    finally:
        os.unlink(name)


def _content(eaf: Any, tier: str) -> tuple:
    return tuple(sorted(tuple(a) for a in eaf.get_annotation_data_for_tier(tier)))


def _machine_name(tier: str) -> str:
    return tier[: -len(MACHINE_SUFFIX)] if tier.endswith(MACHINE_SUFFIX) else tier


def _ancestors(eaf: Any, tier: str) -> list[str]:
    out = []
    parent = eaf.tiers[tier][2].get("PARENT_REF")
    while parent and parent in eaf.tiers and parent not in out:
        out.append(parent)
        parent = eaf.tiers[parent][2].get("PARENT_REF")
    return out


def _kept_tiers(user: Any, base: Any | None) -> list[str]:
    """The user's tiers that are not the machine's, with their ancestors, parents first."""
    kept: set[str] = set()
    for tier in user.tiers:
        name = _machine_name(tier)
        if base is None or name not in base.tiers or _content(user, tier) != _content(base, name):
            kept.add(tier)
    for tier in list(kept):
        kept.update(_ancestors(user, tier))
    kept.update(t for t in user.tiers if set(_ancestors(user, t)) & kept)  # a kept parent keeps its children
    return sorted(kept, key=lambda t: (len(_ancestors(user, t)), list(user.tiers).index(t)))


def _free_name(eaf: Any, name: str, taken: set[str]) -> str:
    candidate, n = name + MACHINE_SUFFIX, 2
    while candidate in eaf.tiers or candidate in taken:
        candidate, n = f"{name} (machine {n})", n + 1
    return candidate


def _copy_type(src: Any, dst: Any, ling: str) -> None:
    if ling in dst.linguistic_types:
        return
    params = dict(src.linguistic_types[ling])
    cv = params.get("CONTROLLED_VOCABULARY_REF")
    if cv and cv in src.controlled_vocabularies and cv not in dst.controlled_vocabularies:
        dst.controlled_vocabularies[cv] = src.controlled_vocabularies[cv]
    dst.linguistic_types[ling] = params


def _copy_tier(src: Any, dst: Any, tier: str) -> None:
    params = dict(src.tiers[tier][2])
    _copy_type(src, dst, params.get("LINGUISTIC_TYPE_REF", "default-lt"))
    dst.add_tier(tier, tier_dict=params)
    if src.tiers[tier][1]:  # reference annotations: hang each on the parent annotation at its time
        parent = params["PARENT_REF"]
        for start, end, value, _ in src.get_ref_annotation_data_for_tier(tier):
            dst.add_ref_annotation(tier, parent, (start + end) // 2, value)
    else:
        for start, end, value in src.get_annotation_data_for_tier(tier):
            dst.add_annotation(tier, start, end, value)


def _drop_deleted(new: Any, user: Any, base: Any | None) -> list[str]:
    """Remove from ``new`` the machine tiers a person deleted (in base, gone from user)."""
    if base is None:
        return []
    present = {_machine_name(t) for t in user.tiers}
    deleted = [t for t in base.tiers if t not in present and t in new.tiers]
    for tier in deleted:
        for child in new.get_child_tiers_for(tier):
            new.remove_tier(child)
        if tier in new.tiers:
            new.remove_tier(tier)
    return deleted


def merge_eaf(path: Path, base_text: str | None, new_text: str) -> tuple[str, EditReport]:
    """The merged ELAN text of the edited ``path``, its machine copy ``base_text`` and the
    job's ``new_text`` (module doc); raises :class:`AnnotationError` for a file that is not
    a well-formed ELAN document (checked by the project's own strict reader first)."""
    check_eaf(path)
    try:
        user = _load(path)
    except Exception as e:  # pympi raises bare Exception for unreadable files
        raise AnnotationError(f"{path}: cannot be read as ELAN to keep its edits ({e})") from None
    try:
        base = _load_text(base_text) if base_text is not None else None
    except Exception:  # a machine copy that is no longer ELAN counts as none: every tier of the person's is kept
        base = None
    new = _load_text(new_text)
    deleted = _drop_deleted(new, user, base)
    kept = _kept_tiers(user, base)
    beside = []
    for tier in kept:
        if tier in new.tiers:
            free = _free_name(new, tier, set(kept))
            new.rename_tier(tier, free)
            beside.append(free)
    for tier in kept:
        _copy_tier(user, new, tier)
    urls = {m.get("MEDIA_URL") for m in new.media_descriptors}
    new.media_descriptors.extend(m for m in user.media_descriptors if m.get("MEDIA_URL") not in urls)
    return eaf_text(new), EditReport(path, kept=tuple(kept), beside=tuple(beside), deleted=tuple(deleted))

