"""The default, offline backend: MediaPipe Holistic (``mediapipe==0.10.21``).

Native output (format ``mediapipe_holistic_543``): the 33 pose landmarks, the 468 face-mesh
points, then 21 points for the subject's left hand and 21 for the right hand, in pixels of the
original frame. Scores: pose landmarks carry MediaPipe's ``visibility``; face-mesh and hand
points carry no confidence of their own and get :data:`FACE_MESH_SCORE` /
:data:`HAND_SCORE` when the model returned them. Absent parts are NaN with score 0; the
keypoint table then takes the six face joints and the hands from the pose landmarks
(ESTIMATED, lowered scores). See :mod:`pose.keypoint_tables`.

Only ``model_complexity=1`` runs offline: its model ships inside the wheel, while 0 and 2 are
downloaded at run time. MediaPipe's left/right are the subject's own sides, as in MA-52 (its
left-hand model's wrist coincides with pose landmark 15, the left wrist). MediaPipe runs its
graph on its own threads (about 1.3 cores busy on average); it has no thread setting in this
API, so OpenCV's own threads are kept at the caller's setting.

The first frame of a stream is run twice and the second result kept (``warmup_first_frame``):
MediaPipe's first result comes from its detector's rough region, the later ones from the
tracked region, and on the MA-52 clips the two differ by about 10 px at the hands (a jump at
frame 1 that would look like motion).

MediaPipe's native code logs a dozen harmless warnings to the process's stderr when its graph
starts (TensorFlow Lite delegate, feedback tensors, NORM_RECT). They are silenced for that
first call only (:func:`native_stderr_silenced`); ``MMN_POSE_VERBOSE=1`` keeps them.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..keypoint_tables import MP_FACE, MP_LHAND, MP_NUM, MP_RHAND
from .base import Estimator, FramePoses, boxes_from_keypoints

HAND_SCORE = 0.9
FACE_MESH_SCORE = 0.9
_BODY = slice(0, 33)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration (native libraries write there
    directly, below Python's ``sys.stderr``); a no-op with ``MMN_POSE_VERBOSE=1``."""
    if os.environ.get("MMN_POSE_VERBOSE") == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class MediaPipeHolisticEstimator(Estimator):
    """MediaPipe Holistic on a stream of frames (one person, tracked by MediaPipe).

    Args:
        model_complexity: pose model size; only 1 ships with the wheel (0 and 2 download).
        smooth_landmarks: MediaPipe's own landmark filter across frames (video mode).
        min_detection_confidence, min_tracking_confidence: MediaPipe thresholds.
        refine_face_landmarks: the attention face mesh (478 points; the first 468 are kept).
        max_side: downscale frames whose longer side exceeds this before inference (the
            models work on fixed-size crops; coordinates are returned in original pixels).
        warmup_first_frame: run the first frame twice, keeping the tracked second result.

    Our own smoothing (:mod:`pose.postprocess`) replaces MediaPipe's landmark filter, which
    is why ``smooth_landmarks`` defaults to False: on the nodding clip MediaPipe's filter lags
    the nose by 1.6 frames and shrinks its vertical standard deviation by 17%.
    """

    name = "mediapipe"
    keypoint_format = "mediapipe_holistic_543"
    num_keypoints = MP_NUM

    def __init__(self, model_complexity: int = 1, smooth_landmarks: bool = False,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 refine_face_landmarks: bool = False, max_side: int | None = None,
                 warmup_first_frame: bool = True) -> None:
        try:
            import mediapipe  # noqa: F401
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("the default pose backend needs mediapipe==0.10.21 "
                              "(pip install --no-deps mediapipe==0.10.21)") from e
        self._opts = dict(model_complexity=int(model_complexity),
                          smooth_landmarks=bool(smooth_landmarks),
                          min_detection_confidence=float(min_detection_confidence),
                          min_tracking_confidence=float(min_tracking_confidence),
                          refine_face_landmarks=bool(refine_face_landmarks))
        self.max_side = max_side
        self.warmup_first_frame = bool(warmup_first_frame)
        self._holistic = None
        self._fresh = True

    def _model(self):
        if self._holistic is None:
            import mediapipe as mp

            self._holistic = mp.solutions.holistic.Holistic(static_image_mode=False, **self._opts)
        return self._holistic

    def process(self, frame: np.ndarray | None, index: int, timestamp: float) -> FramePoses:
        import cv2

        if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame {index}: expected an (H, W, 3) BGR image, got "
                             f"{None if frame is None else frame.shape}")
        h, w = frame.shape[:2]
        img = frame
        if self.max_side and max(h, w) > self.max_side:
            s = self.max_side / max(h, w)
            img = cv2.resize(frame, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        model = self._model()
        if self._fresh:  # the graph starts on the first call: that is when MediaPipe logs
            with native_stderr_silenced():
                if self.warmup_first_frame:
                    model.process(rgb)
                res = model.process(rgb)
            self._fresh = False
        else:
            res = model.process(rgb)
        if res.pose_landmarks is None:
            return FramePoses.empty(index, timestamp, MP_NUM)
        kp = np.full((MP_NUM, 2), np.nan, np.float32)
        sc = np.zeros(MP_NUM, np.float32)
        size = np.array([w, h], np.float32)  # normalised coordinates -> original pixels
        body = np.array([(l.x, l.y, l.visibility) for l in res.pose_landmarks.landmark], np.float32)
        kp[_BODY] = body[:, :2] * size
        sc[_BODY] = np.clip(body[:, 2], 0.0, 1.0)
        parts = {"face": False, "left_hand": False, "right_hand": False}
        for key, lms, start, n, score in (
                ("face", res.face_landmarks, MP_FACE, 468, FACE_MESH_SCORE),
                ("left_hand", res.left_hand_landmarks, MP_LHAND, 21, HAND_SCORE),
                ("right_hand", res.right_hand_landmarks, MP_RHAND, 21, HAND_SCORE)):
            if lms is None:
                continue
            pts = np.array([(l.x, l.y) for l in lms.landmark[:n]], np.float32)
            kp[start:start + n] = pts * size
            sc[start:start + n] = score
            parts[key] = True
        kp, sc = kp[None], sc[None]
        # The person box is the body landmarks' extent (the face mesh and hands lie inside it).
        box = boxes_from_keypoints(kp[:, _BODY], sc[:, _BODY])
        return FramePoses(index, timestamp, kp, sc, box, np.ones(1, np.float32), extra={"parts": parts})

    def reset(self) -> None:
        self.close()

    def version(self) -> str:
        import mediapipe

        return f"mediapipe {mediapipe.__version__} (Holistic)"

    def options(self) -> dict[str, Any]:
        return {**self._opts, "max_side": self.max_side,
                "warmup_first_frame": self.warmup_first_frame, "hand_score": HAND_SCORE,
                "face_mesh_score": FACE_MESH_SCORE}

    def close(self) -> None:
        if self._holistic is not None:
            self._holistic.close()
            self._holistic = None
        self._fresh = True
