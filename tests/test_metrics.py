"""The paper's metrics against scikit-learn, and MA-52's body-level map against the shared table."""
import csv

import numpy as np
import pytest
from sklearn import metrics as skm

from core.taxonomy import MA52
from mmn.training.metrics import (
    classification_report,
    confusion_matrix,
    ensemble_logits,
    f1_macro_micro,
    per_class_accuracy,
    top_k_accuracy,
)


def _random(n=500, k=52, seed=0, skew=0.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)).astype(np.float32)
    logits[np.arange(n), labels] += skew  # some signal, so metrics are not all near chance
    return logits, labels


@pytest.mark.parametrize("seed,skew", [(0, 0.0), (1, 1.5), (2, 3.0)])
def test_action_metrics_agree_with_sklearn(seed, skew):
    logits, labels = _random(seed=seed, skew=skew)
    preds = logits.argmax(1)
    k = logits.shape[1]
    assert top_k_accuracy(logits, labels, 1) == pytest.approx(skm.accuracy_score(labels, preds))
    assert top_k_accuracy(logits, labels, 5) == pytest.approx(
        skm.top_k_accuracy_score(labels, logits, k=5, labels=np.arange(k)))
    macro, micro = f1_macro_micro(labels, preds, k)
    assert macro == pytest.approx(skm.f1_score(labels, preds, average="macro", zero_division=0))
    assert micro == pytest.approx(skm.f1_score(labels, preds, average="micro"))
    cm = confusion_matrix(labels, preds, k)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(labels, preds, labels=np.arange(k)))
    np.testing.assert_allclose(per_class_accuracy(cm),
                               skm.recall_score(labels, preds, average=None, labels=np.arange(k), zero_division=0))


def test_macro_f1_skips_classes_absent_from_labels_and_predictions():
    labels = np.array([0, 0, 1, 1, 3])
    preds = np.array([0, 1, 1, 1, 0])  # class 2 never appears, class 3 never predicted
    macro, _ = f1_macro_micro(labels, preds, 5)
    assert macro == pytest.approx(skm.f1_score(labels, preds, average="macro", zero_division=0))


def test_body_metrics_and_f1_mean_agree_with_sklearn():
    logits, labels = _random(n=800, seed=3, skew=1.0)
    a2b = MA52.action_to_body()
    rep = classification_report(logits, labels, a2b)
    bt, bp = a2b[labels], a2b[logits.argmax(1)]
    assert rep["body_top1"] == pytest.approx(skm.accuracy_score(bt, bp))
    assert rep["body_f1_macro"] == pytest.approx(skm.f1_score(bt, bp, average="macro", zero_division=0))
    assert rep["body_f1_micro"] == pytest.approx(skm.f1_score(bt, bp, average="micro"))
    expected_mean = (rep["body_f1_macro"] + rep["body_f1_micro"] + rep["f1_macro"] + rep["f1_micro"]) / 4
    assert rep["f1_mean"] == pytest.approx(expected_mean)
    assert rep["body_top1"] > rep["top1"]  # a wrong action in the right body level still counts


def test_perfect_predictions_score_100_percent():
    labels = np.arange(52).repeat(2)
    logits = np.eye(52, dtype=np.float32)[labels]
    rep = classification_report(logits, labels, MA52.action_to_body())
    for key in ("top1", "top5", "f1_macro", "f1_micro", "body_top1", "body_f1_macro", "f1_mean"):
        assert rep[key] == pytest.approx(1.0), key


def test_body_map_agrees_with_the_shared_class_table(class_table):
    with open(class_table, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    expected = np.array([int(r["body_index"]) for r in sorted(rows, key=lambda r: int(r["index"]))])
    np.testing.assert_array_equal(MA52.action_to_body(), expected)
    # the released evaluation code's contiguous ranges (action2body) say the same
    ranges = [(0, 4), (5, 10), (11, 23), (24, 31), (32, 37), (38, 47), (48, 51)]
    released = np.array([next(b for b, (lo, hi) in enumerate(ranges) if lo <= a <= hi) for a in range(52)])
    np.testing.assert_array_equal(MA52.action_to_body(), released)


def test_top5_with_fewer_than_five_classes_is_certain():
    logits, labels = _random(n=20, k=3)
    assert top_k_accuracy(logits, labels, 5) == 1.0


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="labels must lie"):
        top_k_accuracy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="expected logits"):
        top_k_accuracy(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="shapes"):
        ensemble_logits(np.zeros((2, 3)), np.zeros((2, 4)))


def test_ensemble_is_the_equal_weight_mean():
    a, b = _random(n=10, seed=4)[0], _random(n=10, seed=5)[0]
    np.testing.assert_allclose(ensemble_logits(a, b), 0.5 * a + 0.5 * b, rtol=1e-6)
