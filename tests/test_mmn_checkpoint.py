"""Checkpoint loading: the released format, the project's own, and every way a file can be bad."""
import os
from collections import OrderedDict

import numpy as np
import pytest
import torch

import mmn
from core.taxonomy import MA52
from mmn.checkpoint import CheckpointError, CheckpointMeta, infer_config


@pytest.fixture(scope="module")
def state(golden_weights):
    return torch.load(golden_weights, weights_only=True)


def _save(tmp_path, obj, name="ckpt.pt"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_released_checkpoint_infers_configuration(golden_weights, state):
    cfg = infer_config(state)
    assert (cfg.num_joints, cfg.num_classes, cfg.channels, cfg.depths) == (44, 52, 96, (3, 3, 3, 3))
    model = mmn.load_official(golden_weights)
    meta = model.meta
    assert isinstance(meta, CheckpointMeta) and meta.taxonomy is MA52
    assert meta.dataset == "ma52" and meta.modality == "joint" and meta.layout.name == "ma52_44"
    assert meta.taxonomy.class_names[9] == "nodding" and len(meta.sha256) == 64 and meta.clip_len == 64


def test_module_prefix_is_stripped(tmp_path, state, golden, golden_weights):
    path = _save(tmp_path, OrderedDict(("module." + k, v) for k, v in state.items()))
    model = mmn.load_official(path)
    with torch.no_grad():
        out = model(torch.from_numpy(golden["joint"]), torch.from_numpy(golden["index_t"]))
    np.testing.assert_allclose(out.numpy(), golden["logits_joint"], atol=1e-4)


def test_missing_key(tmp_path, state):
    bad = OrderedDict(state); del bad["MFM.2.blocks.1.MSM.adj"]
    path = _save(tmp_path, bad)
    with pytest.raises(CheckpointError, match=r"ckpt\.pt: .*1 missing key\(s\), first 'MFM\.2\.blocks\.1\.MSM\.adj'"):
        mmn.load_official(path)


def test_unexpected_key(tmp_path, state):
    bad = OrderedDict(state); bad["extra_head.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=r"1 unexpected key\(s\), first 'extra_head\.weight'"):
        mmn.load_official(_save(tmp_path, bad))


def test_misshaped_key(tmp_path, state):
    bad = OrderedDict(state); bad["MFM.1.blocks.0.tconv.weight"] = torch.zeros(24, 6, 5, 1)
    with pytest.raises(CheckpointError, match=r"mis-shaped key\(s\), first 'MFM\.1\.blocks\.0\.tconv\.weight': "
                                              r"file \(24, 6, 5, 1\) vs model \(24, 6, 3, 1\)"):
        mmn.load_official(_save(tmp_path, bad))


def test_not_an_mmn_state_dict(tmp_path):
    with pytest.raises(CheckpointError, match=r"not an MMN checkpoint .*'STPE'"):
        mmn.load_official(_save(tmp_path, {"weight": torch.zeros(2)}))


def test_truncated_file(tmp_path, golden_weights):
    data = golden_weights.read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pt: truncated or not a torch checkpoint"):
        mmn.load_official(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        mmn.load_official(tmp_path / "nope.pt")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused_and_not_run(tmp_path, state):
    marker = tmp_path / "pwned"
    payload = OrderedDict(state); payload["evil"] = _Exploit(marker)
    path = _save(tmp_path, payload, "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused to load .*could run code"):
        mmn.load_official(path)
    assert not marker.exists()


def test_project_checkpoint_round_trip_with_metadata(tmp_path, golden, golden_weights):
    from core.layouts import MA52_44
    model = mmn.load_official(golden_weights)
    names = model.meta.taxonomy.class_names
    path = mmn.save_checkpoint(tmp_path / "sub" / "mine.pt", model, taxonomy=MA52, layout=MA52_44,
                               modality="bone", clip_len=48, provenance={"epoch": 7})
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["mine.pt"]
    loaded = mmn.load_official(path)
    meta = loaded.meta
    assert meta.modality == "bone" and meta.provenance["epoch"] == 7 and meta.taxonomy.class_names == names
    assert meta.clip_len == 48 and meta.taxonomy == MA52 and meta.source == "mmn.train"
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    # a future format version is refused, not guessed at
    obj = torch.load(path, weights_only=True); obj["version"] = 99
    with pytest.raises(CheckpointError, match="format version 99 is not supported"):
        mmn.load_official(_save(tmp_path, obj, "future.pt"))


def test_pretrained_entries_record_source_layout_modality_checksum():
    assert set(mmn.PRETRAINED) == {"mmn_ma52_joint", "mmn_ma52_bone", "mmn_imigue_joint", "mmn_imigue_bone"}
    for entry in mmn.PRETRAINED.values():
        assert entry.source.startswith("https://") and entry.layout in ("ma52_44", "imigue_22")
        assert entry.modality in ("joint", "bone") and hasattr(entry, "sha256")
