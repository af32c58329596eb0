"""Real training, real data: MMN learns MSR Action3D (2D, cross-subject) on the CPU.

The full ``configs/msr_action3d_joint.py`` schedule is the README's figure; CI runs a shorter
one (SCHEDULE) and holds it to a threshold measured for that schedule, with a margin for seeds
and thread timing. Chance is 5%; a ridge classifier on per-joint mean/std features gets ~70%.
"""
import json

import numpy as np
import pytest
import torch

from mmn import load_official
from mmn import test as test_cli
from mmn import train as train_cli
from tests.data import ROOT

# 8 epochs of batch 8 (288 updates), 1 warm-up epoch: about 2 minutes on 2 idle AMD EPYC cores.
SCHEDULE = ["train.epochs=8", "train.batch_size=8", "train.warmup_epochs=1", "train.val_interval=8",
            "checkpoint.interval=8"]
MIN_TOP1 = 40.0  # percent; measured 52.7% (1 thread) and 49.5% (2 threads), seed 1: thread count alone moves it


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_msr_action3d_short_schedule_learns(tmp_path, msr_pkl):
    torch.set_num_threads(2)
    work = tmp_path / "msr"
    config = ROOT / "configs" / "msr_action3d_joint.py"
    assert train_cli.main([str(config), "--work-dir", str(work), "--device", "cpu",
                           "--cfg-options", f"data.path={msr_pkl}", *SCHEDULE]) == 0
    model = load_official(work / "mmn_best.pt")
    meta = model.meta
    top1 = meta.provenance["val_metrics"]["eval/top1"]
    assert top1 >= MIN_TOP1, f"val Top-1 {top1:.2f}% after the CI schedule (expected ≥ {MIN_TOP1}%)"
    assert meta.taxonomy.class_names[0] == "high arm wave" and meta.layout.name == "msr_action3d_20"

    # mmn.test on the saved checkpoint gives the number the trainer logged
    out = tmp_path / "test"
    assert test_cli.main([str(config), "--weights", str(work / "mmn_best.pt"), "--split", "val", "--device", "cpu",
                          "--out-dir", str(out), "--cfg-options", f"data.path={msr_pkl}"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]["joint"]
    assert metrics["top1"] == pytest.approx(top1, abs=1e-6)
    logits = np.load(out / "logits.npz")["logits"]
    assert logits.shape == (275, 20)
