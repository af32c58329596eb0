"""Classification metrics of the MA-52 challenge and the MMN paper (docs/mmn-computation.md §9), pure numpy.

Shapes: N clips, K classes. ``logits`` (N, K) scores (any monotone scores work), ``labels``
(N,) int. For MA-52 each action maps to one of seven body levels (``action_to_body``, (K,)
int, from :func:`core.taxonomy.Taxonomy.action_to_body`); the body prediction of a clip is the body
level of its predicted action.

- Top-k: fraction of clips whose label is among the k highest scores.
- F1 macro: unweighted mean of per-class F1 over the classes present in the labels or the
  predictions (scikit-learn's ``f1_score(average="macro")`` convention; a class never
  predicted and never present does not count). F1 micro: F1 over all clips, which equals
  accuracy for single-label data.
- ``F1_mean = (F1_macro^body + F1_micro^body + F1_macro^action + F1_micro^action) / 4``.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def _check(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = np.asarray(logits)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"expected logits (N, K) and labels (N,), got {logits.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}), got {labels.min()}..{labels.max()}")
    return logits, labels


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of clips whose label is among the ``k`` highest scores (k capped at K)."""
    logits, labels = _check(logits, labels)
    if labels.size == 0:
        return float("nan")
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts: row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)), 1)
    return cm


def per_class_f1(cm: np.ndarray) -> np.ndarray:
    """(K,) F1 of each class from a confusion matrix; 0 where precision + recall is 0."""
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1)  # 2·tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def f1_macro_micro(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> tuple[float, float]:
    """(macro F1 over classes present in labels or preds, micro F1) — scikit-learn's conventions."""
    labels, preds = np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)
    if labels.size == 0:
        return float("nan"), float("nan")
    cm = confusion_matrix(labels, preds, num_classes)
    present = np.union1d(labels, preds)
    macro = float(per_class_f1(cm)[present].mean())
    micro = float((labels == preds).mean())  # single-label: micro P = micro R = accuracy
    return macro, micro


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """(K,) recall of each class (correct / clips of that class); NaN for classes with no clips."""
    support = cm.sum(axis=1).astype(np.float64)
    return np.divide(np.diag(cm), support, out=np.full(len(cm), np.nan), where=support > 0)


def classification_report(logits: np.ndarray, labels: np.ndarray,
                          action_to_body: np.ndarray | None = None) -> dict[str, Any]:
    """All metrics of one set of predictions.

    Returns scalars ``top1``, ``top5``, ``f1_macro``, ``f1_micro`` (action level) and, with
    ``action_to_body``, ``body_top1``, ``body_f1_macro``, ``body_f1_micro`` and ``f1_mean``;
    plus arrays ``confusion`` (K, K) and ``per_class_accuracy`` (K,). Fractions in [0, 1].
    """
    logits, labels = _check(logits, labels)
    k = logits.shape[1]
    preds = logits.argmax(axis=1)
    macro, micro = f1_macro_micro(labels, preds, k)
    cm = confusion_matrix(labels, preds, k)
    out: dict[str, Any] = {
        "num_clips": int(len(labels)),
        "top1": top_k_accuracy(logits, labels, 1),
        "top5": top_k_accuracy(logits, labels, 5),
        "f1_macro": macro,
        "f1_micro": micro,
    }
    if action_to_body is not None:
        a2b = np.asarray(action_to_body, dtype=np.int64)
        if a2b.shape != (k,):
            raise ValueError(f"action_to_body has shape {a2b.shape}, expected ({k},)")
        body_true, body_pred = a2b[labels], a2b[preds]
        b_macro, b_micro = f1_macro_micro(body_true, body_pred, int(a2b.max()) + 1)
        out.update(body_top1=float((body_true == body_pred).mean()) if len(labels) else float("nan"),
                   body_f1_macro=b_macro, body_f1_micro=b_micro,
                   f1_mean=(b_macro + b_micro + macro + micro) / 4)
    out["confusion"] = cm
    out["per_class_accuracy"] = per_class_accuracy(cm)
    return out


def scalar_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The scalar entries of a :func:`classification_report` (for logs and JSON)."""
    return {k: float(v) for k, v in report.items() if np.isscalar(v)}


def ensemble_logits(joint: np.ndarray, bone: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """Two-stream (2S) ensemble: ``weight · joint + (1 − weight) · bone``; both (N, K)."""
    joint, bone = np.asarray(joint), np.asarray(bone)
    if joint.shape != bone.shape:
        raise ValueError(f"cannot ensemble logits of shapes {joint.shape} and {bone.shape}")
    return (weight * joint + (1 - weight) * bone).astype(np.float32)
