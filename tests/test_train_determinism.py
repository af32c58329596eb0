"""One seed, one run: ``seed`` fixes the initial weights, the data order, the augmentation and
drop-path, so two runs with the same seed and thread count end with the same weights bit for bit
(docs/training.md, "Determinism"). Before the fix the initial weights were drawn from whatever
state torch's generator was in, and the README's MSR figure could not be reproduced.
"""
import pickle
from pathlib import Path

import pytest
import torch

from core.safe_pickle import load_data_pickle
from mmn.training.engine import build_runner, load_config
from tests.data import ROOT

MSR_CONFIG = ROOT / "configs" / "msr_action3d_joint.py"


@pytest.fixture(scope="module")
def msr_subset(msr_pkl, tmp_path_factory) -> Path:
    """16 training and 8 validation clips of the real MSR Action3D file."""
    data = load_data_pickle(msr_pkl)
    train, val = data["split"]["xsub_train"][::18][:16], data["split"]["xsub_val"][::34][:8]
    keep = set(train) | set(val)
    subset = dict(split=dict(xsub_train=train, xsub_val=val), label_names=list(data["label_names"]),
                  annotations=[a for a in data["annotations"] if a["frame_dir"] in keep])
    path = tmp_path_factory.mktemp("msr") / "subset.pkl"
    path.write_bytes(pickle.dumps(subset))
    return path


def _config(data: Path, seed: int):
    return load_config(MSR_CONFIG, {"seed": seed, "train.epochs": 1, "train.batch_size": 4,
                                    "train.warmup_epochs": 0, "train.val_interval": 1,
                                    "checkpoint.interval": 1, "loader.num_workers": 0}, data=data)


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _initial_weights(data: Path, seed: int, work: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(torch.randint(0, 2**31, ()).item() + 1)  # the caller's generator state must not matter
    return _snapshot(build_runner(_config(data, seed), work, device="cpu").model)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_seed_fixes_the_initial_weights(msr_subset, tmp_path):
    first = _initial_weights(msr_subset, 1, tmp_path / "a")
    assert _same(first, _initial_weights(msr_subset, 1, tmp_path / "b"))
    assert not _same(first, _initial_weights(msr_subset, 2, tmp_path / "c"))


def test_same_seed_and_threads_give_the_same_weights_after_training(msr_subset, tmp_path):
    """Four updates with the config's augmentation (p = 0.5) and drop-path, twice, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trained = []
        for run in ("a", "b"):
            runner = build_runner(_config(msr_subset, 1), tmp_path / run, device="cpu")
            before = _snapshot(runner.model)
            runner.train()
            after = _snapshot(runner.model)
            assert not _same(before, after)  # it did train
            trained.append(after)
    finally:
        torch.set_num_threads(threads)
    assert _same(*trained)
