"""MMN, the Motion-guided Modulation Network for skeleton micro-action recognition.

Public entry points: :func:`load_official` (released or project checkpoints, strict and
weights-only), the factories :func:`mmn_ma52` / :func:`mmn_imigue`, :class:`MMN` itself,
:func:`preprocess_clip` (the authors' test-time preprocessing) and :class:`Recognizer`.
"""
from mmn.checkpoint import PRETRAINED, CheckpointError, load_official, save_checkpoint
from mmn.inference import Prediction, Recognizer
from mmn.model import MAP_NAMES, MMN, MMNConfig, count_parameters, mmn_imigue, mmn_ma52
from mmn.preprocess import preprocess_clip

__all__ = [
    "MMN", "MMNConfig", "MAP_NAMES", "PRETRAINED", "CheckpointError", "Prediction", "Recognizer",
    "count_parameters", "load_official", "mmn_imigue", "mmn_ma52", "preprocess_clip",
    "save_checkpoint",
]
