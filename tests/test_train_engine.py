"""mmengine glue, piece by piece: schedule, loss, metric, resume-checkpoint safety, config."""
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import HistoryBuffer
from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR

from core.taxonomy import MA52
from mmn.model import MMNConfig
from mmn.training.engine import (
    ClassificationMetric,
    MMNClassifier,
    PlainResumeStateHook,
    load_config,
    param_schedulers,
    resume_checkpoint,
    training_settings,
)
from mmn.training.metrics import classification_report
from tests.data import ROOT

CONFIGS = ROOT / "configs"


def _lr_curve(t, iters_per_epoch=10):
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=t["lr"])
    scheds = []
    for s in param_schedulers(t):
        s = dict(s)
        cls = {"LinearLR": LinearLR, "CosineAnnealingLR": CosineAnnealingLR}[s.pop("type")]
        s.pop("convert_to_iter_based")
        scheds.append(cls.build_iter_from_epoch(opt, epoch_length=iters_per_epoch, **s))
    lrs = []
    for _ in range(t["epochs"] * iters_per_epoch):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        for s in scheds:
            s.step()
    return np.array(lrs)


def test_released_schedule_warms_up_from_1e7_then_cosine_to_1e5():
    t = training_settings(load_config(CONFIGS / "ma52_joint.py"))
    assert (t["epochs"], t["batch_size"], t["warmup_epochs"], t["lr"], t["min_lr"], t["weight_decay"],
            t["label_smoothing"]) == (120, 64, 20, 1e-3, 1e-5, 0.1, 0.1)
    lrs = _lr_curve(t)
    assert lrs[0] == pytest.approx(1e-7, rel=1e-3)
    assert np.all(np.diff(lrs[:200]) > 0)                 # warm-up: 20 epochs × 10 iterations
    assert lrs[200] == pytest.approx(1e-3, rel=1e-3)      # peak right after the warm-up
    assert np.all(np.diff(lrs[200:]) <= 1e-12)            # cosine decay
    assert lrs[-1] == pytest.approx(1e-5, rel=0.05)
    mid = 200 + 500  # halfway through the cosine: (max + min) / 2
    assert lrs[mid] == pytest.approx((1e-3 + 1e-5) / 2, rel=0.01)


def test_unknown_train_option_is_an_error():
    with pytest.raises(ValueError, match="unknown train option"):
        training_settings({"train": {"epoch": 3}})


def test_loss_is_the_released_label_smoothing_cross_entropy():
    torch.manual_seed(0)
    clf = MMNClassifier(MMNConfig(num_joints=20, num_classes=20, channels=32, depths=(1, 1, 1, 1)), 0.1)
    x, t, y = torch.randn(4, 2, 64, 20, 1), torch.rand(4, 64) * 2 - 1, torch.tensor([0, 3, 19, 7])
    clf.eval()  # no dropout, so both forward passes see the same network
    out = clf(x, t, y, mode="loss")
    logits = clf(x, t, mode="tensor")
    logp = F.log_softmax(logits, dim=-1)  # the authors' LabelSmoothingCrossEntropy(0.1)
    released = (0.9 * -logp.gather(1, y[:, None])[:, 0] + 0.1 * -logp.mean(dim=-1)).mean()
    assert out["loss"].item() == pytest.approx(released.item(), rel=1e-5)
    assert out["acc"].item() == pytest.approx((logits.argmax(1) == y).float().mean().item())
    preds = clf(x, t, y, torch.arange(4), mode="predict")
    assert len(preds) == 4 and preds[2]["label"] == 19 and preds[2]["index"] == 2
    torch.testing.assert_close(preds[1]["logits"], logits[1])


def test_metric_restores_dataset_order_and_reports_percent():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(30, 52)).astype(np.float32), rng.integers(0, 52, 30)
    metric = ClassificationMetric(MA52.action_to_body())
    order = rng.permutation(30)  # as gathered from several ranks
    metric.process({}, [{"logits": logits[i], "label": int(labels[i]), "index": int(i)} for i in order])
    out = metric.compute_metrics(metric.results)
    ref = classification_report(logits, labels, MA52.action_to_body())
    for key in ("top1", "top5", "f1_macro", "f1_micro", "body_top1", "body_f1_macro", "f1_mean"):
        assert out[key] == pytest.approx(100 * ref[key])


def test_resume_state_becomes_plain_and_comes_back(tmp_path):
    hb = HistoryBuffer([0.5, 0.25], [1, 1], max_length=7)
    ckpt = {"meta": {"seed": np.int64(1), "epoch": 3},
            "message_hub": {"log_scalars": {"train/loss": hb}, "runtime_info": {"eta": np.float64(2.0)},
                            "resumed_keys": {}}}
    hook = PlainResumeStateHook()
    hook.before_save_checkpoint(None, ckpt)
    torch.save(ckpt, tmp_path / "c.pth")
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(tmp_path / "c.pth")) == []
    loaded = torch.load(tmp_path / "c.pth", weights_only=True)
    hook.after_load_checkpoint(None, loaded)
    back = loaded["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(back, HistoryBuffer) and back.max_length == 7
    np.testing.assert_allclose(back.data[0], [0.5, 0.25])
    assert back.mean() == pytest.approx(0.375)
    assert loaded["meta"]["seed"] == 1 and type(loaded["meta"]["seed"]) is int


def test_resume_refuses_files_that_need_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))
    with open(tmp_path / "epoch_1.pth", "wb") as f:
        pickle.dump({"meta": Evil()}, f)
    with pytest.raises(ValueError, match="refused to resume"):
        resume_checkpoint(tmp_path, str(tmp_path / "epoch_1.pth"))
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(ValueError, match="no checkpoint to resume from"):
        resume_checkpoint(tmp_path / "empty", True)
    assert resume_checkpoint(tmp_path, False) is None


@pytest.mark.parametrize("name", ["ma52_joint", "ma52_bone", "imigue_joint", "imigue_bone", "msr_action3d_joint"])
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / f"{name}.py")
    assert cfg.modality == name.rsplit("_", 1)[1]
    assert cfg.clip_len == 64 and cfg.model.drop_path == 0.3
    if not name.startswith("msr"):  # the released recipe, unchanged
        assert cfg.augment.p == 0.2 and cfg.augment.axis_mask and cfg.augment.block_dropout
        assert cfg.train.epochs == 120 and cfg.train.batch_size == 64


def test_config_without_dataset_keys_is_an_error(tmp_path):
    (tmp_path / "bad.py").write_text("modality = 'joint'\n")
    with pytest.raises(ValueError, match="no 'dataset'"):
        load_config(tmp_path / "bad.py")
    (tmp_path / "bad2.py").write_text("dataset='x'\nlayout='ma52_44'\nmodality='depth'\nnum_classes=2\ndata={}\n")
    with pytest.raises(ValueError, match="modality must be one of"):
        load_config(tmp_path / "bad2.py")

