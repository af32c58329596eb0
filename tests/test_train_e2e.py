"""End to end on a tiny dataset in the authors' release format, made from the golden clips:
train → resume → test → 2S ensemble → challenge submission, and the trained checkpoint loading
everywhere a released one does. Also: ``mmn.test`` reproduces the golden logits through the
dataset path, and ``torchrun --nproc-per-node 2`` trains on CPU (gloo)."""
import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from core.taxonomy import MA52
from mmn import Recognizer, load_official
from mmn import classify as classify_cli
from mmn import test as test_cli
from mmn import train as train_cli
from tests.data import ROOT
from tests.test_datasets import write_authors_split

LABELS = [0, 7, 14, 24, 33, 45]  # six actions from six body levels
TINY = ["train.epochs=2", "train.batch_size=3", "train.warmup_epochs=1", "train.val_interval=1",
        "loader.num_workers=0", "loader.val_batch_size=6", "log_interval=1", "checkpoint.max_keep=3"]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory, golden_raw):
    root = tmp_path_factory.mktemp("ma52_tiny")
    for split in ("train", "val", "test"):
        write_authors_split(root, split, golden_raw, LABELS)
    return root


@pytest.fixture(scope="module")
def trained(tiny_root, tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    torch.set_num_threads(2)
    rc = train_cli.main([str(ROOT / "configs/ma52_joint.py"), "--work-dir", str(work), "--device", "cpu",
                         "--cfg-options", f"data.root={tiny_root}", *TINY])
    assert rc == 0
    return work


@pytest.mark.slow  # shares a 45-s training run (the module's `trained` fixture)
def test_training_writes_checkpoints_logs_and_tensorboard(trained):
    for name in ("mmn_best.pt", "mmn_last.pt", "epoch_1.pth", "epoch_2.pth", "ma52_joint.py"):
        assert (trained / name).is_file(), name
    logs = list(trained.glob("*/*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert "Epoch(train) [2][2/2]" in text and "Epoch(val) [2][1/1]" in text
    assert "eval/top1" in text and "eval/f1_mean" in text and "eval/body_top1" in text
    assert "TemporalJitter" in text and "RandomRotation" in text and "AxisMask" in text
    assert list(trained.glob("*/vis_data/events.out.tfevents.*")), "no TensorBoard scalars"
    scalars = [json.loads(l) for l in next(trained.glob("*/vis_data/scalars.json")).read_text().splitlines()]
    assert any("lr" in s for s in scalars) and any("eval/top1" in s for s in scalars)


@pytest.mark.slow  # shares a 45-s training run (the module's `trained` fixture)
def test_resume_checkpoints_are_weights_only_loadable(trained):
    for p in trained.glob("epoch_*.pth"):
        assert torch.serialization.get_unsafe_globals_in_checkpoint(str(p)) == []
        ckpt = torch.load(p, weights_only=True)
        assert {"state_dict", "optimizer", "param_schedulers", "message_hub", "meta"} <= set(ckpt)


@pytest.mark.slow  # shares a 45-s training run (the module's `trained` fixture)
def test_trained_checkpoint_loads_everywhere_a_released_one_does(trained, golden_raw, tmp_path, capsys):
    model = load_official(trained / "mmn_best.pt")
    meta = model.meta
    assert meta.dataset == "ma52" and meta.modality == "joint" and meta.layout.name == "ma52_44"
    assert list(meta.taxonomy.class_names) == [c.name for c in MA52.classes] and meta.taxonomy == MA52
    assert meta.provenance["epoch"] in (1, 2) and "eval/top1" in meta.provenance["val_metrics"]
    # the classify CLI and the Recognizer (pipeline / app entry point) read it
    rec = Recognizer.from_checkpoints(trained / "mmn_last.pt", device="cpu")
    pred = rec.predict(golden_raw)
    assert pred.logits.shape == (6, 52) and np.isfinite(pred.logits).all()
    np.save(tmp_path / "clip.npy", golden_raw[0])
    assert classify_cli.main(["--weights", str(trained / "mmn_last.pt"), "--device", "cpu", "--json",
                              str(tmp_path / "clip.npy")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    np.testing.assert_allclose(out["logits"], pred.logits[0], atol=1e-4)


@pytest.mark.slow  # shares a 45-s training run (the module's `trained` fixture)
def test_resume_continues_from_the_last_epoch(trained, tiny_root, tmp_path):
    trained = Path(shutil.copytree(trained, tmp_path / "work"))  # the module's run stays as it was
    rc = train_cli.main([str(ROOT / "configs/ma52_joint.py"), "--work-dir", str(trained), "--device", "cpu",
                         "--resume", "--cfg-options", f"data.root={tiny_root}", *TINY, "train.epochs=3"])
    assert rc == 0
    log = sorted(trained.glob("*/*.log"))[-1].read_text()
    assert "resumed epoch: 2, iter: 4" in log and "Epoch(train) [3][2/2]" in log
    assert "Epoch(train) [1]" not in log
    assert (trained / "epoch_3.pth").is_file()
    assert load_official(trained / "mmn_last.pt").meta.provenance["epoch"] == 3


@pytest.mark.slow  # shares a 45-s training run (the module's `trained` fixture)
def test_test_cli_metrics_ensemble_and_submission(trained, tiny_root, tmp_path, golden_weights, capsys):
    bone_dir, out = tmp_path / "bone", tmp_path / "2s"
    # bone stream: the golden checkpoint (released format, so the config names its modality)
    assert test_cli.main([str(ROOT / "configs/ma52_bone.py"), "--weights", str(golden_weights), "--device", "cpu",
                          "--out-dir", str(bone_dir), "--cfg-options", f"data.root={tiny_root}"]) == 0
    assert test_cli.main([str(ROOT / "configs/ma52_joint.py"), "--weights", str(trained / "mmn_best.pt"),
                          "--device", "cpu", "--out-dir", str(out), "--ensemble", str(bone_dir / "logits.npz"),
                          "--submission", "--cfg-options", f"data.root={tiny_root}"]) == 0
    printed = capsys.readouterr().out
    assert "F1_mean" in printed and "2S" in printed
    z = np.load(out / "logits.npz")
    np.testing.assert_allclose(z["logits"], 0.5 * z["logits_joint"] + 0.5 * z["logits_bone"], atol=1e-6)
    assert list(z["names"]) == [f"test{i:04d}" for i in range(6)] and list(z["labels"]) == LABELS
    # the same result when the bone stream is given as a checkpoint instead of saved logits
    assert test_cli.main([str(ROOT / "configs/ma52_joint.py"), "--weights", str(trained / "mmn_best.pt"),
                          "--device", "cpu", "--out-dir", str(tmp_path / "2s_ckpt"), "--ensemble",
                          str(golden_weights), "--cfg-options", f"data.root={tiny_root}"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "2s_ckpt" / "logits.npz")["logits"], z["logits"], atol=1e-5)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["final"] == "2S" and set(metrics["metrics"]) == {"joint", "bone", "2S"}
    for key in ("top1", "top5", "body_top1", "f1_macro", "f1_micro", "body_f1_macro", "body_f1_micro", "f1_mean"):
        assert 0 <= metrics["metrics"]["2S"][key] <= 100
    assert (out / "confusion_matrix.png").stat().st_size > 10_000
    rows = list(csv.DictReader(open(out / "per_class_accuracy.csv")))
    assert len(rows) == 52 and rows[7]["clips"] == "1" and rows[1]["clips"] == "0"

    with zipfile.ZipFile(out / "prediction.zip") as zf:
        assert zf.namelist() == ["prediction.csv"]
        sub = list(csv.reader(io.StringIO(zf.read("prediction.csv").decode())))
    assert sub[0] == ["vid"] + [f"action_pred_{i}" for i in range(1, 6)] + [f"body_pred_{i}" for i in range(1, 6)]
    assert [r[0] for r in sub[1:]] == [f"test{i:04d}.mp4" for i in range(6)]
    a2b = MA52.action_to_body()
    top5 = np.argsort(-z["logits"], axis=1, kind="stable")[:, :5]
    for r, best in zip(sub[1:], top5):
        actions, bodies = [int(v) for v in r[1:6]], [int(v) for v in r[6:]]
        assert actions == list(best) and bodies == [int(a2b[a]) for a in actions]


@pytest.mark.slow  # shares a 45-s training run (the module's `trained` fixture)
def test_wrong_modality_and_bad_data_are_clear_errors(trained, tiny_root, tmp_path, capsys):
    assert test_cli.main([str(ROOT / "configs/ma52_bone.py"), "--weights", str(trained / "mmn_best.pt"),
                          "--device", "cpu", "--out-dir", str(tmp_path), "--cfg-options",
                          f"data.root={tiny_root}"]) == 2
    assert "a joint checkpoint where a bone one is needed" in capsys.readouterr().err
    assert test_cli.main([str(ROOT / "configs/ma52_joint.py"), "--weights", str(trained / "mmn_best.pt"),
                          "--device", "cpu", "--out-dir", str(tmp_path), "--cfg-options",
                          f"data.root={tmp_path}/nowhere"]) == 2
    assert "no such data file" in capsys.readouterr().err
    assert test_cli.main([str(ROOT / "configs/msr_action3d_joint.py"), "--weights", str(trained / "mmn_best.pt"),
                          "--device", "cpu", "--out-dir", str(tmp_path)]) == 2
    assert "the config expects 20 / 20" in capsys.readouterr().err


def test_golden_checkpoint_reproduces_the_authors_logits_through_the_dataset_path(
        tiny_root, tmp_path, golden, golden_weights):
    assert test_cli.main([str(ROOT / "configs/ma52_joint.py"), "--weights", str(golden_weights), "--device", "cpu",
                          "--out-dir", str(tmp_path), "--cfg-options", f"data.root={tiny_root}"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "logits.npz")["logits"], golden["logits_joint"], atol=1e-4)


def test_unlabelled_split_still_gives_a_submission(tmp_path, golden_raw, golden_weights):
    anns = [dict(frame_dir=f"test{i:04d}", keypoint=c[None]) for i, c in enumerate(golden_raw)]
    import pickle
    with open(tmp_path / "test_data.pkl", "wb") as f:
        pickle.dump(dict(annotations=anns), f)
    out = tmp_path / "out"
    assert test_cli.main([str(ROOT / "configs/ma52_joint.py"), "--weights", str(golden_weights), "--device", "cpu",
                          "--out-dir", str(out), "--submission", "--cfg-options", f"data.root={tmp_path}"]) == 0
    assert (out / "prediction.zip").is_file() and "metrics" not in json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_one_epoch(tiny_root, tmp_path):
    work = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
           "-m", "mmn.train", str(ROOT / "configs/ma52_joint.py"), "--work-dir", str(work), "--device", "cpu",
           "--threads", "1", "--cfg-options", f"data.root={tiny_root}", *TINY, "train.epochs=1"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = next(work.glob("*/*.log")).read_text()
    assert "Distributed launcher: pytorch" in log and "2 process(es)" in log
    assert "(1 iterations/epoch per rank)" in log  # 6 clips, 2 ranks, batch 3
    assert "Epoch(val) [1][1/1]" in log and "eval/top1" in log
    assert load_official(work / "mmn_last.pt").meta.provenance["epoch"] == 1
