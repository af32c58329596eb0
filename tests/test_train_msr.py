"""Real training, real data: MMN learns MSR Action3D (2D, cross-subject) on the CPU.

The full ``configs/msr_action3d_joint.py`` schedule is the README's figure; CI runs a shorter
one (SCHEDULE) and holds it to a threshold measured for that schedule, with a margin for seeds
and thread timing. Chance is 5%; a ridge classifier on per-joint mean/std features gets ~70%.
"""
import json

import numpy as np
import pytest

from mmn import load_official
from mmn import test as test_cli
from mmn import train as train_cli
from tests.data import ROOT

# 8 epochs of batch 8 (288 updates), 1 warm-up epoch, seed 1 on 2 threads: about 3 minutes on 2
# idle AMD EPYC cores, and the same Top-1 bit for bit on the same machine (test_train_determinism).
SCHEDULE = ["seed=1", "train.epochs=8", "train.batch_size=8", "train.warmup_epochs=1", "train.val_interval=8",
            "checkpoint.interval=8"]
# Measured at this schedule (docs/training.md, "The CI test"), Top-1 for seeds 1/2/3: 44.36 / 50.91
# / 55.27 % on 2 threads, 43.27 / 50.55 / 54.91 % on 1. Rounding alone (1 thread against 2, as
# another CPU rounds differently) moved a seed by at most 1.09 points; the seeds differ by 11. So
# the test pins seed 1 and holds it to its own 44.36 % less twice the rounding effect: a drop of
# 2.4 points or more fails, a CPU that rounds differently passes.
MIN_TOP1 = 42.0  # percent; chance is 5 %


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_msr_action3d_short_schedule_learns(tmp_path, msr_pkl):
    work = tmp_path / "msr"
    config = ROOT / "configs" / "msr_action3d_joint.py"
    assert train_cli.main([str(config), "--work-dir", str(work), "--device", "cpu",
                           "--threads", "2", "--cfg-options", f"data.path={msr_pkl}", *SCHEDULE]) == 0
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
