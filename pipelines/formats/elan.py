"""ELAN annotation files (``.eaf``): the labels of one video as tiers, and spans read back.

**Export** (:func:`write_eaf`, ``KEY.eaf`` with ``--elan``). pympi-ling builds the EAF 2.8
document; it is written atomically. The video is linked as ELAN links it: ``MEDIA_URL``
``file://`` + the absolute path, ``RELATIVE_MEDIA_URL`` relative to the ``.eaf``'s folder (ELAN
falls back to it when the folder moved), ``MIME_TYPE`` from the suffix. Times are whole
milliseconds (frame / fps, rounded). Tiers, all top-level and time-alignable unless said:

With labels (a checkpoint ran):

- ``micro-action``: the merged segments, value ``"code name"`` (the name alone for a taxonomy
  without codes), on a controlled vocabulary of every class of the taxonomy (a correction in
  ELAN is a pick from the list);
- ``micro-action p``: child of ``micro-action`` (Symbolic_Association): each segment's mean
  top-1 probability, ``"0.873"``;
- ``body-level CODE NAME``: one per body level of the taxonomy (the labels document's
  ``model.taxonomy.body_levels``; none for a taxonomy without them), the segments of that level;
- ``window top-1``: each window's top-1 and its probability, ``"A1 shaking body (p=0.87)"``
  (``"skipped: reason"`` for a skipped window). Windows overlap and a tier's annotations may
  not, so window k is shown on ``[start_k, start_k+1)``, as the annotated clip shows the latest.

Without a checkpoint:

- ``labels absent``: one annotation over the video saying why;
- ``motion PART`` per body part of the skeleton layout (MA-52: left arm, right arm, left leg,
  right leg, face, torso) and ``motion whole body``: runs of ``still`` / ``small`` / ``large``
  from the windows' ``joint_heat`` (the model-free motion heat, :mod:`pipelines.stages.motion_energy`,
  averaged over the part's joints), with the bounds of :data:`MOTION_LEVELS` (torso lengths
  per second; a heuristic from the bundled clips, not calibrated).

**Import** (:func:`read_eaf_spans`, :func:`linked_video`): the annotations of one tier as
:class:`pipelines.formats.spans.Span`, read with a line-numbering XML parser so that every error names
the file, the line and the annotation. Alignable tiers take their times from the time slots;
time slots without a value (ELAN's Time_Subdivision, unaligned annotations) are placed evenly
between the aligned slots around them, as ELAN shows them. Reference tiers take the interval of
their aligned ancestor; the children of one parent on a Symbolic_Subdivision tier divide it
evenly in their PREVIOUS_ANNOTATION order.
"""
from __future__ import annotations

import math
import mimetypes
import os
import uuid
import xml.parsers.expat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from core.atomic import atomic_write_text
from core.layouts import LAYOUTS
from core.taxonomy import Taxonomy, builtin_taxonomy
from pipelines.discovery import VIDEO_SUFFIXES
from pipelines.evaluation.review import REVIEW_TIER, ReviewMark
from pipelines.formats.labels_doc import NO_LABELS_NOTE, body_levels_of
from pipelines.formats.spans import AnnotationError, Span

if TYPE_CHECKING:
    from pympi.Elan import Eaf

__all__ = ["MOTION_LEVELS", "TIER_ACTION", "TIER_ACTION_PROB", "TIER_NOTE", "TIER_TOP1", "TIER_WHOLE_BODY",
           "add_review_tier", "body_tier", "build_eaf", "check_eaf", "eaf_text", "linked_video", "motion_level",
           "motion_tier", "read_eaf_spans", "write_eaf"]

TIER_ACTION = "micro-action"
TIER_ACTION_PROB = "micro-action p"
TIER_TOP1 = "window top-1"
TIER_NOTE = "labels absent"
TIER_WHOLE_BODY = "motion whole body"
# (upper bound in torso lengths per second, level); the last bound is infinite
MOTION_LEVELS: tuple[tuple[float, str], ...] = ((0.03, "still"), (0.15, "small"), (math.inf, "large"))
_VIDEO_MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".mpg": "video/mpeg",
               ".mpeg": "video/mpeg", ".avi": "video/x-msvideo", ".mkv": "video/x-matroska", ".webm": "video/webm",
               ".wmv": "video/x-ms-wmv"}
_UND = "und"  # ISO 639-3 "undetermined": the language of the vocabularies


def body_tier(code: str, name: str) -> str:
    """Tier name of one body level: ``"body-level A body"``."""
    return f"body-level {code} {name}"


def motion_tier(part: str) -> str:
    """Tier name of one body part's motion level: ``"motion left arm"``."""
    return f"motion {part}"


def motion_level(speed: float, levels: Sequence[tuple[float, str]] = MOTION_LEVELS) -> str:
    """The level of a speed in torso lengths per second."""
    return next((name for bound, name in levels if speed < bound), levels[-1][1])


# --------------------------------------------------------------------------- export


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000.0))


def _label(rec: Mapping[str, Any]) -> str:
    code = rec.get("code")
    return f"{code} {rec['name']}" if code else str(rec["name"])


def _window_pieces(windows: Sequence[Mapping[str, Any]], fps: float) -> list[tuple[int, int, Mapping[str, Any]]]:
    """``(start_ms, end_ms, window)`` without overlaps: window k on [start_k, start_k+1)."""
    ordered = sorted(windows, key=lambda w: w["start_frame"])
    pieces = []
    for k, w in enumerate(ordered):
        end = w["end_frame"] if k + 1 == len(ordered) else min(w["end_frame"], ordered[k + 1]["start_frame"])
        s_ms, e_ms = _ms(w["start_frame"] / fps), _ms(end / fps)
        if e_ms > s_ms:
            pieces.append((s_ms, e_ms, w))
    return pieces


def _runs(pieces: Iterable[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Touching pieces with equal values merged."""
    out: list[list[Any]] = []
    for s, e, v in pieces:
        if out and out[-1][2] == v and out[-1][1] == s:
            out[-1][1] = e
        else:
            out.append([s, e, v])
    return [(s, e, v) for s, e, v in out]


def _media_descriptor(video: Path, eaf_path: Path, absolute_link: bool) -> dict[str, str]:
    mime = _VIDEO_MIME.get(video.suffix.lower()) or mimetypes.guess_type(video.name)[0] or "video/*"
    if not absolute_link:  # only the name: ELAN finds the video beside the .eaf
        return {"MEDIA_URL": f"file:///{video.name}", "RELATIVE_MEDIA_URL": f"./{video.name}", "MIME_TYPE": mime}
    video_abs = Path(os.path.abspath(video))
    rel = os.path.relpath(video_abs, os.path.abspath(eaf_path.parent)).replace(os.sep, "/")
    posix = video_abs.as_posix()  # ELAN writes the path as is after file:// (no %-encoding)
    return {"MEDIA_URL": "file://" + (posix if posix.startswith("/") else "/" + posix),
            "RELATIVE_MEDIA_URL": rel if rel.startswith("../") else "./" + rel, "MIME_TYPE": mime}


def _vocabulary(doc: Mapping[str, Any], taxonomy: Taxonomy | None) -> list[str]:
    """Every class label of the taxonomy (given, or built in under the document's name),
    else the labels the document uses."""
    spec = (doc.get("model") or {}).get("taxonomy") or {}
    if taxonomy is None:
        known = builtin_taxonomy(str(spec.get("name")))
        taxonomy = known if known is not None and known.num_classes == spec.get("num_classes") else None
    if taxonomy is not None:
        return [c.label for c in taxonomy.classes]
    used = {_label(s) for s in doc.get("segments") or []}
    used |= {_label(w["top_k"][0]) for w in doc.get("windows") or [] if w.get("top_k")}
    return sorted(used)


def build_eaf(doc: Mapping[str, Any], eaf_path: str | os.PathLike, video: str | os.PathLike, *,
              taxonomy: Taxonomy | None = None, absolute_link: bool = True) -> Eaf:
    """The ``pympi.Elan.Eaf`` of a labels document (tiers in the module doc). ``eaf_path``:
    where it will be written (the relative link is made from its folder); ``video``: the
    labelled video; ``taxonomy``: the model's (for the full vocabulary); ``absolute_link``:
    False links the video by its name only (for files handed to someone else)."""
    from pympi.Elan import Eaf

    fps = float(doc["video"]["fps"])
    duration_ms = _ms(int(doc["video"]["frame_count"]) / fps)
    eaf = Eaf(author="mmn-microaction")
    eaf.remove_tier("default")
    eaf.remove_linguistic_type("default-lt")
    eaf.header.update({"MEDIA_FILE": "", "TIME_UNITS": "milliseconds"})
    eaf.properties = [("URN", f"urn:nl-mpi-tools-elan-eaf:{uuid.uuid4()}")]
    eaf.media_descriptors.append(_media_descriptor(Path(video), Path(eaf_path), absolute_link))
    eaf.add_language(_UND, "http://cdb.iso.org/lg/CDB-00130975-001", "undetermined (und)")
    eaf.add_linguistic_type("machine-label")
    eaf.add_linguistic_type("probability", constraints="Symbolic_Association", timealignable=False)

    def vocabulary_type(cv_id: str, type_id: str, values: Sequence[str], description: str) -> None:
        eaf.add_controlled_vocabulary(cv_id)
        eaf.add_cv_description(cv_id, _UND, description)
        for i, value in enumerate(values):
            eaf.add_cv_entry(cv_id, f"cveid_{type_id}_{i}", [(value, _UND, None)])
        eaf.add_linguistic_type(type_id)
        eaf.linguistic_types[type_id]["CONTROLLED_VOCABULARY_REF"] = cv_id

    windows = doc.get("windows") or []
    if doc.get("model") is not None:
        vocabulary_type("micro-actions", "micro-action-lt", _vocabulary(doc, taxonomy),
                        "micro-action classes of the model's taxonomy")
        eaf.add_tier(TIER_ACTION, ling="micro-action-lt")
        eaf.add_tier(TIER_ACTION_PROB, ling="probability", parent=TIER_ACTION)
        levels = body_levels_of(doc)
        for code, name in levels:
            eaf.add_tier(body_tier(code, name), ling="micro-action-lt")
        eaf.add_tier(TIER_TOP1, ling="machine-label")
        for seg in sorted(doc.get("segments") or [], key=lambda s: s["start_frame"]):
            s_ms, e_ms = _ms(seg["start_frame"] / fps), _ms(seg["end_frame"] / fps)
            if e_ms <= s_ms:
                continue
            eaf.add_annotation(TIER_ACTION, s_ms, e_ms, _label(seg))
            eaf.add_ref_annotation(TIER_ACTION_PROB, TIER_ACTION, (s_ms + e_ms) // 2, f"{float(seg['mean_prob']):.3f}")
            if levels and seg.get("body_code") is not None:
                eaf.add_annotation(body_tier(seg["body_code"], seg["body"]), s_ms, e_ms, _label(seg))
        for s_ms, e_ms, w in _window_pieces(windows, fps):
            if w.get("top_k"):
                top = w["top_k"][0]
                value = f"{_label(top)} (p={float(top['prob']):.2f})"
            else:
                value = f"skipped: {w.get('skipped', 'no prediction')}"
            eaf.add_annotation(TIER_TOP1, s_ms, e_ms, value)
    else:
        vocabulary_type("motion levels", "motion-lt", [name for _, name in MOTION_LEVELS],
                        "motion energy level of a body part (torso lengths per second)")
        eaf.add_tier(TIER_NOTE, ling="machine-label")
        if duration_ms > 0:
            eaf.add_annotation(TIER_NOTE, 0, duration_ms, doc.get("labels_absent_reason") or NO_LABELS_NOTE)
        joints = len(windows[0]["joint_heat"]) if windows else 0
        layout = LAYOUTS.get(str((doc.get("pose") or {}).get("layout")))
        parts = [(motion_tier(p), js) for p, js in layout.parts] if layout and layout.num_joints == joints else []
        # heat version 1 (no "model_free_heat" in the job record) was in torso lengths per frame
        per_second = fps if int(((doc.get("job") or {}).get("labels") or {}).get("model_free_heat", 1)) < 2 else 1.0
        pieces = [(s, e, w) for s, e, w in _window_pieces(windows, fps) if "skipped" not in w]
        for tier, js in parts + [(TIER_WHOLE_BODY, tuple(range(joints)))]:
            eaf.add_tier(tier, ling="motion-lt")
            levels_over_time = [(s, e, motion_level(sum(w["joint_heat"][j] for j in js) / len(js) * per_second))
                                for s, e, w in pieces if js]
            for s_ms, e_ms, value in _runs(levels_over_time):
                eaf.add_annotation(tier, s_ms, e_ms, value)
    eaf.properties.append(("lastUsedAnnotationId", str(eaf.maxaid)))
    return eaf


def add_review_tier(eaf: Eaf, marks: Sequence[ReviewMark]) -> None:
    """Add the ``to review`` tier: where a coder should look first (the least certain windows,
    :mod:`pipelines.evaluation.review`), each mark saying its margin and the two close classes.
    No marks (no checkpoint, or ``--review-top 0``): no tier."""
    if not marks:
        return
    if "machine-label" not in eaf.linguistic_types:
        eaf.add_linguistic_type("machine-label")
    eaf.add_tier(REVIEW_TIER, ling="machine-label")
    for mark in marks:
        start, end = _ms(mark.start_s), _ms(mark.end_s)
        if end > start:
            eaf.add_annotation(REVIEW_TIER, start, end, mark.text)
    eaf.properties = [(k, v) for k, v in eaf.properties if k != "lastUsedAnnotationId"]
    eaf.properties.append(("lastUsedAnnotationId", str(eaf.maxaid)))


def eaf_text(eaf: Eaf) -> str:
    """The XML of a ``pympi.Elan.Eaf``, with the declaration ELAN writes."""
    from pympi.Elan import to_string

    return '<?xml version="1.0" encoding="UTF-8"?>\n' + to_string(eaf) + "\n"


def write_eaf(doc: Mapping[str, Any], path: str | os.PathLike, video: str | os.PathLike, *,
              taxonomy: Taxonomy | None = None, absolute_link: bool = True) -> Path:
    """Write ``KEY.eaf`` atomically (pympi's own writer is not: it renames the old file to
    ``.bak`` and writes in place). Arguments as :func:`build_eaf`; raises OSError."""
    return atomic_write_text(path, eaf_text(build_eaf(doc, path, video, taxonomy=taxonomy,
                                                      absolute_link=absolute_link)))


# --------------------------------------------------------------------------- import


@dataclass
class _Node:
    tag: str
    attrib: dict[str, str]
    line: int
    children: list[_Node] = field(default_factory=list)
    text: str = ""


def _parse(path: Path) -> _Node:
    """The XML tree with each start tag's line (ElementTree keeps none). DOCTYPEs (never in
    ELAN files, the way to entity expansion attacks) are refused."""
    parser = xml.parsers.expat.ParserCreate()
    stack: list[_Node] = []
    roots: list[_Node] = []

    def start(tag: str, attrib: dict[str, str]) -> None:
        node = _Node(tag, attrib, parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)

    def doctype(*_: Any) -> None:
        raise AnnotationError(f"{path}:{parser.CurrentLineNumber}: has a DOCTYPE, which ELAN files never have")

    def text(data: str) -> None:
        if stack:
            stack[-1].text += data

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda tag: stack.pop()
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = doctype
    try:
        with open(path, "rb") as f:
            parser.ParseFile(f)
    except xml.parsers.expat.ExpatError as e:
        raise AnnotationError(f"{path}:{e.lineno}:{e.offset + 1}: not well-formed XML "
                              f"({xml.parsers.expat.ErrorString(e.code)}); is it an ELAN .eaf file?") from None
    except OSError as e:
        raise AnnotationError(f"{path}: cannot read ({e.strerror or e})") from None
    root = roots[0]
    if root.tag != "ANNOTATION_DOCUMENT":
        raise AnnotationError(f"{path}:{root.line}: the root element is <{root.tag}>, not <ANNOTATION_DOCUMENT>: "
                              f"not an ELAN file")
    return root


def check_eaf(path: str | os.PathLike) -> None:
    """Raise :class:`AnnotationError` naming ``path`` unless it is a well-formed ELAN document
    without a DOCTYPE (the strict parse every read of a person's file goes through first), whose
    tier, annotation and time slot ids are each defined once (pympi keeps the last of two
    same-named tiers: a merge would drop the other), whose PARENT_REFs name tiers and end, and
    whose chains of ANNOTATION_REFs end (pympi follows a cycle forever)."""
    doc = _Document(Path(path))
    for name, tier in doc.tiers.items():
        seen, parent = [name], tier.attrib.get("PARENT_REF")
        while parent:
            if parent not in doc.tiers:
                raise AnnotationError(f"{path}:{tier.line}: tier {_echo(name)} has PARENT_REF {_echo(parent)}, "
                                      f"which is no tier")
            if parent in seen:
                raise AnnotationError(f"{path}:{tier.line}: tier {_echo(name)}: its PARENT_REFs come back to "
                                      f"{_echo(parent)} (a cycle)")
            seen.append(parent)
            parent = doc.tiers[parent].attrib.get("PARENT_REF")
    ends: set[str] = set()  # annotations whose chain of references is known to end
    for aid, (_, node) in doc.annotations.items():
        chain = {aid: None}
        while node.tag == "REF_ANNOTATION":
            ref = node.attrib.get("ANNOTATION_REF")
            if ref in ends:
                break
            if ref not in doc.annotations:
                raise AnnotationError(f"{doc.where(aid)} refers to annotation {_echo(str(ref))}, which does not exist")
            if ref in chain:
                raise AnnotationError(f"{doc.where(aid)}: its chain of ANNOTATION_REFs comes back to {_echo(ref)} "
                                      f"(a cycle)")
            chain[ref] = None
            node = doc.annotations[ref][1]
        ends.update(chain)


# A TIME_VALUE has at most this many characters: 15 digits of milliseconds are 31,000 years.
MAX_TIME_DIGITS = 15
ECHO_CHARS = 40  # characters of a value from the file that an error message repeats


def _echo(text: str, limit: int = ECHO_CHARS) -> str:
    """``repr(text)`` for an error message, of its first ``limit`` characters and how long it was."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(text)} characters)"


def _tier_list(tiers: Mapping[str, _Node]) -> str:
    return ", ".join(f"{name!r} ({sum(c.tag == 'ANNOTATION' for c in t.children)} annotations)"
                     for name, t in tiers.items())


class _Document:
    """The parts of an ELAN document the spans need: time slots, tiers, annotations."""

    def __init__(self, path: Path) -> None:
        self.path = path
        root = _parse(path)
        self.slots: dict[str, int | None] = {}
        slot_line: dict[str, int] = {}
        self.tiers: dict[str, _Node] = {}
        self.types: dict[str, dict[str, str]] = {}
        for el in root.children:
            if el.tag == "HEADER" and el.attrib.get("TIME_UNITS", "milliseconds") != "milliseconds":
                raise AnnotationError(f"{path}:{el.line}: TIME_UNITS={el.attrib['TIME_UNITS']!r}; only "
                                      f"milliseconds are supported")
            if el.tag == "TIME_ORDER":
                for ts in el.children:
                    tid = ts.attrib.get("TIME_SLOT_ID")
                    if not tid:
                        raise AnnotationError(f"{path}:{ts.line}: TIME_SLOT without TIME_SLOT_ID")
                    if tid in self.slots:
                        raise AnnotationError(f"{path}:{ts.line}: time slot {tid!r} defined twice (first on line "
                                              f"{slot_line[tid]})")
                    self.slots[tid], slot_line[tid] = self._slot_value(ts, tid), ts.line
            elif el.tag == "TIER":
                tid = el.attrib.get("TIER_ID")
                if not tid:
                    raise AnnotationError(f"{path}:{el.line}: TIER without TIER_ID")
                if tid in self.tiers:
                    raise AnnotationError(f"{path}:{el.line}: tier {tid!r} defined twice (first on line "
                                          f"{self.tiers[tid].line})")
                self.tiers[tid] = el
            elif el.tag == "LINGUISTIC_TYPE":
                self.types[el.attrib.get("LINGUISTIC_TYPE_ID", "")] = el.attrib
        self.header = next((c for c in root.children if c.tag == "HEADER"), None)
        self.annotations: dict[str, tuple[str, _Node]] = {}  # id -> (tier, ALIGNABLE_/REF_ANNOTATION)
        for tname, tier in self.tiers.items():
            for a in tier.children:
                if a.tag != "ANNOTATION":
                    continue
                if len(a.children) != 1 or a.children[0].tag not in ("ALIGNABLE_ANNOTATION", "REF_ANNOTATION"):
                    raise AnnotationError(f"{path}:{a.line}: tier {tname!r}: <ANNOTATION> must hold one "
                                          f"ALIGNABLE_ANNOTATION or REF_ANNOTATION")
                inner = a.children[0]
                aid = inner.attrib.get("ANNOTATION_ID")
                if not aid:
                    raise AnnotationError(f"{path}:{inner.line}: tier {tname!r}: annotation without ANNOTATION_ID")
                if aid in self.annotations:
                    raise AnnotationError(f"{path}:{inner.line}: annotation id {aid!r} used twice (first on line "
                                          f"{self.annotations[aid][1].line})")
                self.annotations[aid] = (tname, inner)
        self._tier_times: dict[str, dict[str, float]] = {}

    def _slot_value(self, ts: _Node, tid: str) -> int | None:
        value = ts.attrib.get("TIME_VALUE")
        if value is None:
            return None
        try:
            if len(value.strip()) > MAX_TIME_DIGITS:  # int() of 5000 digits fails, or is slow, and is no time
                raise ValueError(value)
            ms = int(value)
        except ValueError:
            raise AnnotationError(f"{self.path}:{ts.line}: time slot {_echo(tid)} has TIME_VALUE={_echo(value)}, "
                                  f"not whole milliseconds") from None
        if ms < 0:
            raise AnnotationError(f"{self.path}:{ts.line}: time slot {tid!r} has a negative time {ms}")
        return ms

    def where(self, aid: str) -> str:
        tname, node = self.annotations[aid]
        return f"{self.path}:{node.line}: annotation {aid} (tier {tname!r})"

    def pick_tier(self, tier: str | None) -> str:
        """``tier``, or the only tier with annotations, or ``micro-action`` (this project's)."""
        if not self.tiers:
            raise AnnotationError(f"{self.path}: the file has no tiers")
        if tier is not None:
            if tier not in self.tiers:
                raise AnnotationError(f"{self.path}: no tier {tier!r}; its tiers: {_tier_list(self.tiers)}")
            return tier
        filled = [n for n, t in self.tiers.items() if any(c.tag == "ANNOTATION" for c in t.children)]
        if len(filled) == 1:
            return filled[0]
        if TIER_ACTION in filled:
            return TIER_ACTION
        raise AnnotationError(f"{self.path}: {len(filled)} tiers have annotations; choose one with --tier NAME. "
                              f"Tiers: {_tier_list(self.tiers)}")

    def tier_times(self, tname: str) -> dict[str, float]:
        """Milliseconds of every slot the tier's alignable annotations use; slots without a
        value are spread evenly between the aligned slots around them along the tier's chain."""
        if tname in self._tier_times:
            return self._tier_times[tname]
        following: dict[str, str] = {}
        for aid, (tn, node) in self.annotations.items():
            if tn != tname or node.tag != "ALIGNABLE_ANNOTATION":
                continue
            for key in ("TIME_SLOT_REF1", "TIME_SLOT_REF2"):
                ref = node.attrib.get(key)
                if ref is None:
                    raise AnnotationError(f"{self.where(aid)} has no {key}")
                if ref not in self.slots:
                    raise AnnotationError(f"{self.where(aid)} refers to time slot {ref!r}, which TIME_ORDER "
                                          f"does not define")
            following[node.attrib["TIME_SLOT_REF1"]] = node.attrib["TIME_SLOT_REF2"]
        times = {k: float(v) for k, v in self.slots.items() if v is not None}
        for first in [s for s in following if self.slots[s] is not None]:
            chain, cur = [first], first
            while cur in following and len(chain) <= len(self.slots) + 1:
                cur = following[cur]
                chain.append(cur)
                if self.slots[cur] is not None:
                    break
            if len(chain) > 2 and self.slots[chain[-1]] is not None:
                t0, t1 = float(self.slots[chain[0]]), float(self.slots[chain[-1]])
                for i, slot in enumerate(chain[1:-1], 1):
                    times[slot] = t0 + (t1 - t0) * i / (len(chain) - 1)
        self._tier_times[tname] = times
        return times

    def interval(self, aid: str, depth: int = 0) -> tuple[float, float, bool]:
        """``(start_ms, end_ms, interpolated)`` of an annotation, through its references."""
        tname, node = self.annotations[aid]
        if depth > 64:
            raise AnnotationError(f"{self.where(aid)}: the chain of references does not end (a cycle?)")
        if node.tag == "ALIGNABLE_ANNOTATION":
            times = self.tier_times(tname)
            r1, r2 = node.attrib["TIME_SLOT_REF1"], node.attrib["TIME_SLOT_REF2"]
            for ref in (r1, r2):
                if ref not in times:
                    raise AnnotationError(f"{self.where(aid)}: time slot {ref!r} has no TIME_VALUE and lies "
                                          f"between no aligned slots")
            return times[r1], times[r2], self.slots[r1] is None or self.slots[r2] is None
        ref = node.attrib.get("ANNOTATION_REF")
        if ref is None:
            raise AnnotationError(f"{self.where(aid)}: REF_ANNOTATION without ANNOTATION_REF")
        if ref not in self.annotations:
            raise AnnotationError(f"{self.where(aid)} refers to annotation {ref!r}, which does not exist")
        return self.interval(ref, depth + 1)

    def value(self, aid: str) -> str:
        node = self.annotations[aid][1]
        values = [c for c in node.children if c.tag == "ANNOTATION_VALUE"]
        if len(values) != 1:
            raise AnnotationError(f"{self.where(aid)} has {len(values)} ANNOTATION_VALUE elements, expected 1")
        if values[0].children:  # its text would lose the element's part: n<b>o</b>d read as "nd"
            inner = values[0].children[0]
            raise AnnotationError(f"{self.where(aid)}: its ANNOTATION_VALUE holds an element "
                                  f"<{inner.tag[:ECHO_CHARS]}> (line {inner.line}); ELAN values are plain text "
                                  f"(a '<' in a label is written &lt;)")
        return values[0].text.strip()


def read_eaf_spans(path: str | os.PathLike, tier: str | None = None) -> list[Span]:
    """The annotations of one tier of an ELAN file as spans in seconds, sorted by start.

    ``tier=None`` takes the only tier that has annotations, or else this project's
    ``micro-action`` tier; otherwise the error lists the tiers. Raises
    :class:`pipelines.formats.spans.AnnotationError` naming the file, line and annotation for anything
    malformed (broken XML, undefined time slot or annotation, unknown tier, empty value, an end
    not after the start). Overlaps and the video's end are checked by
    :func:`pipelines.formats.spans.check_spans`."""
    doc = _Document(Path(path))
    name = doc.pick_tier(tier)
    ids = [aid for aid, (tn, _) in doc.annotations.items() if tn == name]
    intervals = {aid: doc.interval(aid) for aid in ids}
    constraint = doc.types.get(doc.tiers[name].attrib.get("LINGUISTIC_TYPE_REF", ""), {}).get("CONSTRAINTS")
    if constraint == "Symbolic_Subdivision":  # siblings share their parent's interval: divide it
        siblings: dict[str | None, list[str]] = {}
        for aid in ids:
            siblings.setdefault(doc.annotations[aid][1].attrib.get("ANNOTATION_REF"), []).append(aid)
        for members in siblings.values():
            after = {doc.annotations[a][1].attrib.get("PREVIOUS_ANNOTATION"): a for a in members}
            order, cur = [], after.get(None)
            while cur is not None and len(order) <= len(members):
                order.append(cur)
                cur = after.get(cur)
            if sorted(order) != sorted(members):
                order = members  # a broken PREVIOUS_ANNOTATION chain: file order
            s0, e0, _ = intervals[order[0]]
            for i, a in enumerate(order):
                intervals[a] = (s0 + (e0 - s0) * i / len(order), s0 + (e0 - s0) * (i + 1) / len(order),
                                len(order) > 1 or intervals[a][2])
    spans = []
    for aid in ids:
        start, end, interpolated = intervals[aid]
        label = doc.value(aid)
        if not label:
            raise AnnotationError(f"{doc.where(aid)} has an empty value; give it a label or delete it")
        if end <= start:
            raise AnnotationError(f"{doc.where(aid)}: ends at {end / 1000:.3f} s, not after its start "
                                  f"{start / 1000:.3f} s")
        spans.append(Span(start / 1000.0, end / 1000.0, label, doc.where(aid), None, interpolated))
    return sorted(spans, key=lambda s: (s.start_s, s.end_s))


def _url_paths(url: str) -> list[Path]:
    """The local paths a MEDIA_URL / RELATIVE_MEDIA_URL may mean: ELAN writes them raw
    (``file:///a b.mp4``), other tools %-encode them; both are tried, raw first."""
    if not url:
        return []
    if url.startswith("file:"):
        rest = url[5:]
        if rest.startswith("/"):
            rest = "/" + rest.lstrip("/")
            if len(rest) > 3 and rest[2] == ":":  # /C:/... -> C:/...
                rest = rest[1:]
    elif "://" in url:
        return []  # http(s), rtsp: not a local file
    else:
        rest = url
    return [Path(rest)] + ([Path(unquote(rest))] if unquote(rest) != rest else [])


def linked_video(path: str | os.PathLike, videos_dir: str | os.PathLike | None = None) -> Path | None:
    """The video an ELAN file links, looked for as ELAN does (MEDIA_URL, RELATIVE_MEDIA_URL
    against the file's folder, the linked name beside the file), then in ``videos_dir`` by the
    linked name and by the ``.eaf``'s stem with a video suffix. None when none exists."""
    path = Path(path)
    header = _Document(path).header
    names: list[str] = []
    candidates: list[Path] = []
    for md in header.children if header is not None else []:
        if md.tag != "MEDIA_DESCRIPTOR":
            continue
        absolute = _url_paths(md.attrib.get("MEDIA_URL", ""))
        relative = _url_paths(md.attrib.get("RELATIVE_MEDIA_URL", ""))
        here = [p.name for p in absolute + relative if p.name]
        if not (md.attrib.get("MIME_TYPE", "").startswith("video")
                or any(Path(n).suffix.lower() in VIDEO_SUFFIXES for n in here)):
            continue  # audio, or a linked ELAN/CHAT file
        candidates += [p if p.is_absolute() else path.parent / p for p in absolute]
        candidates += [path.parent / p for p in relative] + [path.parent / n for n in here]
        names += here
    if videos_dir is not None:
        candidates += [Path(videos_dir) / n for n in names]
        candidates += [Path(videos_dir) / (path.stem + s) for s in sorted(VIDEO_SUFFIXES)]
    return next((c for c in candidates if c.is_file()), None)
