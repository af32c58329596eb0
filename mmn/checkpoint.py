"""Loading and saving MMN checkpoints — one door for the authors' files and the project's own.

Two on-disk forms, both read with ``torch.load(weights_only=True)`` so that no pickled code
ever runs:

- **released** (the MMN authors' Google Drive files): a plain ``OrderedDict`` of tensors,
  keys optionally prefixed ``module.``. Joints, classes, channels and depths are inferred from
  the shapes; the layout from the joint count; the modality is not recorded in the file, so
  the caller says it (default ``"joint"``).
- **project**: ``{"format": "mmn-checkpoint", "version": 2, "meta": {...}, "state_dict": {...}}``
  where ``meta`` is :meth:`CheckpointMeta.to_dict`: plain data with ``model`` (an
  :class:`MMNConfig` dict), ``taxonomy`` (a :class:`~core.taxonomy.Taxonomy` dict), ``layout``
  (a :class:`~core.layouts.SkeletonLayout` dict), ``modality``, ``clip_len``, ``source`` and
  free-form ``provenance`` (epoch, metrics). Version 1 files (``dataset`` and ``class_names``
  instead of ``taxonomy``) are still read.

Every load returns a :class:`CheckpointMeta`, frozen and typed, kept on the model as
``model.meta``. A released state dict records no taxonomy: it is recognised only by the
shapes of the two releases (44 joints × 52 classes → MA-52, 22 × 32 → iMiGUE); any other
shape is refused, since its class names would be made up.

Every load is strict: a missing, unexpected or mis-shaped key is an error that names the file
and the first problem (the released training code loaded with ``strict=False``, which hides
such mistakes).
"""
from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from core.atomic import atomic_path
from core.hashing import sha256_file
from core.layouts import LAYOUTS, SkeletonLayout, layout_for_joints
from core.taxonomy import IMIGUE, MA52, Taxonomy, builtin_taxonomy
from mmn.model import MMN, MMNConfig
from mmn.preprocess import CLIP_LEN, check_modality

__all__ = ["MAX_CLIP_LEN", "CheckpointError", "CheckpointMeta", "PRETRAINED", "PretrainedWeights",
           "check_model_bounds", "infer_config", "load_official", "nonfinite_weights", "save_checkpoint", "sha256_of",
           "verify_sha256"]

PROJECT_FORMAT = "mmn-checkpoint"
PROJECT_VERSION = 2
READABLE_VERSIONS = (1, 2)
RELEASED_SOURCE = "released state dict"
# the released checkpoints are recognised by shape: (joints, classes) → their taxonomy
RELEASED_TAXONOMIES: dict[tuple[int, int], Taxonomy] = {(44, MA52.num_classes): MA52, (22, IMIGUE.num_classes): IMIGUE}


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
    except (KeyboardInterrupt, MemoryError):
        raise
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
    except Exception as e:  # a text or other non-torch file makes the unpickler fail in any way
        raise CheckpointError(f"{path}: not a torch checkpoint ({type(e).__name__} while reading it)") from None


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


def key_problems(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], ignore_prefix: str = "",
                 what: str = "") -> list[str]:
    """How a file's ``state`` fails to fit a model's ``expected`` state dict: missing,
    unexpected and mis-shaped keys (each with the first example), ignoring keys that start
    with ``ignore_prefix`` (when given); ``what`` qualifies the keys in the messages."""
    def kept(k: str) -> bool:
        return not (ignore_prefix and k.startswith(ignore_prefix))

    missing = [k for k in expected if kept(k) and k not in state]
    unexpected = [k for k in state if kept(k) and k not in expected]
    misshaped = [k for k in expected if kept(k) and k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing {what}key(s), first {missing[0]!r}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected {what}key(s), first {unexpected[0]!r}")
    if misshaped:
        k = misshaped[0]
        problems.append(f"{len(misshaped)} mis-shaped {what}key(s), first {k!r}: file "
                        f"{tuple(state[k].shape)} vs model {tuple(expected[k].shape)}")
    return problems


# Bounds on what checkpoint metadata may ask for, far above any real MMN (the release: 96
# channels, depths 3·4, 4 heads, kernel 3, MLP ratio 2, 64 frames), so a file cannot make the
# loader allocate gigabytes or build thousands of blocks before its tensors are compared.
MAX_CLIP_LEN = 1024
_MODEL_BOUNDS = {"num_joints": 1024, "num_classes": 100_000, "in_channels": 64, "channels": 2048, "num_heads": 64,
                 "kernel_size": 31, "mlp_ratio": 16}
_MAX_DEPTH, _STAGES = 64, 4


def check_model_bounds(cfg: MMNConfig) -> None:
    """Raise ValueError unless every size in ``cfg`` is an integer within the loader's bounds."""
    for name, bound in _MODEL_BOUNDS.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bound:
            raise ValueError(f"model {name} must be an integer 1..{bound}, got {str(value)[:40]!r}")
    depths = cfg.depths
    if len(depths) != _STAGES or any(isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= _MAX_DEPTH
                                     for d in depths):
        raise ValueError(f"model depths must be {_STAGES} integers 0..{_MAX_DEPTH}, got {str(depths)[:60]}")
    if cfg.channels % cfg.num_heads or cfg.channels % 2:
        raise ValueError(f"model channels ({cfg.channels}) must be even and divisible by num_heads ({cfg.num_heads})")
    for name in ("head_drop", "drop_path", "proj_drop", "fusion_drop"):
        value = getattr(cfg, name)
        if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ValueError(f"model {name} must be a probability in [0, 1), got {str(value)[:40]!r}")


_SHAPE_FIELDS = ("num_joints", "num_classes", "in_channels", "channels", "depths", "num_heads", "mlp_ratio")


def _check_meta_fits_tensors(path: Path, meta: CheckpointMeta, state: Mapping[str, torch.Tensor]) -> None:
    """The sizes the metadata states must be those of the tensors, checked before any model is built."""
    try:
        shapes = infer_config(state)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: not an MMN checkpoint ({e})") from None
    for name in _SHAPE_FIELDS:
        stated, actual = getattr(meta.model, name), getattr(shapes, name)
        if tuple(stated) != tuple(actual) if name == "depths" else stated != actual:
            raise CheckpointError(f"{path}: the metadata says model {name} = {stated}, the tensors have {actual}")


def nonfinite_weights(state: Mapping[str, Any]) -> str | None:
    """None when every floating-point tensor of ``state`` is finite, else a summary: how many
    values and tensors are NaN/infinite, and the first such key (a diverged training's weights
    give NaN for every clip, so they are neither saved nor loaded)."""
    bad_keys, bad_values = [], 0
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            n = int((~torch.isfinite(value.detach())).sum())
            if n:
                bad_keys.append(key)
                bad_values += n
    if not bad_keys:
        return None
    return f"{bad_values} NaN/infinite value(s) in {len(bad_keys)} tensor(s), first {bad_keys[0]!r}"


def _check_keys(path: Path, model: MMN, state: Mapping[str, torch.Tensor]) -> None:
    problems = key_problems(state, model.state_dict())
    if problems:
        raise CheckpointError(f"{path}: does not match MMN ({'; '.join(problems)})")


@dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint says about itself (and, once loaded, which file it was).

    ``clip_len`` is the number of frames each clip is resampled to, as the model was trained;
    ``source`` says where the weights come from (``"released state dict"``, ``"mmn.train"``);
    ``provenance`` holds plain extra facts (epoch, best metric, config name).
    """

    model: MMNConfig
    taxonomy: Taxonomy
    layout: SkeletonLayout
    modality: str = "joint"
    clip_len: int = CLIP_LEN
    source: str = RELEASED_SOURCE
    file: str | None = None
    sha256: str | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_model_bounds(self.model)
        check_modality(self.modality)
        if self.taxonomy.num_classes != self.model.num_classes:
            raise ValueError(f"taxonomy {self.taxonomy.name!r} has {self.taxonomy.num_classes} classes, "
                             f"the model {self.model.num_classes}")
        if self.layout.num_joints != self.model.num_joints:
            raise ValueError(f"layout {self.layout.name} has {self.layout.num_joints} joints, "
                             f"the model {self.model.num_joints}")
        if not 1 <= self.clip_len <= MAX_CLIP_LEN:
            raise ValueError(f"clip_len must be 1..{MAX_CLIP_LEN} frames, got {self.clip_len}")

    @property
    def dataset(self) -> str:
        """The taxonomy's name (``"ma52"``, ``"imigue"`` or a user's)."""
        return self.taxonomy.name

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the file (``file`` and ``sha256`` describe a file, so are not stored)."""
        return {"model": self.model.to_dict(), "taxonomy": self.taxonomy.to_dict(), "layout": self.layout.to_dict(),
                "modality": self.modality, "clip_len": self.clip_len, "source": self.source,
                "provenance": dict(self.provenance)}

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any], version: int = PROJECT_VERSION) -> CheckpointMeta:
        """Inverse of :meth:`to_dict`; also reads version 1 metadata."""
        model_cfg = dict(meta["model"])
        model_cfg["depths"] = tuple(model_cfg["depths"])
        cfg = MMNConfig(**model_cfg)
        layout = _layout_from_spec(meta["layout"])
        if version == 1:
            names = list(meta["class_names"])
            builtin = builtin_taxonomy(str(meta.get("dataset", "")))
            taxonomy = (builtin.with_names(names) if builtin is not None and len(names) == builtin.num_classes
                        else Taxonomy.from_class_names(names, str(meta.get("dataset") or "custom")))
            known = {"model", "dataset", "layout", "modality", "class_names", "preprocessing", "source"}
            return cls(cfg, taxonomy, layout, str(meta.get("modality", "joint")),
                       int(meta.get("preprocessing", {}).get("clip_len", CLIP_LEN)),
                       str(meta.get("source", "mmn.train")),
                       provenance={k: v for k, v in meta.items() if k not in known})
        return cls(cfg, Taxonomy.from_dict(meta["taxonomy"]), layout, str(meta["modality"]), int(meta["clip_len"]),
                   str(meta["source"]), provenance=dict(meta.get("provenance") or {}))


def _layout_from_spec(spec: Mapping[str, Any]) -> SkeletonLayout:
    """A shipped layout when the spec equals it, else the spec's own layout."""
    if spec.get("name") in LAYOUTS and LAYOUTS[spec["name"]].to_dict() == dict(spec):
        return LAYOUTS[spec["name"]]
    return SkeletonLayout.from_dict(spec)


def released_meta(cfg: MMNConfig, modality: str, path: Path) -> CheckpointMeta:
    """Metadata of a released state dict, which records none: its taxonomy and layout are
    those of the release with its shape. Raises :class:`CheckpointError` for any other shape."""
    taxonomy = RELEASED_TAXONOMIES.get((cfg.num_joints, cfg.num_classes))
    if taxonomy is None:
        known = ", ".join(f"{t.name}: {v} joints × {k} classes" for (v, k), t in RELEASED_TAXONOMIES.items())
        raise CheckpointError(
            f"{path}: a plain state dict with {cfg.num_joints} joints and {cfg.num_classes} classes carries no "
            f"class list, and is not shaped like a released checkpoint ({known}). Save it as a project "
            f"checkpoint with its taxonomy (mmn.save_checkpoint, or train with mmn.train).")
    return CheckpointMeta(cfg, taxonomy, layout_for_joints(cfg.num_joints), modality, CLIP_LEN, RELEASED_SOURCE)


def load_official(path: str | os.PathLike, modality: str | None = None,
                  device: str | torch.device = "cpu") -> MMN:
    """Load an MMN checkpoint — released (plain state dict) or the project's own — strictly.

    Returns the model in eval mode on ``device``, its :class:`CheckpointMeta` (with ``file``
    and ``sha256``) as ``model.meta``. ``modality`` overrides or supplies the modality
    (released files do not record it; default ``"joint"``).
    Raises :class:`CheckpointError` naming the file and the first problem.
    """
    path = Path(path)
    obj = _read(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a state dict, found {type(obj).__name__}")

    if obj.get("format") == PROJECT_FORMAT:
        version = obj.get("version")
        if version not in READABLE_VERSIONS:
            raise CheckpointError(f"{path}: checkpoint format version {version!r} is not supported "
                                  f"(this code reads versions {', '.join(map(str, READABLE_VERSIONS))})")
        try:
            state = _strip_prefix(obj["state_dict"])
            meta = CheckpointMeta.from_dict(obj.get("meta") or {}, version)
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: malformed project checkpoint ({type(e).__name__}: {e})") from None
    else:
        try:
            state = _strip_prefix(obj)
            cfg = infer_config(state)
            check_model_bounds(cfg)
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: not an MMN checkpoint ({e})") from None
        meta = released_meta(cfg, modality or "joint", path)

    try:
        meta = replace(meta, modality=modality or meta.modality, file=path.name, sha256=sha256_of(path))
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    _check_meta_fits_tensors(path, meta, state)
    if problem := nonfinite_weights(state):
        raise CheckpointError(f"{path}: its weights hold {problem} (a diverged training?); they would give NaN "
                              f"for every clip")
    model = MMN(meta.model)
    _check_keys(path, model, state)
    model.load_state_dict(state, strict=True)
    model.meta = meta
    return model.to(device).eval()


def save_checkpoint(path: str | os.PathLike, model: MMN, *, taxonomy: Taxonomy, layout: SkeletonLayout,
                    modality: str, clip_len: int = CLIP_LEN, source: str = "mmn.train",
                    provenance: Mapping[str, Any] | None = None) -> Path:
    """Write a project checkpoint atomically, its taxonomy and clip length with it. Returns the path.
    Weights holding NaN or infinity are a :class:`CheckpointError` (nothing is written)."""
    meta = CheckpointMeta(model.cfg, taxonomy, layout, modality, clip_len, source, provenance=dict(provenance or {}))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if problem := nonfinite_weights(state):
        raise CheckpointError(f"{path}: not written: the model's weights hold {problem}")
    with atomic_path(path) as tmp:
        torch.save({"format": PROJECT_FORMAT, "version": PROJECT_VERSION, "meta": meta.to_dict(),
                    "state_dict": state}, tmp)
    return Path(path)
