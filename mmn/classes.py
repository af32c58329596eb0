"""Action class tables: the 52 MA-52 micro-actions with their codes and body levels.

The table ships as package data (``mmn/resources/ma52_classes.tsv``, copied from the MA-52
release): label index, code (A1…G4), action name and one of seven body levels
(A body, B head, C upper limb, D lower limb, E body-hand, F head-hand, G leg-hand).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np


@dataclass(frozen=True)
class ActionClass:
    index: int
    code: str
    name: str
    body_index: int
    body_code: str
    body: str


@lru_cache(maxsize=None)
def ma52_classes() -> tuple[ActionClass, ...]:
    """The 52 MA-52 classes in label-index order."""
    text = resources.files("mmn.resources").joinpath("ma52_classes.tsv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines(), delimiter="\t"))
    classes = tuple(ActionClass(int(r["index"]), r["code"], r["action"], int(r["body_index"]),
                                r["body_code"], r["body"]) for r in rows)
    if [c.index for c in classes] != list(range(52)):
        raise RuntimeError("ma52_classes.tsv is corrupt: indices are not 0..51 in order")
    return classes


def ma52_body_levels() -> tuple[str, ...]:
    """The seven body-level names in body-index order (``body`` … ``leg-hand``)."""
    names: dict[int, str] = {c.body_index: c.body for c in ma52_classes()}
    return tuple(names[i] for i in range(len(names)))


def ma52_action_to_body() -> np.ndarray:
    """(52,) int64: body-level index of each action index."""
    return np.array([c.body_index for c in ma52_classes()], dtype=np.int64)


def top_k_records(probs: np.ndarray, class_names: list[str], k: int = 5,
                  dataset: str = "ma52") -> list[dict]:
    """The ``k`` most probable classes of one clip, best first, as JSON-ready dicts with
    ``index``, ``name``, ``prob`` and, for MA-52, ``code``, ``body`` and ``body_code``.
    ``probs``: (K,) probabilities (or any scores)."""
    table = ma52_classes() if dataset == "ma52" and len(class_names) == 52 else None
    order = np.argsort(-np.asarray(probs), kind="stable")[:k]
    out = []
    for i in order:
        rec: dict = {"index": int(i), "name": class_names[i], "prob": float(probs[i])}
        if table is not None:
            c = table[int(i)]
            rec.update(code=c.code, body=c.body, body_code=c.body_code)
        out.append(rec)
    return out
