"""The agreement library against hand-computed cases: the MMA-52 evaluator's AP with its quirks,
the detection rule on overlapping micro-actions, kappa, and the review ranking."""
from __future__ import annotations

import numpy as np
import pytest

from core.taxonomy import MA52
from pipelines.evaluation.detection_ap import (
    TIOU_THRESHOLDS,
    ScoredSegment,
    class_ap,
    detection_ap,
    match_class,
    segment_tiou,
    voc_ap,
)
from pipelines.evaluation.detections import (
    DETECTION_THRESHOLD,
    detection_records,
    detections_from_probs,
    frame_scores,
    window_probs,
)
from pipelines.evaluation.frame_agreement import NONE, cohen_kappa, frame_labels, precision_recall_f1, presence
from pipelines.evaluation.review import least_certain, rank_for_review, review_csv_text, review_items, review_marks

S = ScoredSegment


def test_thresholds_are_numpys_arange_with_its_float_error():
    assert TIOU_THRESHOLDS.tolist() == np.arange(0.1, 1.0, 0.1).tolist()
    assert len(TIOU_THRESHOLDS) == 9
    assert TIOU_THRESHOLDS[2] == 0.30000000000000004 and TIOU_THRESHOLDS[2] > 0.3
    assert TIOU_THRESHOLDS[6] == 0.7000000000000001


def test_tiou_adds_1e4_to_the_union():
    # [0,1] against [0,2]: 1 / 2 without the epsilon, 1 / 2.0001 with it
    assert segment_tiou((0.0, 1.0), np.array([[0.0, 2.0]]))[0] == pytest.approx(1 / 2.0001, abs=1e-12)
    assert segment_tiou((0.0, 1.0), np.array([[0.0, 1.0]]))[0] < 1.0
    assert segment_tiou((0.0, 1.0), np.array([[2.0, 3.0]]))[0] == 0.0  # no negative overlap


def test_a_tiou_of_exactly_0_3_misses_the_0_3_threshold():
    # tIoU = 0.3 / (0.9999 + 1e-4) = 0.3 exactly; the threshold is 0.30000000000000004
    gold, det = [S("v", 0.0, 0.9999, 0)], [S("v", 0.0, 0.3, 0, 0.9)]
    assert segment_tiou((0.0, 0.3), np.array([[0.0, 0.9999]]))[0] == 0.3
    assert class_ap(gold, det).tolist() == [1.0, 1.0, 0, 0, 0, 0, 0, 0, 0]
    assert class_ap(gold, det, np.array([0.3])).tolist() == [1.0]  # a plain 0.3 would match


def _hand_case():
    """Class 0: gold a[0,10], a[20,30], b[0,5]; c has gold of class 1 only. Detections (input
    order): d1 a[0,10] .9; d2 a[0,10] .8 (duplicate); d3 c[0,5] .7 (video without gold of its
    class); d4 b[0,10] .6 (tIoU 5/10.0001, just under 0.5); d5 c[0,3] .5 and d6 a[20,30] .5 tied."""
    gold = [S("a", 0, 10, 0), S("a", 20, 30, 0), S("b", 0, 5, 0), S("c", 0, 5, 1)]
    dets = [S("a", 0, 10, 0, 0.9), S("a", 0, 10, 0, 0.8), S("c", 0, 5, 0, 0.7), S("b", 0, 10, 0, 0.6),
            S("c", 0, 3, 0, 0.5), S("a", 20, 30, 0, 0.5)]
    return gold, dets


def test_class_ap_equals_the_hand_computation():
    gold, dets = _hand_case()
    g0 = [g for g in gold if g.label == 0]
    m = match_class(g0, dets)
    # ranked by argsort()[::-1]: the tie .5/.5 comes in reverse input order, d6 before d5
    assert m.order.tolist() == [0, 1, 2, 3, 5, 4]
    assert m.tp[0].tolist() == [1, 0, 0, 1, 1, 0]       # tIoU 0.1 … 0.4: d4 matches b
    assert m.tp[4].tolist() == [1, 0, 0, 0, 1, 0]       # 0.5 … 0.9: 5/10.0001 < 0.5
    assert (m.tp + m.fp == 1).all() and m.npos == 3
    # 0.1-0.4: prec 1,.5,.33,.5,.6,.5 rec 1/3,1/3,1/3,2/3,1,1 → monotone 1,.6,.6 over recall
    # steps of 1/3 → 1/3 + .2 + .2; 0.5-0.9: prec 1,.5,.33,.25,.4,.33 rec ..,2/3,2/3 → 1/3 + .4/3
    expected = [1 / 3 + 0.2 + 0.2] * 4 + [1 / 3 + 0.4 / 3] * 5
    np.testing.assert_allclose(class_ap(g0, dets), expected, atol=1e-12)


def test_tie_order_matters_as_in_the_evaluator():
    gold, dets = _hand_case()
    g0 = [g for g in gold if g.label == 0]
    swapped = dets[:4] + [dets[5], dets[4]]  # the tied pair in the other input order: FP then TP
    # d5 (FP) now comes first: prec .4 at recall 2/3 then .5 at recall 1 → 1/3 + .5/3 + .5/3
    assert class_ap(g0, swapped)[0] == pytest.approx(1 / 3 + 0.5 / 3 + 0.5 / 3)
    assert class_ap(g0, dets)[0] == pytest.approx(1 / 3 + 0.4)


def test_detection_ap_classes_without_gold():
    gold, dets = _hand_case()
    dets = dets + [S("a", 0, 1, 2, 0.3)]  # class 2 has a detection but no gold anywhere
    ap = detection_ap(gold, dets, 4)
    np.testing.assert_allclose(ap[:, 0], class_ap([g for g in gold if g.label == 0], dets[:6]))
    assert (ap[:, 1] == 0).all()          # gold, no detection
    assert np.isnan(ap[:, 2]).all()       # detections, no gold: recall 0/0
    assert (ap[:, 3] == 0).all()          # neither


def test_voc_ap_on_a_small_curve():
    # precision .5, 1 at recall .5, 1: interpolated to 1, 1 → AP 1
    assert voc_ap(np.array([0.5, 1.0]), np.array([0.5, 1.0])) == pytest.approx(1.0)
    assert voc_ap(np.array([]), np.array([])) == 0.0


def test_two_overlapping_true_micro_actions_are_both_detected():
    """10 fps, 6 s; windows of 2 s every 1 s. Class 0 happens on 0-4 s, class 1 on 2-6 s."""
    bounds = [(0, 20), (10, 30), (20, 40), (30, 50), (40, 60)]
    probs = np.array([[0.95, 0.00, 0.05], [0.60, 0.30, 0.05], [0.45, 0.45, 0.05], [0.10, 0.70, 0.05],
                      [0.00, 0.90, 0.05]])
    scores = frame_scores(probs, bounds, 60)
    np.testing.assert_allclose(scores[25], [0.525, 0.375, 0.05])   # frames 20-29: windows 1 and 2
    np.testing.assert_allclose(scores[45], [0.05, 0.80, 0.05])     # frames 40-49: windows 3 and 4
    dets = detections_from_probs(probs, bounds, 60)
    # class 0: frames 0-39 (0.95, 0.775, 0.525, 0.275 per 10 frames); class 1: frames 10-59
    assert [(d.class_index, d.start_frame, d.end_frame) for d in dets] == [(0, 0, 40), (1, 10, 60)]
    assert dets[0].score == pytest.approx((0.95 + 0.775 + 0.525 + 0.275) / 4)
    assert dets[1].score == pytest.approx((0.15 + 0.375 + 0.575 + 0.8 + 0.9) / 5)
    gold = [S("v", 0.0, 4.0, 0), S("v", 2.0, 6.0, 1)]
    segs = [S("v", d.start_frame / 10, d.end_frame / 10, d.class_index, d.score) for d in dets]
    ap = detection_ap(gold, segs, 3)
    assert (ap[:, 0] == 1).all()            # [0, 4] s exactly: tIoU 4/4.0001
    assert ap[:, 1].tolist() == [1.0] * 7 + [0.0] * 2  # [1, 6] s against [2, 6] s: tIoU 4/5.0001 < 0.8
    # the top-1 view would give each moment one class: the overlap 2-4 s goes to one of them only
    assert DETECTION_THRESHOLD == 0.1


def test_detection_records_and_top_k_fallback():
    windows = [{"start_frame": 0, "end_frame": 20, "top_k": [{"index": 9, "prob": 0.7}, {"index": 0, "prob": 0.2}]},
               {"start_frame": 10, "end_frame": 30, "skipped": "subject absent"},
               {"start_frame": 20, "end_frame": 40, "top_k": [{"index": 0, "prob": 0.8}, {"index": 9, "prob": 0.05}]}]
    probs, bounds = window_probs(windows, MA52.num_classes)
    assert probs.shape == (2, 52) and bounds == [(0, 20), (20, 40)]
    dets = detections_from_probs(probs, bounds, 40)
    assert [(d.class_index, d.start_frame, d.end_frame) for d in dets] == [(0, 0, 40), (9, 0, 20)]
    recs = detection_records(dets, 20.0, MA52)
    assert recs[1] == {"class_index": 9, "name": "nodding", "code": "B1", "start_frame": 0, "end_frame": 20,
                       "start_s": 0.0, "end_s": 1.0, "score": 0.7}
    assert recs[0]["score"] == pytest.approx(0.5)


def test_frame_labels_overlaps_and_kappa_by_hand():
    fps = 10.0
    a = [S("v", 0, 2, 0), S("v", 2, 4, 1)]
    b = [S("v", 0, 1, 0), S("v", 1, 4, 1), S("v", 4, 5, 0)]
    la, lb = frame_labels(a, 50, fps, by_score=False), frame_labels(b, 50, fps, by_score=False)
    assert (la[:20] == 0).all() and (la[20:40] == 1).all() and (la[40:] == NONE).all()
    k = cohen_kappa(la, lb)
    # p_o = 30/50; p_e = .4*.4 (class 0) + .4*.6 (class 1) + .2*0 (none) = .4 → (.6-.4)/.6
    assert k.percent == pytest.approx(60.0) and k.kappa == pytest.approx(1 / 3) and k.frames == 50
    pa, pb = presence(a, 50, fps, 2), presence(b, 50, fps, 2)
    assert cohen_kappa(pa[:, 0], pb[:, 0]).kappa == pytest.approx((0.6 - 0.52) / 0.48)
    assert cohen_kappa(pa[:, 1], pb[:, 1]).kappa == pytest.approx((0.8 - 0.48) / 0.52)
    # overlap rules: predictions by score (the higher wins), annotations by start (the later wins)
    over = [S("v", 0, 3, 0, 0.9), S("v", 1, 2, 1, 0.4)]
    assert frame_labels(over, 30, fps, by_score=True)[15] == 0
    assert frame_labels(over, 30, fps, by_score=False)[15] == 1
    assert cohen_kappa(np.zeros(5), np.zeros(5)).kappa is None  # p_e = 1: undefined


def test_precision_recall_f1_at_half():
    gold, dets = _hand_case()
    prf = precision_recall_f1([g for g in gold if g.label == 0], dets)
    assert (prf.tp, prf.detections, prf.gold) == (2, 6, 3)
    assert prf.precision == pytest.approx(2 / 6) and prf.recall == pytest.approx(2 / 3)
    assert prf.f1 == pytest.approx(2 * (1 / 3) * (2 / 3) / (1 / 3 + 2 / 3))
    none = precision_recall_f1([], [S("a", 0, 1, 0, 0.5)])
    assert none.recall is None and none.precision == 0.0 and none.f1 is None


def _doc(name, windows):
    return {"video": {"file_name": name}, "windows": windows}


def _w(i, start, top):
    return {"index": i, "start_s": start, "end_s": start + 2.0,
            "top_k": [{"index": k, "name": n, "code": c, "prob": p} for k, (c, n, p) in enumerate(top)]}


def test_review_ranks_by_top1_top2_margin():
    a = _doc("a.mp4", [_w(0, 0.0, [("A1", "shaking body", 0.5), ("B1", "nodding", 0.4)]),
                       _w(1, 0.5, [("A1", "shaking body", 0.9), ("B1", "nodding", 0.05)]),
                       {"index": 2, "start_s": 1.0, "end_s": 3.0, "skipped": "subject absent"},
                       _w(3, 1.5, [("B1", "nodding", 0.6)])])
    b = _doc("b.mp4", [_w(0, 0.0, [("A1", "shaking body", 0.35), ("B1", "nodding", 0.3)])])
    items = review_items(a) + review_items(b)
    assert len(items) == 4  # the skipped window has no probabilities
    ranked = rank_for_review(items)
    assert [(r.video, r.window) for r in ranked] == [("b.mp4", 0), ("a.mp4", 0), ("a.mp4", 3), ("a.mp4", 1)]
    assert [round(r.margin, 6) for r in ranked] == [0.05, 0.1, 0.6, 0.85]
    assert [r.window for r in least_certain(review_items(a), 2)] == [0, 3]  # the two least certain, in time order
    lines = review_csv_text(items).splitlines()
    assert lines[0] == "video,start_s,end_s,top1,top1_prob,top2,top2_prob,margin"
    assert lines[1] == "b.mp4,0.0,2.0,A1 shaking body,0.35,B1 nodding,0.3,0.05"
    assert lines[3] == "a.mp4,1.5,3.5,B1 nodding,0.6,,0.0,0.6"


def test_review_marks_do_not_overlap():
    doc = _doc("a.mp4", [_w(0, 0.0, [("A1", "shaking body", 0.5), ("B1", "nodding", 0.4)]),
                         _w(1, 0.5, [("A1", "shaking body", 0.45), ("B1", "nodding", 0.44)]),
                         _w(2, 4.0, [("B1", "nodding", 0.6), ("A1", "shaking body", 0.3)])])
    marks = review_marks(review_items(doc))
    # windows 0 (0-2 s) and 1 (0.5-2.5 s) overlap: one mark named after the less certain, window 1
    assert [(m.start_s, m.end_s, m.text) for m in marks] == [
        (0.0, 2.5, "margin 0.01: A1 shaking body / B1 nodding (2 windows)"),
        (4.0, 6.0, "margin 0.30: B1 nodding / A1 shaking body")]
