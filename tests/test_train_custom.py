"""Training on a user's own coding scheme (``configs/custom_joint.py``): a pyskl file made from
the real golden MA-52 clips under three made-up class names, ``--data`` / ``--epochs`` /
``--init-from``, and the trained checkpoint labelling clips with those names."""
import json
import pickle

import numpy as np
import pytest
import torch

from core.layouts import LAYOUTS, MA52_44
from core.taxonomy import MA52, Taxonomy
from mmn import MMN, MMNConfig, Recognizer, load_official, save_checkpoint
from mmn import test as test_cli
from mmn import train as train_cli
from mmn.checkpoint import CheckpointError, sha256_of
from mmn.training.engine import HEAD_PREFIX, init_from_checkpoint, load_config
from tests.data import ROOT

CONFIG = ROOT / "configs" / "custom_joint.py"
NAMES = ["hand to face", "lean back", "nod"]
TINY = ["--cfg-options", "train.batch_size=4", "loader.num_workers=0", "loader.val_batch_size=8", "log_interval=1"]


def write_custom_pyskl(path, clips, window=24, stride=20):
    """A pyskl file as ``pipelines.build_dataset`` writes it: windows cut from the clips, clip
    pairs (0, 1), (2, 3), (4, 5) as classes 0, 1, 2; every third window goes to val."""
    anns, train, val = [], [], []
    for i, clip in enumerate(clips):
        for n, start in enumerate(range(0, len(clip) - window + 1, stride)):
            kp = clip[start:start + window].astype(np.float32)
            name = f"clip{i}_w{n}"
            anns.append(dict(frame_dir=name, label=i // 2, keypoint=kp[None], keypoint_score=np.ones((1, window, 44),
                             np.float32), total_frames=window, img_shape=(1296, 1080)))
            (val if len(anns) % 3 == 0 else train).append(name)
    with open(path, "wb") as f:
        pickle.dump(dict(split=dict(train=train, val=val), annotations=anns, label_names=list(NAMES)), f)
    return path


@pytest.fixture(scope="module")
def custom_pkl(tmp_path_factory, golden_raw):
    return write_custom_pyskl(tmp_path_factory.mktemp("custom") / "lab_scheme.pkl", golden_raw)


@pytest.fixture(scope="module")
def trained(custom_pkl, tmp_path_factory):
    work = tmp_path_factory.mktemp("work_custom")
    torch.set_num_threads(2)
    assert train_cli.main([str(CONFIG), "--data", str(custom_pkl), "--epochs", "2", "--work-dir", str(work),
                           "--device", "cpu", *TINY]) == 0
    return work


def test_num_classes_comes_from_the_data_file(custom_pkl, tmp_path):
    cfg = load_config(CONFIG, data=custom_pkl)
    assert cfg.num_classes == 3 and cfg.data.path == str(custom_pkl) and cfg.layout == "ma52_44"
    # the same through --cfg-options data.path (what mmn.test is given)
    assert load_config(CONFIG, {"data.path": str(custom_pkl)}).num_classes == 3
    with pytest.raises(ValueError, match="no data file: give --data"):
        load_config(CONFIG)
    obj = pickle.load(open(custom_pkl, "rb"))
    del obj["label_names"]
    pickle.dump(obj, open(tmp_path / "nonames.pkl", "wb"))
    with pytest.raises(ValueError, match="has none"):
        load_config(CONFIG, data=tmp_path / "nonames.pkl")
    assert load_config(CONFIG, {"num_classes": 3}, data=tmp_path / "nonames.pkl").num_classes == 3
    with pytest.raises(ValueError, match="--data takes a pyskl file"):
        load_config(ROOT / "configs" / "ma52_joint.py", data=custom_pkl)


@pytest.mark.slow
def test_trained_checkpoint_carries_the_users_taxonomy(trained, custom_pkl, golden_raw, tmp_path):
    assert (trained / "mmn_best.pt").is_file() and (trained / "mmn_last.pt").is_file()
    meta = load_official(trained / "mmn_best.pt").meta
    tax = meta.taxonomy
    assert list(tax.class_names) == NAMES and tax.name == "custom"
    assert tax.codes is None and tax.body_levels is None and not tax.has_body_levels
    assert meta.layout == MA52_44 and meta.modality == "joint" and meta.model.num_classes == 3
    assert "init_from" not in meta.provenance and meta.provenance["config"] == "custom_joint.py"
    log = next(trained.glob("*/*.log")).read_text()
    assert "MMN custom joint: layout ma52_44 (44 joints), 3 classes" in log and "Epoch(train) [2]" in log

    # what the pipeline and the app run: the user's names, no codes, no body levels
    rec = Recognizer.from_checkpoints(trained / "mmn_best.pt", device="cpu")
    pred = rec.predict([golden_raw[2]])
    top = rec.taxonomy.top_k_records(pred.probs[0], k=3)
    assert sorted(r["name"] for r in top) == sorted(NAMES)
    assert all(set(r) == {"index", "name", "prob"} for r in top)
    assert rec.taxonomy.body_probs(pred.probs[0]) is None

    # mmn.test reads the same config and data (num_classes inferred from the file again)
    out = tmp_path / "test"
    assert test_cli.main([str(CONFIG), "--weights", str(trained / "mmn_best.pt"), "--device", "cpu",
                          "--out-dir", str(out), "--cfg-options", f"data.path={custom_pkl}"]) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert list(result["per_class_accuracy"]) == NAMES and "body_top1" not in result["metrics"]["joint"]


def test_init_from_released_checkpoint_loads_the_backbone_and_reinitialises_the_head(golden_weights):
    golden = load_official(golden_weights)
    model = MMN(MMNConfig(num_joints=44, num_classes=3))
    fresh_head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(HEAD_PREFIX)}
    report = init_from_checkpoint(model, golden_weights, Taxonomy.from_class_names(NAMES), MA52_44)
    assert report.head == "re-initialised" and report.source_taxonomy == "ma52" and report.source_classes == 52
    assert report.sha256 == sha256_of(golden_weights)
    assert report.provenance() == {"file": str(golden_weights), "sha256": report.sha256,
                                   "head": "re-initialised", "taxonomy": "ma52", "classes": 52}
    g, m = golden.state_dict(), model.state_dict()
    backbone = [k for k in g if not k.startswith(HEAD_PREFIX)]
    assert report.backbone_tensors == len(backbone) > 100
    for k in backbone:
        assert torch.equal(m[k], g[k]), k
    assert m["head.weight"].shape == (3, 96) and m["head.bias"].shape == (3,)
    for k, v in fresh_head.items():  # a new head: not the old one, not left as it was
        assert not torch.equal(m[k], v), k
    assert m["head.weight"].abs().max() <= 1 / 96 ** 0.5 + 1e-6  # nn.Linear's default range

    # the same class list keeps the head (here: MA-52 itself)
    same = MMN(MMNConfig(num_joints=44, num_classes=52))
    report = init_from_checkpoint(same, golden_weights, MA52, MA52_44)
    assert report.head == "kept"
    assert all(torch.equal(v, g[k]) for k, v in same.state_dict().items())
    # 52 classes under other names: a new head
    renamed = Taxonomy.from_class_names([f"c{i}" for i in range(52)])
    assert init_from_checkpoint(MMN(MMNConfig(num_classes=52)), golden_weights, renamed).head == \
        "re-initialised"


def test_init_from_refuses_other_joints_and_other_backbones(tmp_path):
    small = MMNConfig(num_joints=20, num_classes=5, channels=32, depths=(1, 1, 1, 1))
    path = save_checkpoint(tmp_path / "msr.pt", MMN(small), taxonomy=Taxonomy.from_class_names(list("abcde"), "msr"),
                           layout=LAYOUTS["msr_action3d_20"], modality="joint")
    with pytest.raises(CheckpointError, match=r"msr\.pt: a msr_action3d_20 checkpoint \(20 joints\) cannot start "
                                              r"a model of 44 joints \(layout ma52_44\)"):
        init_from_checkpoint(MMN(MMNConfig(num_joints=44, num_classes=3)), path, None, MA52_44)
    # same joints, narrower backbone: the first mis-shaped backbone key is named
    narrow = save_checkpoint(tmp_path / "narrow.pt", MMN(MMNConfig(num_classes=3, channels=32)),
                             taxonomy=Taxonomy.from_class_names(NAMES), layout=MA52_44, modality="joint")
    with pytest.raises(CheckpointError, match=r"narrow\.pt: cannot initialise the model's backbone from it "
                                              r"\(\d+ mis-shaped backbone key\(s\), first 'STPE': file \(32, 44\) vs model \(96, 44\)"):
        init_from_checkpoint(MMN(MMNConfig(num_classes=3)), narrow)
    shallow = save_checkpoint(tmp_path / "shallow.pt", MMN(MMNConfig(num_classes=3, depths=(3, 3, 2, 3))),
                              taxonomy=Taxonomy.from_class_names(NAMES), layout=MA52_44, modality="joint")
    with pytest.raises(CheckpointError, match=r"missing backbone key\(s\), first 'MFM\.2\.blocks\.2\."):
        init_from_checkpoint(MMN(MMNConfig(num_classes=3)), shallow)


def test_cli_init_from_errors_are_clear(custom_pkl, tmp_path, capsys, golden_weights):
    small = MMNConfig(num_joints=20, num_classes=5, channels=32, depths=(1, 1, 1, 1))
    path = save_checkpoint(tmp_path / "msr.pt", MMN(small), taxonomy=Taxonomy.from_class_names(list("abcde"), "msr"),
                           layout=LAYOUTS["msr_action3d_20"], modality="joint")
    base = [str(CONFIG), "--data", str(custom_pkl), "--epochs", "1", "--work-dir", str(tmp_path / "w"),
            "--device", "cpu", *TINY]
    assert train_cli.main([*base[:-len(TINY)], "--init-from", str(path), *TINY]) == 2
    assert "(20 joints) cannot start a model of 44 joints" in capsys.readouterr().err
    assert train_cli.main([*base[:-len(TINY)], "--init-from", str(tmp_path / "none.pt"), *TINY]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err
    assert train_cli.main([*base[:-len(TINY)], "--init-from", str(golden_weights), "--resume",
                           *TINY]) == 2
    assert "give one" in capsys.readouterr().err
    assert train_cli.main([str(CONFIG), "--work-dir", str(tmp_path / "w"), "--device", "cpu"]) == 2
    assert "give --data DATA.pkl" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_trains_from_the_released_checkpoint(custom_pkl, tmp_path, golden_weights):
    torch.set_num_threads(2)
    work = tmp_path / "ft"
    assert train_cli.main([str(CONFIG), "--data", str(custom_pkl), "--epochs", "1", "--init-from",
                           str(golden_weights), "--work-dir", str(work), "--device", "cpu", *TINY]) == 0
    log = next(work.glob("*/*.log")).read_text()
    assert "--init-from: initialised from" in log and "head re-initialised (52 ma52 classes → 3 custom classes)" in log
    model = load_official(work / "mmn_best.pt")
    assert list(model.meta.taxonomy.class_names) == NAMES
    init = model.meta.provenance["init_from"]
    assert init["head"] == "re-initialised" and init["sha256"] == sha256_of(golden_weights)
    assert init["file"] == str(golden_weights)
    # the run really started from the released backbone (the runner did not re-initialise it):
    # one epoch of warm-up at lr ≤ 1e-3 leaves every backbone parameter close to the released one
    golden = load_official(golden_weights)
    g = dict(golden.named_parameters())
    fresh = dict(MMN(MMNConfig(num_classes=3)).named_parameters())
    for k, v in model.named_parameters():
        if k.startswith(HEAD_PREFIX):
            continue
        assert (v - g[k]).abs().max() < 0.02, k
    assert max((fresh[k] - g[k]).abs().max() for k in g if not k.startswith(HEAD_PREFIX)) > 0.5
