"""Action taxonomies: the class list a model predicts, with codes and body levels where known.

A :class:`Taxonomy` is everything outside the model that depends on *which* actions are
predicted: class names, optional short codes (MA-52's ``A1`` … ``G4``), optional body levels
(MA-52's seven: body, head, upper limb, …) and the action → body-level map. It travels inside
project checkpoints (:meth:`Taxonomy.to_dict`), so a model trained on a lab's own coding
scheme labels videos with that scheme's names.

Built in:

- :data:`MA52`: the 52 MA-52 micro-actions, from ``core/resources/ma52_classes.tsv``;
- :data:`IMIGUE`: the 32 iMiGUE classes, named ``class_0`` … ``class_31`` (the release ships
  no names with the data the project reads; a config's ``class_names`` replaces them).

Any other comes from a dataset's class list (:meth:`Taxonomy.from_class_names`).
"""
from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

__all__ = ["ActionClass", "Taxonomy", "TaxonomyError", "MA52", "IMIGUE", "BUILTIN_TAXONOMIES", "MAX_LABEL_CHARS",
           "builtin_taxonomy", "label_problem", "shown_label"]

MAX_LABEL_CHARS = 200  # a class name, code or body level longer than this is refused
# control characters (Unicode category Cc), surrogates, bidirectional overrides, U+FFFE/U+FFFF
_REFUSED_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069\ufffe\uffff]")


class TaxonomyError(ValueError):
    """A taxonomy that is inconsistent or does not fit a model."""


def shown_label(text: str, limit: int = 60) -> str:
    """``text`` as it may appear in a message: escaped (``repr``), cut to about ``limit`` characters."""
    if len(text) > limit:
        return f"{text[:limit]!r}… ({len(text)} characters)"
    return repr(text)


def label_problem(text: str) -> str | None:
    """Why ``text`` cannot be a class name, code or body level, or None when it can.

    Refused: empty text, more than :data:`MAX_LABEL_CHARS` characters, control characters
    (NUL, ESC, tab, CR, LF …: they break ELAN's XML, CSV rows and terminals, and a CR/LF would
    not survive a round trip), lone surrogates (not encodable), bidirectional overrides (they
    make text read differently than it is) and the non-characters U+FFFE/U+FFFF (invalid XML).
    """
    if not text.strip():
        return "it is empty"
    if len(text) > MAX_LABEL_CHARS:
        return f"it has {len(text)} characters, more than {MAX_LABEL_CHARS}"
    found = _REFUSED_CHARACTER.search(text)
    if found is None:
        return None
    ch = found.group()
    kind = {"Cc": "the control character", "Cs": "a lone surrogate"}.get(unicodedata.category(ch), "the character")
    return f"it contains {kind} U+{ord(ch):04X}"


def _check_labels(taxonomy: str, what: str, texts: Sequence[str]) -> None:
    for text in texts:
        problem = label_problem(text)
        if problem:
            raise TaxonomyError(f"taxonomy {shown_label(taxonomy)}: the {what} {shown_label(text)} is refused: "
                                f"{problem}")


@dataclass(frozen=True)
class ActionClass:
    """One action: its label index, name and, where the taxonomy has them, code and body level."""

    index: int
    name: str
    code: str | None = None
    body_index: int | None = None
    body_code: str | None = None
    body: str | None = None

    def record(self) -> dict[str, Any]:
        """JSON fields describing this class: ``index``, ``name`` and any of ``code``,
        ``body`` and ``body_code`` the taxonomy has."""
        rec: dict[str, Any] = {"index": self.index, "name": self.name}
        if self.code is not None:
            rec["code"] = self.code
        if self.body is not None:
            rec.update(body=self.body, body_code=self.body_code)
        return rec

    @property
    def label(self) -> str:
        """``"code name"`` where there is a code, else the name."""
        return f"{self.code} {self.name}" if self.code else self.name


@dataclass(frozen=True)
class Taxonomy:
    """A class list with optional codes and body levels.

    Attributes:
        name: identifier stored with checkpoints and outputs (``"ma52"``, ``"imigue"``, or a
            user's own, e.g. ``"lab_scheme_v2"``).
        class_names: one name per label index.
        codes: one short code per class, or None.
        body_levels: ``(code, name)`` per body level, or None.
        action_body: body-level index of each class (None exactly when ``body_levels`` is).
    """

    name: str
    class_names: tuple[str, ...]
    codes: tuple[str, ...] | None = None
    body_levels: tuple[tuple[str, str], ...] | None = None
    action_body: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        k = len(self.class_names)
        if k == 0:
            raise TaxonomyError(f"taxonomy {shown_label(self.name)} has no classes")
        _check_labels(self.name, "taxonomy name", [self.name])
        _check_labels(self.name, "class name", self.class_names)
        _check_labels(self.name, "code", self.codes or ())
        _check_labels(self.name, "body level", [t for level in self.body_levels or () for t in level])
        if len(set(self.class_names)) != k:
            dup = next(n for n in self.class_names if self.class_names.count(n) > 1)
            raise TaxonomyError(f"taxonomy {self.name!r}: class name {dup!r} appears more than once")
        if self.codes is not None and len(self.codes) != k:
            raise TaxonomyError(f"taxonomy {self.name!r}: {len(self.codes)} codes for {k} classes")
        if (self.body_levels is None) != (self.action_body is None):
            raise TaxonomyError(f"taxonomy {self.name!r}: body levels and the action → body map go together")
        if self.action_body is not None:
            if len(self.action_body) != k:
                raise TaxonomyError(f"taxonomy {self.name!r}: {len(self.action_body)} body entries for {k} classes")
            levels = len(self.body_levels or ())
            if any(not 0 <= b < levels for b in self.action_body):
                raise TaxonomyError(f"taxonomy {self.name!r}: body index outside 0..{levels - 1}")

    # ------------------------------------------------------------------ views

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def has_body_levels(self) -> bool:
        return self.body_levels is not None

    @property
    def num_body_levels(self) -> int:
        return len(self.body_levels or ())

    @property
    def classes(self) -> tuple[ActionClass, ...]:
        return _classes(self)

    def __getitem__(self, index: int) -> ActionClass:
        return self.classes[index]

    def __len__(self) -> int:
        return self.num_classes

    def action_to_body(self) -> np.ndarray | None:
        """(K,) int64 body-level index per class, or None without body levels."""
        return None if self.action_body is None else np.asarray(self.action_body, np.int64)

    def body_probs(self, probs: np.ndarray) -> np.ndarray | None:
        """(K,) class probabilities → (levels,) body-level probabilities (sums), or None."""
        if self.action_body is None:
            return None
        out = np.zeros(self.num_body_levels)
        np.add.at(out, np.asarray(self.action_body), np.asarray(probs, np.float64))
        return out

    def top_k_records(self, probs: np.ndarray, k: int = 5) -> list[dict[str, Any]]:
        """The ``k`` most probable classes of one clip, best first, as JSON-ready dicts
        (:meth:`ActionClass.record` plus ``prob``). ``probs``: (K,) probabilities or scores."""
        probs = np.asarray(probs)
        if probs.shape != (self.num_classes,):
            raise TaxonomyError(f"taxonomy {self.name!r} has {self.num_classes} classes, "
                                f"scores have shape {probs.shape}")
        order = np.argsort(-probs, kind="stable")[:k]
        return [{**self.classes[int(i)].record(), "prob": float(probs[i])} for i in order]

    # ------------------------------------------------------------------ (de)serialising

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (stored in checkpoints), the inverse of :meth:`from_dict`."""
        return {"name": self.name, "class_names": list(self.class_names),
                "codes": None if self.codes is None else list(self.codes),
                "body_levels": None if self.body_levels is None else [list(b) for b in self.body_levels],
                "action_body": None if self.action_body is None else list(self.action_body)}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Taxonomy:
        try:
            return cls(name=str(spec["name"]), class_names=tuple(str(n) for n in spec["class_names"]),
                       codes=None if spec.get("codes") is None else tuple(str(c) for c in spec["codes"]),
                       body_levels=None if spec.get("body_levels") is None else
                       tuple((str(c), str(n)) for c, n in spec["body_levels"]),
                       action_body=None if spec.get("action_body") is None else
                       tuple(int(b) for b in spec["action_body"]))
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, TaxonomyError):
                raise
            raise TaxonomyError(f"malformed taxonomy ({type(e).__name__}: {e})") from None

    @classmethod
    def from_class_names(cls, names: Sequence[str], name: str = "custom") -> Taxonomy:
        """A taxonomy with names only: no codes, no body levels."""
        return cls(name=name, class_names=tuple(str(n) for n in names))

    def with_names(self, names: Sequence[str]) -> Taxonomy:
        """The same taxonomy with other class names (e.g. a config's names for iMiGUE)."""
        if len(names) != self.num_classes:
            raise TaxonomyError(f"{len(names)} names for the {self.num_classes} classes of {self.name!r}")
        return Taxonomy(self.name, tuple(str(n) for n in names), self.codes, self.body_levels, self.action_body)


@cache
def _classes(taxonomy: Taxonomy) -> tuple[ActionClass, ...]:
    out = []
    for i, name in enumerate(taxonomy.class_names):
        code = taxonomy.codes[i] if taxonomy.codes else None
        if taxonomy.action_body is not None and taxonomy.body_levels is not None:
            b = taxonomy.action_body[i]
            body_code, body = taxonomy.body_levels[b]
            out.append(ActionClass(i, name, code, b, body_code, body))
        else:
            out.append(ActionClass(i, name, code))
    return tuple(out)


def _read_ma52() -> Taxonomy:
    text = resources.files("core.resources").joinpath("ma52_classes.tsv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines(), delimiter="\t"))
    if [int(r["index"]) for r in rows] != list(range(len(rows))):
        raise RuntimeError("ma52_classes.tsv is corrupt: indices are not 0..K-1 in order")
    levels: dict[int, tuple[str, str]] = {int(r["body_index"]): (r["body_code"], r["body"]) for r in rows}
    return Taxonomy(name="ma52", class_names=tuple(r["action"] for r in rows), codes=tuple(r["code"] for r in rows),
                    body_levels=tuple(levels[i] for i in range(len(levels))),
                    action_body=tuple(int(r["body_index"]) for r in rows))


MA52: Taxonomy = _read_ma52()
IMIGUE: Taxonomy = Taxonomy.from_class_names([f"class_{i}" for i in range(32)], name="imigue")
BUILTIN_TAXONOMIES: dict[str, Taxonomy] = {t.name: t for t in (MA52, IMIGUE)}


def builtin_taxonomy(name: str) -> Taxonomy | None:
    """The built-in taxonomy called ``name``, or None."""
    return BUILTIN_TAXONOMIES.get(name)
