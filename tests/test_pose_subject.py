"""Following one subject: the largest, most central, continuous person; others ignored."""
from __future__ import annotations

import numpy as np

from pose.subject import SubjectTracker, box_iou, frame_weight, select_subject

W, H = 1080, 1296
SUBJECT = np.array([400, 200, 700, 1200], np.float32)   # seated, central, large


def _walker(t: int) -> np.ndarray:
    """A smaller person crossing the frame from left to right, 20 px a frame."""
    x = 20 * t
    return np.array([x, 300, x + 200, 1000], np.float32)


def test_box_iou_and_frame_weight():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[1 / 3, 0]])
    assert frame_weight(SUBJECT, 1.0, W, H) > frame_weight(_walker(0), 1.0, W, H)
    assert frame_weight(SUBJECT, 0.5, W, H) == frame_weight(SUBJECT, 1.0, W, H) / 2


def test_passer_by_is_ignored_in_whatever_order_they_come():
    boxes, scores = [], []
    for t in range(60):
        people = [SUBJECT + t % 3, _walker(t)] if 10 <= t < 50 else [SUBJECT + t % 3]
        if t % 2:
            people = people[::-1]  # the estimator's person order means nothing
        boxes.append(np.stack(people))
        scores.append(np.full(len(people), 0.9))
    pick, meta = select_subject(boxes, scores, W, H)
    assert len(pick) == 60
    for t, p in pick.items():
        np.testing.assert_allclose(boxes[t][p], SUBJECT + t % 3)
    assert meta["num_tracks"] == 2 and meta["max_people_in_frame"] == 2
    assert meta["frames_with_several_people"] == 40 and meta["frames_with_subject"] == 60


def test_single_person_estimator_jumping_to_someone_else_is_dropped():
    """MediaPipe-like: one person a frame, for frames 20-29 the wrong one (at the left edge)."""
    other = np.array([20, 100, 250, 900], np.float32)
    boxes = [np.stack([other + t if 20 <= t < 30 else SUBJECT]) for t in range(50)]
    pick, meta = select_subject(boxes, [np.ones(1)] * 50, W, H)
    assert sorted(pick) == [t for t in range(50) if not 20 <= t < 30]
    # the subject's track survives the 10-frame jump (max_lost 15) and resumes after it
    assert meta["num_tracks"] == 2 and len(meta["subject_tracks"]) == 1


def test_a_lost_and_found_subject_is_joined_but_a_stranger_is_not():
    tracker = SubjectTracker(W, H)
    for t in range(70):
        if 20 <= t < 40:  # subject missing for 20 frames (longer than max_lost)
            tracker.update(t, np.zeros((0, 4)), np.zeros(0))
        else:
            tracker.update(t, SUBJECT[None], np.ones(1))
    pick, meta = tracker.choose()
    assert len(pick) == 50 and sorted(meta["subject_tracks"]) == [0, 1]

    tracker = SubjectTracker(W, H)
    for t in range(70):
        box = SUBJECT if t < 50 else np.array([20, 100, 250, 900], np.float32)  # someone else, elsewhere
        tracker.update(t, box[None], np.ones(1))
    pick, meta = tracker.choose()
    assert sorted(pick) == list(range(50)) and meta["num_tracks"] == 2


def test_continuity_beats_a_briefly_larger_person():
    boxes = []
    for t in range(60):
        people = [SUBJECT]
        if t < 5:  # someone close to the camera for a moment
            people.append(np.array([0, 0, W, H], np.float32))
        boxes.append(np.stack(people))
    pick, _ = select_subject(boxes, [np.ones(len(b)) for b in boxes], W, H)
    assert all(np.array_equal(boxes[t][p], SUBJECT) for t, p in pick.items())


def test_no_people_at_all():
    pick, meta = select_subject([np.zeros((0, 4))] * 5, [np.zeros(0)] * 5, W, H)
    assert pick == {} and meta["frames_with_subject"] == 0
