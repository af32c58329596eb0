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

Two qualities (``quality``; :data:`QUALITIES`; measurements in docs/pose-speed.md):

- ``"full"``: MediaPipe's Holistic solution on every frame, one frame at a time (the only
  configuration before ``fast``);
- ``"fast"`` (default): the same Holistic graph and models, run on every third frame while
  the person is tracked and still, every second frame while a landmark moves faster than
  :data:`STILL_SPEED` torso lengths a frame, and every frame while MediaPipe has lost the
  person (so that its detector gets every chance to find them again, as in ``full``); a
  skipped frame is the linear interpolation of the estimates around it. Two frames are
  inside the graph at once (the pose of one beside the hands and face of the one before),
  which gives the same landmarks as one at a time, on two cores instead of about 1.2.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..keypoint_tables import MP_FACE, MP_LHAND, MP_NUM, MP_RHAND
from .base import Estimator, FramePoses, boxes_from_keypoints

__all__ = ["DEFAULT_QUALITY", "QUALITIES", "QualityPreset", "MediaPipeHolisticEstimator", "native_stderr_silenced"]

HAND_SCORE = 0.9
FACE_MESH_SCORE = 0.9
_BODY = slice(0, 33)
_HOLISTIC_GRAPH = "modules/holistic_landmark/holistic_landmark_cpu.binarypb"
_FACE_NODES = ("SplitNormalizedLandmarkListCalculator", "FaceLandmarksFromPoseCpu")
_PARTS = (("face", MP_FACE, 468), ("left_hand", MP_LHAND, 21), ("right_hand", MP_RHAND, 21))


@dataclass(frozen=True)
class QualityPreset:
    """What a ``quality`` runs: the face mesh or not, the hand landmark model (``"full"``, the
    Holistic one, or ``"lite"``) and every how many frames the models run (1: every frame;
    k: frames between are interpolated)."""

    face_mesh: bool
    hand_model: str
    frame_stride: int


QUALITIES: dict[str, QualityPreset] = {
    "full": QualityPreset(face_mesh=True, hand_model="full", frame_stride=1),
    "fast": QualityPreset(face_mesh=True, hand_model="full", frame_stride=3),
}
DEFAULT_QUALITY = "fast"
STILL_SPEED = 0.03  # torso lengths per frame: no landmark faster than this → the whole stride is skipped
IN_FLIGHT = 2  # frames inside the fast graph at once (pose of one beside the hands of the one before)


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


@functools.lru_cache(maxsize=4)
def _fast_graph(hand_model: str, face_mesh: bool = False) -> Any:
    """The Holistic graph, without its face-mesh branch unless ``face_mesh``, with the chosen
    hand landmark model (a ``CalculatorGraphConfig`` with the subgraphs expanded; made once
    per process, read only)."""
    import mediapipe as mp
    from mediapipe.framework import calculator_pb2
    from mediapipe.framework.tool import switch_container_pb2
    from mediapipe.python._framework_bindings import resource_util, validated_graph_config

    package = os.path.dirname(mp.__file__)
    resource_util.set_resource_dir(os.path.dirname(package))  # as SolutionBase does: models by package path
    config = calculator_pb2.CalculatorGraphConfig()
    with open(os.path.join(package, _HOLISTIC_GRAPH), "rb") as f:
        config.ParseFromString(f.read())
    nodes = [n for n in config.node if face_mesh or n.calculator not in _FACE_NODES]
    outputs = [o for o in config.output_stream if face_mesh or not o.startswith("FACE_LANDMARKS:")]
    del config.node[:], config.output_stream[:]
    config.node.extend(nodes)
    config.output_stream.extend(outputs)
    validated = validated_graph_config.ValidatedGraphConfig()
    validated.initialize(graph_config=config)
    expanded = calculator_pb2.CalculatorGraphConfig()
    expanded.ParseFromString(validated.binary_config)
    select = {"full": 1, "lite": 0}[hand_model]
    for node in expanded.node:  # HandLandmarkCpu's model switch (Holistic fixes it to the full model)
        if "handlandmarkmodelloader__switchcontainer" in node.name:
            node.options.Extensions[switch_container_pb2.SwitchContainerOptions.ext].select = select
    return expanded


def _lerp_poses(a: FramePoses, b: FramePoses, index: int, timestamp: float, w: float) -> FramePoses:
    """Frame ``index`` between the estimated frames ``a`` and ``b`` (``w``: 0 at a, 1 at b):
    points present in both are interpolated linearly, points present in one are taken from it."""
    if a.num_people == 0 or b.num_people == 0:
        src = a if b.num_people == 0 else b
        if src.num_people == 0:
            return FramePoses.empty(index, timestamp, a.keypoints.shape[1])
        return FramePoses(index, timestamp, src.keypoints.copy(), src.scores.copy(), src.boxes.copy(),
                          src.box_scores.copy(), extra={**src.extra, "interpolated": True})
    ka, kb, sa, sb = a.keypoints[:1], b.keypoints[:1], a.scores[:1], b.scores[:1]
    pa, pb = np.isfinite(ka).all(-1) & (sa > 0), np.isfinite(kb).all(-1) & (sb > 0)
    both = pa & pb
    kp = np.where(pa[..., None], ka, kb)
    kp = np.where(both[..., None], (1 - w) * ka + w * kb, kp).astype(np.float32)
    sc = np.where(both, (1 - w) * sa + w * sb, np.where(pa, sa, sb)).astype(np.float32)
    parts_a, parts_b = a.extra.get("parts", {}), b.extra.get("parts", {})
    parts = {k: bool(parts_a.get(k) or parts_b.get(k)) for k in {**parts_a, **parts_b}}
    box = boxes_from_keypoints(kp[:, _BODY], sc[:, _BODY])
    return FramePoses(index, timestamp, kp, sc, box, np.ones(1, np.float32),
                      extra={"parts": parts, "interpolated": True})


def _pipelined_solution(config: Any, side_inputs: dict[str, Any], calculator_params: dict[str, Any],
                        outputs: list[str]) -> Any:
    """A MediaPipe ``SolutionBase`` that also takes frames without waiting for their results
    (``submit`` → ticket, ``result(ticket)``), so that the graph works on the next frame's pose
    while the hands of the frame before are still running. The graph, its loop-backs (tracking
    from the previous frame) and so its results are those of ``process``."""
    import threading

    from mediapipe.python.solution_base import SolutionBase

    class _Outputs(dict):
        """What SolutionBase's output callback writes into, kept per timestamp."""

        def __init__(self) -> None:
            super().__init__()
            self.cond = threading.Condition()
            self.packets: dict[tuple[str, int], Any] = {}
            self.bound: dict[str, int] = {}

        def __setitem__(self, stream: str, packet: Any) -> None:
            ts = packet.timestamp.value
            with self.cond:
                if not packet.is_empty():
                    self.packets[stream, ts] = packet
                self.bound[stream] = max(self.bound.get(stream, -1), ts)
                self.cond.notify_all()

    class Pipelined(SolutionBase):
        def __init__(self) -> None:
            super().__init__(graph_config=config, side_inputs=side_inputs, calculator_params=calculator_params,
                             outputs=outputs)
            self._graph_outputs = _Outputs()
            self._streams = list(self._output_stream_type_info)
            self._input = next(iter(self._input_stream_type_info))

        def submit(self, rgb: np.ndarray) -> int:
            self._simulated_timestamp += 33333
            ts = self._simulated_timestamp
            packet = self._make_packet(self._input_stream_type_info[self._input], rgb).at(ts)
            self._graph.add_packet_to_input_stream(stream=self._input, packet=packet)
            return ts

        def wait(self, ts: int) -> None:
            """Until every output stream is settled at ``ts`` (a result or none)."""
            out = self._graph_outputs
            with out.cond:
                while not all(out.bound.get(s, -1) >= ts for s in self._streams):
                    if not out.cond.wait(1.0) and self._graph.has_error():
                        raise RuntimeError(f"MediaPipe graph failed: {self._graph.get_combined_error_message()}")

        def result(self, ts: int) -> Any:
            self.wait(ts)
            out = self._graph_outputs
            with out.cond:
                packets = {s: out.packets.pop((s, ts), None) for s in self._streams}
                for key in [k for k in out.packets if k[1] < ts]:
                    del out.packets[key]
            values = {s: None if p is None else self._get_packet_content(self._output_stream_type_info[s], p)
                      for s, p in packets.items()}
            return type("Result", (), values)

        def process(self, rgb: np.ndarray) -> Any:  # the blocking form, as SolutionBase's
            return self.result(self.submit(rgb))

    return Pipelined()


def _speed(a: FramePoses, b: FramePoses) -> float:
    """The fastest landmark from estimate ``a`` to ``b`` (one person each), torso lengths per
    frame: pose landmarks 0–22 visible (> 0.5) in both, hand points present in both; torso:
    shoulder centre to hip centre in ``a``, else a third of the body's height. inf when there
    is nothing to compare."""
    ka, kb, sa, sb = a.keypoints[0], b.keypoints[0], a.scores[0], b.scores[0]
    torso = float(np.linalg.norm((ka[11] + ka[12] - ka[23] - ka[24]) / 2))
    if not (np.isfinite(torso) and torso > 0):
        y = ka[_BODY, 1]
        torso = float(np.nanmax(y) - np.nanmin(y)) / 3 if np.isfinite(y).any() else 0.0
    use = np.zeros(MP_NUM, bool)
    use[:23] = (sa[:23] > 0.5) & (sb[:23] > 0.5)
    use[MP_LHAND:] = (sa[MP_LHAND:] > 0) & (sb[MP_LHAND:] > 0)
    frames = b.index - a.index
    if not use.any() or not torso > 0 or frames < 1:
        return float("inf")
    return float(np.linalg.norm(kb[use] - ka[use], axis=-1).max() / torso / frames)


class MediaPipeHolisticEstimator(Estimator):
    """MediaPipe Holistic on a stream of frames (one person, tracked by MediaPipe).

    Args:
        quality: ``"fast"`` (default) or ``"full"``, a preset of :data:`QUALITIES` (what each
            runs is in the module docstring); ``face_mesh``, ``hand_model`` and
            ``frame_stride`` override its parts; ``still_speed``: torso lengths per frame below
            which the whole stride is skipped (``fast``).
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

    def __init__(self, quality: str = DEFAULT_QUALITY, model_complexity: int = 1, smooth_landmarks: bool = False,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 refine_face_landmarks: bool = False, max_side: int | None = None,
                 warmup_first_frame: bool = True, face_mesh: bool | None = None, hand_model: str | None = None,
                 frame_stride: int | None = None, still_speed: float = STILL_SPEED) -> None:
        try:
            import mediapipe  # noqa: F401
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("the default pose backend needs mediapipe==0.10.21 "
                              "(pip install --no-deps mediapipe==0.10.21)") from e
        if quality not in QUALITIES:
            raise ValueError(f"pose quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
        preset = QUALITIES[quality]
        self.preset = QualityPreset(
            face_mesh=preset.face_mesh if face_mesh is None else bool(face_mesh),
            hand_model=preset.hand_model if hand_model is None else str(hand_model),
            frame_stride=preset.frame_stride if frame_stride is None else int(frame_stride))
        if self.preset.hand_model not in ("full", "lite"):
            raise ValueError(f"hand_model must be 'full' or 'lite', got {self.preset.hand_model!r}")
        if self.preset.frame_stride < 1:
            raise ValueError(f"frame_stride must be at least 1, got {self.preset.frame_stride}")
        if int(model_complexity) != 1 and self.preset != QUALITIES["full"]:
            raise ValueError("only model_complexity=1 ships with mediapipe 0.10.21")
        self.quality = quality
        # Holistic as shipped, one frame at a time (full); anything else runs pipelined
        self.pipelined = self.preset != QUALITIES["full"]
        self.still_speed = float(still_speed)
        self._skips, self._last = 0, None
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

            if not self.pipelined:  # Holistic as shipped
                self._holistic = mp.solutions.holistic.Holistic(static_image_mode=False, **self._opts)
            else:
                o, prefix = self._opts, "poselandmarkcpu__"
                self._holistic = _pipelined_solution(
                    _fast_graph(self.preset.hand_model, self.preset.face_mesh),
                    side_inputs={"model_complexity": 1, "smooth_landmarks": o["smooth_landmarks"],
                                 "enable_segmentation": False, "smooth_segmentation": False,
                                 "use_prev_landmarks": True,
                                 **({"refine_face_landmarks": o["refine_face_landmarks"]} if self.preset.face_mesh
                                    else {})},
                    calculator_params={
                        f"{prefix}posedetectioncpu__TensorsToDetectionsCalculator.min_score_thresh":
                            o["min_detection_confidence"],
                        f"{prefix}poselandmarkbyroicpu__tensorstoposelandmarksandsegmentation__"
                        "ThresholdingCalculator.threshold": o["min_tracking_confidence"]},
                    outputs=["pose_landmarks", "left_hand_landmarks", "right_hand_landmarks",
                             *(["face_landmarks"] if self.preset.face_mesh else [])])
        return self._holistic

    def stream(self, frames: Iterable[tuple[int, float, np.ndarray | None]]) -> Iterator[FramePoses]:
        """One :class:`FramePoses` per frame, in order.

        With ``frame_stride`` k > 1 the models skip up to k - 1 frames after an estimate while
        the person is still (no landmark faster than ``still_speed`` torso lengths a frame
        between the last two estimates), one frame while they move, none while lost; a skipped
        frame is the linear interpolation of the estimates around it (``extra["interpolated"]``);
        the last frame is always estimated. Up to :data:`IN_FLIGHT` estimated frames are inside
        the graph at once (same results as one at a time). At most one frame's pixels are held
        (the newest skipped one, in case it is the last)."""
        k = self.preset.frame_stride
        if not self.pipelined:
            yield from super().stream(frames)
            return
        last: FramePoses | None = None
        for kind, *entry in self._estimates(frames, k):
            if kind == "skipped":
                waiting = entry[0]
                continue
            fp = entry[0]
            if last is not None:
                span = fp.timestamp - last.timestamp
                for index, timestamp in waiting:
                    w = (timestamp - last.timestamp) / span if span > 0 else 0.5
                    yield _lerp_poses(last, fp, index, timestamp, float(np.clip(w, 0.0, 1.0)))
            waiting = []
            last = fp
            yield fp

    def _estimates(self, frames: Iterable[tuple[int, float, np.ndarray | None]], k: int) -> Iterator[tuple]:
        """``("skipped", [(index, t), …])`` before each ``("estimated", FramePoses)``, in order,
        keeping up to :data:`IN_FLIGHT` frames submitted ahead; how many frames may be skipped
        is set from the latest result (:meth:`_resolve`)."""
        from collections import deque

        depth = IN_FLIGHT if self.pipelined else 1
        inflight: deque = deque()  # (ticket, size, index, t, skipped frames before it)
        skipped: list[tuple[int, float]] = []
        held = None
        self._skips, self._last = 0, None
        for index, timestamp, frame in frames:
            if len(skipped) < self._skips:
                skipped.append((index, timestamp))
                held = (index, timestamp, frame)
                continue
            inflight.append((*self._submit(frame, index), index, timestamp, skipped))
            skipped, held = [], None
            while len(inflight) >= depth:
                yield from self._resolve(inflight.popleft())
        if held is not None:
            skipped.pop()
            inflight.append((*self._submit(held[2], held[0]), held[0], held[1], skipped))
        while inflight:
            yield from self._resolve(inflight.popleft())

    def _resolve(self, entry: tuple) -> Iterator[tuple]:
        ticket, size, index, timestamp, skipped = entry
        res = self._holistic.result(ticket) if self.pipelined else ticket
        fp = self._poses(res, size, index, timestamp)
        if fp.num_people == 0:  # lost: the detector looks at every frame
            self._skips = 0
        elif self._last is None or self._last.num_people == 0 or self.preset.frame_stride <= 2:
            self._skips = min(1, self.preset.frame_stride - 1)
        else:  # the whole stride while still, one frame while something moves
            still = _speed(self._last, fp) <= self.still_speed
            self._skips = self.preset.frame_stride - 1 if still else 1
        self._last = fp
        yield "skipped", skipped
        yield "estimated", fp

    def _submit(self, frame: np.ndarray | None, index: int) -> tuple[Any, tuple[int, int]]:
        """Hand a frame to the graph: (ticket, (w, h)); the Holistic solution (full) answers at once."""
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
        pipelined = self.pipelined
        if self._fresh:  # the graph starts on the first frame: that is when MediaPipe logs
            with native_stderr_silenced():
                if self.warmup_first_frame:
                    model.process(rgb)
                if pipelined:
                    ticket = model.submit(rgb)
                    model.wait(ticket)
                else:
                    ticket = model.process(rgb)  # the Holistic solution answers at once: the ticket is the result
            self._fresh = False
            return ticket, (w, h)
        return (model.submit(rgb) if pipelined else model.process(rgb)), (w, h)

    def process(self, frame: np.ndarray | None, index: int, timestamp: float) -> FramePoses:
        ticket, size = self._submit(frame, index)
        res = self._holistic.result(ticket) if self.pipelined else ticket
        return self._poses(res, size, index, timestamp)

    @staticmethod
    def _poses(res: Any, size: tuple[int, int], index: int, timestamp: float) -> FramePoses:
        if res.pose_landmarks is None:
            return FramePoses.empty(index, timestamp, MP_NUM)
        kp = np.full((MP_NUM, 2), np.nan, np.float32)
        sc = np.zeros(MP_NUM, np.float32)
        scale = np.array(size, np.float32)  # normalised coordinates -> original pixels
        body = np.array([(l.x, l.y, l.visibility) for l in res.pose_landmarks.landmark], np.float32)
        kp[_BODY] = body[:, :2] * scale
        sc[_BODY] = np.clip(body[:, 2], 0.0, 1.0)
        parts = {"face": False, "left_hand": False, "right_hand": False}
        for key, start, n in _PARTS:
            lms = getattr(res, f"{key}_landmarks", None)
            if lms is None:
                continue
            pts = np.array([(l.x, l.y) for l in lms.landmark[:n]], np.float32)
            kp[start:start + n] = pts * scale
            sc[start:start + n] = FACE_MESH_SCORE if key == "face" else HAND_SCORE
            parts[key] = True
        kp, sc = kp[None], sc[None]
        # The person box is the body landmarks' extent (the face mesh and hands lie inside it).
        box = boxes_from_keypoints(kp[:, _BODY], sc[:, _BODY])
        return FramePoses(index, timestamp, kp, sc, box, np.ones(1, np.float32), extra={"parts": parts})

    def reset(self) -> None:
        self.close()

    def version(self) -> str:
        import mediapipe

        graph = "Holistic" if self.preset.face_mesh else "Holistic without face mesh"
        if self.preset.hand_model != "full":
            graph += f", {self.preset.hand_model} hand model"
        return f"mediapipe {mediapipe.__version__} ({graph})"

    def options(self) -> dict[str, Any]:
        return {"quality": self.quality, **asdict(self.preset), "still_speed": self.still_speed, **self._opts,
                "max_side": self.max_side,
                "warmup_first_frame": self.warmup_first_frame, "hand_score": HAND_SCORE,
                "face_mesh_score": FACE_MESH_SCORE}

    def close(self) -> None:
        if self._holistic is not None:
            self._holistic.close()
            self._holistic = None
        self._fresh = True
