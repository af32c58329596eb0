"""The MMN model: parameter counts, golden logits, modulation maps."""
import numpy as np
import pytest
import torch

import mmn
from mmn.model import MAP_NAMES, MMNConfig


def test_parameter_counts_match_released_configurations():
    assert mmn.count_parameters(mmn.mmn_ma52()) == 1_325_186
    assert mmn.count_parameters(mmn.mmn_imigue()) == 1_234_014


def test_golden_checkpoint_reproduces_authors_logits(golden, golden_weights):
    model = mmn.load_official(golden_weights)
    assert not model.training
    with torch.no_grad():
        logits = model(torch.from_numpy(golden["joint"]), torch.from_numpy(golden["index_t"]))
    np.testing.assert_allclose(logits.numpy(), golden["logits_joint"], rtol=0, atol=1e-4)


def test_raw_clips_through_recognizer_match_golden_logits(golden_raw, golden, golden_weights):
    rec = mmn.Recognizer.from_checkpoints(golden_weights, device="cpu")
    pred = rec.predict(golden_raw)
    np.testing.assert_allclose(pred.logits, golden["logits_joint"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(pred.probs.sum(1), 1, atol=1e-5)


def test_modulation_maps_shapes_determinism_and_unchanged_logits(golden, golden_weights):
    model = mmn.load_official(golden_weights)
    x, t = torch.from_numpy(golden["joint"]), torch.from_numpy(golden["index_t"])
    with torch.no_grad():
        plain = model(x, t)
        logits1, maps1 = model(x, t, return_maps=True)
        logits2, maps2 = model(x, t, return_maps=True)
    assert torch.equal(plain, logits1) and torch.equal(logits1, logits2)
    assert len(maps1) == 12
    for block, (m1, m2) in enumerate(zip(maps1, maps2)):
        t_stage = 64 // 2 ** (block // 3)
        assert set(m1) == set(MAP_NAMES)
        for name in MAP_NAMES:
            assert m1[name].shape == (6, t_stage, 44), (block, name)
            assert torch.equal(m1[name], m2[name])
        assert ((m1["gate_motion"] > 0) & (m1["gate_motion"] < 1)).all()
    # the maps carry information: not constant over joints
    assert maps1[0]["agg_max"].std(dim=2).min() > 0


def test_recognizer_maps_come_back_in_storage_joint_order(golden_raw, golden_weights):
    rec = mmn.Recognizer.from_checkpoints(golden_weights, device="cpu")
    pred = rec.predict(golden_raw[:2], return_maps=True)
    x, t = zip(*(mmn.preprocess_clip(c, rec.layout) for c in golden_raw[:2]))
    with torch.no_grad():
        _, blocks = rec.streams[0](torch.from_numpy(np.stack(x)), torch.from_numpy(np.stack(t)), return_maps=True)
    model_order = blocks[0]["gate_motion"].numpy()  # (2, 64, 44) in body-part order
    storage = pred.maps["gate_motion"]
    assert storage.shape == (2, 64, 44)
    # heat of storage joint partition[i] must equal block 0's model joint i, up to the block mean
    partition = list(rec.layout.partition)
    mean_over_blocks = np.mean([np.repeat(b["gate_motion"].numpy(), 64 // b["gate_motion"].shape[1], axis=1)
                                for b in blocks], axis=0)
    np.testing.assert_allclose(storage[:, :, partition], mean_over_blocks, atol=1e-6)
    assert not np.allclose(storage, mean_over_blocks)  # the reorder really moved joints
    assert model_order.shape == (2, 64, 44)


def test_training_mode_runs_backward_and_drop_path_is_stochastic():
    torch.manual_seed(0)
    model = mmn.mmn_imigue()
    x, t = torch.randn(4, 2, 64, 22), torch.linspace(-1, 1, 64).repeat(4, 1)
    model.train()
    out1 = model(x, t)
    out1.sum().backward()
    assert model.STPE.grad is not None and model.MFM[3].blocks[2].MSM.adj.grad is not None
    assert not torch.allclose(out1, model(x, t))


def test_configurable_model_and_input_validation():
    model = mmn.MMN(MMNConfig(num_joints=20, num_classes=7, channels=32, num_heads=2, depths=(1, 1, 1, 1)))
    assert model(torch.zeros(2, 2, 32, 20), torch.zeros(2, 32)).shape == (2, 7)
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.zeros(1, 2, 30, 20), torch.zeros(1, 30))
    with pytest.raises(ValueError, match="expected input"):
        model(torch.zeros(1, 2, 32, 21), torch.zeros(1, 32))
    with pytest.raises(ValueError, match="one person"):
        model(torch.zeros(1, 2, 32, 20, 2), torch.zeros(1, 32))
