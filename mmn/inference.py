"""Clip-level inference: raw skeleton clips in, logits and per-joint modulation maps out.

A :class:`Recognizer` bundles one or two loaded MMN streams (joint, and optionally bone for
the two-stream ensemble ``0.5 · logits_J + 0.5 · logits_B``) with their skeleton layout and the
authors' test-time preprocessing. Modulation maps come back in the layout's *storage* joint
order (the order of the input keypoints), not MMN's body-part order.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from core.layouts import SkeletonLayout
from core.taxonomy import Taxonomy
from mmn.checkpoint import CheckpointMeta, load_official
from mmn.fast import FastMMN
from mmn.model import MAP_NAMES, MMN
from mmn.preprocess import preprocess_clip

__all__ = ["DEVICES", "Prediction", "Recognizer", "blocks_to_heatmap", "resolve_device"]

DEVICES = ("auto", "cpu", "cuda")  # the --device choices everywhere


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(device)


@dataclass
class Prediction:
    """Output of :meth:`Recognizer.predict` for N clips.

    ``logits`` and ``probs``: (N, K) float32 (ensembled over streams). ``maps``: map name →
    (N, clip_len, V) float32 heat per clip, sampled frame and storage-order joint, the mean over
    all blocks of each block's map resized to ``clip_len`` frames (joint stream only); empty
    unless asked for. ``frame_inds``: (N, clip_len) raw frame index of each sampled frame.
    """

    logits: np.ndarray
    probs: np.ndarray
    frame_inds: np.ndarray
    maps: dict[str, np.ndarray] = field(default_factory=dict)


def blocks_to_heatmap(block_maps: list[dict[str, Tensor]], name: str, clip_len: int) -> Tensor:
    """Average one named map over blocks: each (B, T_stage, V) is resized (nearest frame) to
    ``clip_len`` frames; returns (B, clip_len, V)."""
    acc = None
    for maps in block_maps:
        m = maps[name]
        t_stage = m.shape[1]
        m = m.repeat_interleave(clip_len // t_stage, dim=1) if clip_len % t_stage == 0 else \
            torch.nn.functional.interpolate(m.transpose(1, 2), size=clip_len, mode="nearest").transpose(1, 2)
        acc = m if acc is None else acc + m
    return acc / len(block_maps)


class Recognizer:
    """One or two MMN streams on a device, ready for raw (L, V, 2) pixel clips.

    With ``fast=True`` (default) each stream runs as a :class:`~mmn.fast.FastMMN`, the
    eval-only equivalent of the loaded model (same logits within 1e-4, same maps); ``fast=False``
    runs the plain :class:`~mmn.model.MMN` modules. ``self.models`` keeps the plain modules,
    ``self.streams`` what actually runs. Every stream must come from a checkpoint
    (``model.meta``, see :func:`mmn.load_official`): the joint stream's metadata gives the
    layout, taxonomy and clip length; a second stream must agree on all three.
    """

    def __init__(self, streams: Sequence[MMN | FastMMN], device: str | torch.device = "auto",
                 fast: bool = True) -> None:
        if not streams:
            raise ValueError("a Recognizer needs at least one model")
        self.device = resolve_device(device)
        self.models = [m.to(self.device) if isinstance(m, FastMMN) else m.to(self.device).eval()
                       for m in streams]
        self.streams = [FastMMN.from_model(m) if fast and not isinstance(m, FastMMN) else m
                        for m in self.models]
        metas = [m.meta for m in self.streams]
        if any(meta is None for meta in metas):
            raise ValueError("a Recognizer runs loaded checkpoints (model.meta is None: load with mmn.load_official)")
        self.meta: CheckpointMeta = metas[0]
        for other in metas[1:]:
            if (other.layout != self.meta.layout or other.taxonomy != self.meta.taxonomy
                    or other.clip_len != self.meta.clip_len):
                raise ValueError(f"ensembled checkpoints must share layout, classes and clip length "
                                 f"({self.meta.file} and {other.file} differ)")
        self.layout: SkeletonLayout = self.meta.layout
        self.taxonomy: Taxonomy = self.meta.taxonomy
        self.modalities = [meta.modality for meta in metas]
        self.class_names: list[str] = list(self.taxonomy.class_names)
        # inverse of the body-part reorder: storage joint j sits at model position inverse[j]
        self._inverse = torch.as_tensor(np.argsort(np.asarray(self.layout.partition)), device=self.device)

    @classmethod
    def from_checkpoints(cls, joint: str | os.PathLike, bone: str | os.PathLike | None = None,
                         device: str | torch.device = "auto", fast: bool = True) -> Recognizer:
        """Load ``joint`` (and ``bone`` for the 2S ensemble) with :func:`mmn.load_official`."""
        streams = [load_official(joint)]
        if bone is not None:
            streams.append(load_official(bone, modality="bone"))
        return cls(streams, device, fast=fast)

    @property
    def num_classes(self) -> int:
        return self.streams[0].cfg.num_classes

    @property
    def dataset(self) -> str:
        """The taxonomy's name."""
        return self.taxonomy.name

    @property
    def clip_len(self) -> int:
        """Frames each clip is resampled to (the checkpoint's recorded clip length)."""
        return self.meta.clip_len

    @torch.inference_mode()
    def predict(self, clips: Sequence[np.ndarray], return_maps: bool = False,
                batch_size: int = 64, clip_len: int | None = None) -> Prediction:
        """Classify raw clips, each (L_i, V, 2) pixels with L_i ≥ 1, in batches of
        ``batch_size`` ≥ 1, each resampled to ``clip_len`` frames (default: the checkpoint's)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        clip_len = self.clip_len if clip_len is None else clip_len
        logits_all, maps_all, inds_all = [], {n: [] for n in MAP_NAMES}, []
        for start in range(0, len(clips), batch_size):
            batch = clips[start:start + batch_size]
            logits = None
            for s, (model, modality) in enumerate(zip(self.streams, self.modalities)):
                xs, ts = zip(*(preprocess_clip(c, self.layout, modality, clip_len) for c in batch))
                x = torch.from_numpy(np.stack(xs)).to(self.device)
                t = torch.from_numpy(np.stack(ts)).to(self.device)
                want_maps = return_maps and s == 0
                out = model(x, t, return_maps=want_maps)
                if want_maps:
                    out, block_maps = out
                    for name in MAP_NAMES:
                        heat = blocks_to_heatmap(block_maps, name, clip_len)[:, :, self._inverse]
                        maps_all[name].append(heat.float().cpu().numpy())
                logits = out.float() if logits is None else logits + out.float()
            logits_all.append((logits / len(self.streams)).cpu().numpy())
            inds_all.extend(np.linspace(0, len(c) - 1, clip_len).astype(int) for c in batch)
        logits_np = np.concatenate(logits_all) if logits_all else np.zeros((0, self.num_classes), np.float32)
        probs = torch.softmax(torch.from_numpy(logits_np), dim=1).numpy()
        maps = {n: np.concatenate(v) for n, v in maps_all.items() if v}
        return Prediction(logits_np, probs, np.asarray(inds_all, dtype=np.int64).reshape(-1, clip_len), maps)
