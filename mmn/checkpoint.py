"""Loading and saving MMN checkpoints — one door for the authors' files and the project's own.

Two on-disk forms, both read with ``torch.load(weights_only=True)`` so that no pickled code
ever runs:

- **released** (the MMN authors' Google Drive files): a plain ``OrderedDict`` of tensors,
  keys optionally prefixed ``module.``. Joints, classes, channels and depths are inferred from
  the shapes; the layout from the joint count; the modality is not recorded in the file, so
  the caller says it (default ``"joint"``).
- **project**: ``{"format": "mmn-checkpoint", "version": 1, "meta": {...}, "state_dict": {...}}``
  where ``meta`` holds plain data: ``model`` (an :class:`MMNConfig` dict), ``dataset``,
  ``layout`` (a :class:`SkeletonLayout` dict), ``modality``, ``class_names``,
  ``preprocessing`` and free-form provenance.

Every load is strict: a missing, unexpected or mis-shaped key is an error that names the file
and the first problem (the released training code loaded with ``strict=False``, which hides
such mistakes).
"""
from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from mmn.classes import ma52_classes
from mmn.model import MMN, MMNConfig
from mmn.preprocess import CLIP_LEN, check_modality
from pose.skeleton_layout import LAYOUTS, SkeletonLayout, layout_for_joints
from pose.video import sha256_file

PROJECT_FORMAT = "mmn-checkpoint"
PROJECT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded; the message names the file and the problem."""


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a published checkpoint comes from and what it expects.

    ``sha256`` is None where the authors publish no checksum and none could be measured here
    (this project cannot reach their drive); :func:`verify_sha256` then reports the digest so
    a user can pin it.
    """

    name: str
    source: str
    file_hint: str
    dataset: str
    layout: str
    modality: str
    num_classes: int
    sha256: str | None
    paper_top1: float


_AUTHORS_DRIVE = "https://drive.google.com/drive/folders/15yubRV4BOQ18QqFNbB2w6ui30S_UtM7W"
PRETRAINED: dict[str, PretrainedWeights] = {
    w.name: w for w in (
        PretrainedWeights("mmn_ma52_joint", _AUTHORS_DRIVE, "MA52 joint (MA52_J)", "ma52", "ma52_44",
                          "joint", 52, None, 61.33),
        PretrainedWeights("mmn_ma52_bone", _AUTHORS_DRIVE, "MA52 bone (MA52_B)", "ma52", "ma52_44",
                          "bone", 52, None, 57.50),
        PretrainedWeights("mmn_imigue_joint", _AUTHORS_DRIVE, "iMiGUE joint (iMiGUE_J)", "imigue",
                          "imigue_22", "joint", 32, None, 59.84),
        PretrainedWeights("mmn_imigue_bone", _AUTHORS_DRIVE, "iMiGUE bone (iMiGUE_B)", "imigue",
                          "imigue_22", "bone", 32, None, 54.56),
    )
}


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of the whole file (to pin a downloaded checkpoint)."""
    return sha256_file(path)


def verify_sha256(path: str | os.PathLike, expected: str | None) -> str:
    """Return the file's sha256; raise :class:`CheckpointError` if ``expected`` is given and differs."""
    digest = sha256_of(path)
    if expected is not None and digest.lower() != expected.lower():
        raise CheckpointError(f"{path}: sha256 {digest} does not match the expected {expected}")
    return digest


def _read(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights only" in str(e).lower() or "weights_only" in str(e).lower():
            raise CheckpointError(
                f"{path}: refused to load — the file holds pickled objects other than tensors and "
                f"plain containers, which could run code ({first}). Only state_dict checkpoints are "
                f"accepted.") from None
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({first})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: truncated or not a torch checkpoint ({msg})") from None


def _strip_prefix(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise TypeError(f"entry {key!r} is not a named tensor")
        out[key.removeprefix("module.")] = value
    return out


_BLOCK_KEY = re.compile(r"^MFM\.(\d+)\.blocks\.(\d+)\.")


def infer_config(state: Mapping[str, torch.Tensor]) -> MMNConfig:
    """The :class:`MMNConfig` a released state dict was made with, from its tensor shapes."""
    for key in ("STPE", "head.weight", "projection.0.weight"):
        if key not in state:
            raise KeyError(f"missing key {key!r}: not an MMN state dict")
    channels, num_joints = state["STPE"].shape
    num_classes = state["head.weight"].shape[0]
    in_channels = state["projection.0.weight"].shape[1]
    blocks: dict[int, int] = {}
    for key in state:
        if m := _BLOCK_KEY.match(key):
            s, b = int(m.group(1)), int(m.group(2))
            blocks[s] = max(blocks.get(s, 0), b + 1)
    depths = tuple(blocks.get(s, 0) for s in range(4))
    kwargs: dict[str, Any] = dict(num_joints=int(num_joints), num_classes=int(num_classes),
                                  in_channels=int(in_channels), channels=int(channels), depths=depths)
    gconv = state.get("MFM.0.blocks.0.gconv")
    if gconv is not None:
        kwargs["num_heads"] = int(gconv.shape[0])
    fc1 = state.get("MFM.0.blocks.0.mlp.fc1.weight")
    if fc1 is not None:
        kwargs["mlp_ratio"] = int(fc1.shape[0]) // int(channels)
    return MMNConfig(**kwargs)


def _check_keys(path: Path, model: MMN, state: Mapping[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s), first {missing[0]!r}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), first {unexpected[0]!r}")
    if misshaped:
        k = misshaped[0]
        problems.append(f"{len(misshaped)} mis-shaped key(s), first {k!r}: file "
                        f"{tuple(state[k].shape)} vs model {tuple(expected[k].shape)}")
    if problems:
        raise CheckpointError(f"{path}: does not match MMN ({'; '.join(problems)})")


def default_meta(cfg: MMNConfig, modality: str, source: str) -> dict[str, Any]:
    """Metadata for a released checkpoint, which records none: inferred from its shapes."""
    layout = layout_for_joints(cfg.num_joints)
    if layout.name == "ma52_44" and cfg.num_classes == 52:
        dataset, class_names = "ma52", [c.name for c in ma52_classes()]
    elif layout.name == "imigue_22" and cfg.num_classes == 32:
        dataset, class_names = "imigue", [f"class_{i}" for i in range(32)]
    else:
        dataset, class_names = "unknown", [f"class_{i}" for i in range(cfg.num_classes)]
    return {
        "model": cfg.to_dict(),
        "dataset": dataset,
        "layout": layout.to_dict(),
        "modality": modality,
        "class_names": class_names,
        "preprocessing": {"clip_len": CLIP_LEN, "centre_joint": layout.centre_joint, "scale": "minmax"},
        "source": source,
    }


def load_official(path: str | os.PathLike, modality: str | None = None,
                  device: str | torch.device = "cpu") -> MMN:
    """Load an MMN checkpoint — released (plain state dict) or the project's own — strictly.

    Returns the model in eval mode on ``device`` with ``model.pretrained_cfg`` holding the
    metadata (see module docstring) plus ``file`` and ``sha256``. ``modality`` overrides or
    supplies the modality (released files do not record it; default ``"joint"``).
    Raises :class:`CheckpointError` naming the file and the first problem.
    """
    path = Path(path)
    obj = _read(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a state dict, found {type(obj).__name__}")

    if obj.get("format") == PROJECT_FORMAT:
        if obj.get("version") != PROJECT_VERSION:
            raise CheckpointError(f"{path}: checkpoint format version {obj.get('version')!r} is not "
                                  f"supported (this code reads version {PROJECT_VERSION})")
        meta = dict(obj.get("meta") or {})
        try:
            state = _strip_prefix(obj["state_dict"])
            model_cfg = dict(meta["model"])
            model_cfg["depths"] = tuple(model_cfg["depths"])
            cfg = MMNConfig(**model_cfg)
        except (KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: malformed project checkpoint ({e})") from None
    else:
        try:
            state = _strip_prefix(obj)
            cfg = infer_config(state)
            meta = default_meta(cfg, modality or "joint", source="released state dict")
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: not an MMN checkpoint ({e})") from None

    if modality is not None:
        meta["modality"] = modality
    check_modality(meta.get("modality", "joint"))
    model = MMN(cfg)
    _check_keys(path, model, state)
    model.load_state_dict(state, strict=True)
    meta.update(file=path.name, sha256=sha256_of(path))
    model.pretrained_cfg = meta
    return model.to(device).eval()


def layout_of(model: MMN) -> SkeletonLayout:
    """The skeleton layout recorded in a loaded model's metadata (or inferred from its joints)."""
    spec = getattr(model, "pretrained_cfg", {}).get("layout")
    if spec is None:
        return layout_for_joints(model.cfg.num_joints)
    if spec.get("name") in LAYOUTS and LAYOUTS[spec["name"]].to_dict() == spec:
        return LAYOUTS[spec["name"]]
    return SkeletonLayout.from_dict(spec)


def save_checkpoint(path: str | os.PathLike, model: MMN, *, dataset: str, layout: SkeletonLayout,
                    modality: str, class_names: list[str], extra: Mapping[str, Any] | None = None) -> Path:
    """Write a project checkpoint atomically (temporary file, then rename). Returns the path."""
    if len(class_names) != model.cfg.num_classes:
        raise ValueError(f"{len(class_names)} class names for a {model.cfg.num_classes}-class model")
    if layout.num_joints != model.cfg.num_joints:
        raise ValueError(f"layout {layout.name} has {layout.num_joints} joints, model {model.cfg.num_joints}")
    meta = {
        "model": model.cfg.to_dict(),
        "dataset": dataset,
        "layout": layout.to_dict(),
        "modality": check_modality(modality),
        "class_names": list(class_names),
        "preprocessing": {"clip_len": CLIP_LEN, "centre_joint": layout.centre_joint, "scale": "minmax"},
        **dict(extra or {}),
    }
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save({"format": PROJECT_FORMAT, "version": PROJECT_VERSION, "meta": meta,
                    "state_dict": state}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
