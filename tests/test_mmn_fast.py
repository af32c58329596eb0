"""The fast inference path (mmn.fast.FastMMN) computes what the plain MMN computes."""
import copy

import numpy as np
import pytest
import torch

import mmn
from mmn.fast import FastMMN, optimise_for_inference
from mmn.model import MAP_NAMES

ATOL_LOGITS = 1e-4
# float32 maps: the plain model itself is only ~1e-4 away from a float64 evaluation on the
# golden clips (the frame difference in the motion branch cancels digits); see the float64 test
# below for the exactness of the algebra.
ATOL_MAPS = 2e-3


def _maps_close(plain, fast, atol, rtol=0.0):
    assert len(plain) == len(fast)
    for block, (mp, mf) in enumerate(zip(plain, fast)):
        assert set(mf) == set(MAP_NAMES)
        for name in MAP_NAMES:
            assert mf[name].shape == mp[name].shape, (block, name)
            np.testing.assert_allclose(mf[name].numpy(), mp[name].numpy(), atol=atol, rtol=rtol,
                                       err_msg=f"block {block} {name}")


@pytest.fixture(scope="module")
def golden_model(golden_weights):
    return mmn.load_official(golden_weights)


@pytest.mark.parametrize("workers", [1, 2])
def test_golden_logits_and_maps(golden, golden_model, workers):
    fast = FastMMN.from_model(golden_model, workers=workers)
    x, t = torch.from_numpy(golden["joint"]), torch.from_numpy(golden["index_t"])
    with torch.inference_mode():
        plain_logits, plain_maps = golden_model(x, t, return_maps=True)
        logits, maps = fast(x, t, return_maps=True)
        logits_only = fast(x, t)
    np.testing.assert_allclose(logits.numpy(), golden["logits_joint"], rtol=0, atol=ATOL_LOGITS)
    np.testing.assert_allclose(logits.numpy(), plain_logits.numpy(), rtol=0, atol=ATOL_LOGITS)
    assert torch.equal(logits, logits_only)  # asking for maps does not change the logits
    _maps_close(plain_maps, maps, ATOL_MAPS)
    for block, m in enumerate(maps):
        assert m["gate_motion"].shape == (6, 64 // 2 ** (block // 3), 44)


@pytest.fixture(scope="module")
def batch_of_64(golden_model):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 2, 64, 44, 1, generator=g) * 2 - 1
    t = torch.sort(torch.rand(64, 64, generator=g) * 2 - 1).values
    with torch.inference_mode():
        return x, t, golden_model(x, t)


@pytest.mark.parametrize("workers,chunk", [(1, 2), (2, 2), (3, 4), (2, 64)])
def test_random_batch_of_64(golden_model, batch_of_64, workers, chunk):
    """Chunked and multi-worker execution give the plain model's logits on a large batch."""
    x, t, plain = batch_of_64
    fast = FastMMN.from_model(golden_model, chunk_size=chunk, workers=workers)
    with torch.inference_mode():
        logits = fast(x, t)
    assert logits.shape == (64, 52)
    np.testing.assert_allclose(logits.numpy(), plain.numpy(), rtol=0, atol=ATOL_LOGITS)


def test_workers_split_stages_for_a_single_clip(golden, golden_model):
    x, t = torch.from_numpy(golden["joint"][:1]), torch.from_numpy(golden["index_t"][:1])
    with torch.inference_mode():
        ref_logits, ref_maps = FastMMN.from_model(golden_model, workers=1)(x, t, return_maps=True)
        for n in (2, 3, 4):
            logits, maps = FastMMN.from_model(golden_model, workers=n)(x, t, return_maps=True)
            np.testing.assert_allclose(logits.numpy(), ref_logits.numpy(), rtol=0, atol=1e-5)
            _maps_close(ref_maps, maps, atol=1e-5)


@pytest.fixture(scope="module")
def imigue_trained():
    """iMiGUE-sized MMN with random weights after a few training steps: BatchNorm running
    statistics and affines far from their initial values."""
    torch.manual_seed(0)
    model = mmn.mmn_imigue()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.momentum = 0.5
    for _ in range(4):
        x = torch.randn(4, 2, 64, 22) * 0.7
        t = torch.sort(torch.rand(4, 64) * 2 - 1).values
        loss = torch.nn.functional.cross_entropy(model(x, t), torch.randint(0, 32, (4,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_imigue_config_with_trained_batchnorm(imigue_trained):
    bn = imigue_trained.MFM[0].blocks[0].MTM[2]
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    fast = optimise_for_inference(imigue_trained)
    torch.manual_seed(1)
    x, t = torch.randn(8, 2, 64, 22), torch.sort(torch.rand(8, 64) * 2 - 1).values
    with torch.inference_mode():
        plain_logits, plain_maps = imigue_trained(x, t, return_maps=True)
        logits, maps = fast(x, t, return_maps=True)
    assert logits.shape == (8, 32)
    np.testing.assert_allclose(logits.numpy(), plain_logits.numpy(), rtol=0, atol=ATOL_LOGITS)
    _maps_close(plain_maps, maps, ATOL_MAPS)


def test_float64_fast_path_is_the_same_function(imigue_trained, golden, golden_model):
    """In float64 the fast path's folding and reordering are exact: logits and every map agree
    with the plain model to rounding."""
    for model, x, t in ((imigue_trained, torch.randn(3, 2, 64, 22), torch.sort(torch.rand(3, 64) * 2 - 1).values),
                        (golden_model, torch.from_numpy(golden["joint"]), torch.from_numpy(golden["index_t"]))):
        m64 = copy.deepcopy(model).double()
        fast = FastMMN.from_model(m64)
        assert fast.w_head.dtype == torch.float64
        with torch.inference_mode():
            plain_logits, plain_maps = m64(x.double(), t.double(), return_maps=True)
            logits, maps = fast(x.double(), t.double(), return_maps=True)
        np.testing.assert_allclose(logits.numpy(), plain_logits.numpy(), rtol=0, atol=1e-10)
        _maps_close(plain_maps, maps, atol=1e-9)


def test_eval_only(imigue_trained):
    fast = FastMMN.from_model(imigue_trained)
    with pytest.raises(RuntimeError, match="inference-only"):
        fast.train()
    assert fast.eval() is fast and not fast.training
    with pytest.raises(ValueError, match="eval mode"):
        FastMMN.from_model(copy.deepcopy(imigue_trained).train())
    assert not list(fast.parameters()) and fast.state_dict() == {}  # derived, never saved


def test_keeps_config_metadata_and_moves_with_to(golden_model):
    fast = FastMMN.from_model(golden_model)
    assert fast.cfg == golden_model.cfg and fast.meta is golden_model.meta
    moved = fast.to("cpu")
    x, t = torch.zeros(2, 2, 64, 44), torch.linspace(-1, 1, 64).repeat(2, 1)
    with torch.inference_mode():
        assert torch.allclose(moved(x, t), golden_model(x, t), atol=ATOL_LOGITS, rtol=0)


def test_forward_records_no_autograd_history(golden_model):
    fast = FastMMN.from_model(golden_model)
    x = torch.zeros(1, 2, 64, 44, requires_grad=True)
    out = fast(x, torch.zeros(1, 64))
    assert out.grad_fn is None and not out.requires_grad


def test_input_validation_matches_the_model(golden_model):
    fast = FastMMN.from_model(golden_model)
    with pytest.raises(ValueError, match="divisible by 8"):
        fast(torch.zeros(1, 2, 60, 44), torch.zeros(1, 60))
    with pytest.raises(ValueError, match="expected input"):
        fast(torch.zeros(1, 2, 64, 43), torch.zeros(1, 64))
    with pytest.raises(ValueError, match="one person"):
        fast(torch.zeros(1, 2, 64, 44, 2), torch.zeros(1, 64))


def test_small_configuration():
    torch.manual_seed(2)
    model = mmn.MMN(mmn.MMNConfig(num_joints=20, num_classes=7, channels=32, num_heads=2,
                                  depths=(1, 2, 1, 1))).eval()
    x, t = torch.randn(5, 2, 32, 20), torch.sort(torch.rand(5, 32) * 2 - 1).values
    with torch.inference_mode():
        plain_logits, plain_maps = model(x, t, return_maps=True)
        logits, maps = FastMMN.from_model(model, chunk_size=2)(x, t, return_maps=True)
    np.testing.assert_allclose(logits.numpy(), plain_logits.numpy(), rtol=0, atol=ATOL_LOGITS)
    _maps_close(plain_maps, maps, ATOL_MAPS)


def test_autocast_runs_the_fast_path_in_low_precision(golden, golden_model):
    fast = FastMMN.from_model(golden_model)
    x, t = torch.from_numpy(golden["joint"]), torch.from_numpy(golden["index_t"])
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = fast(x, t)
    assert logits.dtype == torch.bfloat16 and fast.w_head.dtype == torch.float32
    assert (logits.float() - torch.from_numpy(golden["logits_joint"])).abs().max() < 0.5


def test_recognizer_uses_the_fast_path(golden_raw, golden, golden_weights):
    rec = mmn.Recognizer.from_checkpoints(golden_weights, device="cpu")
    plain = mmn.Recognizer.from_checkpoints(golden_weights, device="cpu", fast=False)
    assert isinstance(rec.streams[0], FastMMN) and isinstance(rec.models[0], mmn.MMN)
    assert not isinstance(plain.streams[0], FastMMN)
    pred = rec.predict(golden_raw, return_maps=True)
    ref = plain.predict(golden_raw, return_maps=True)
    np.testing.assert_allclose(pred.logits, golden["logits_joint"], rtol=0, atol=ATOL_LOGITS)
    np.testing.assert_allclose(pred.logits, ref.logits, rtol=0, atol=ATOL_LOGITS)
    assert set(pred.maps) == set(ref.maps) == set(MAP_NAMES)
    for name in MAP_NAMES:
        np.testing.assert_allclose(pred.maps[name], ref.maps[name], atol=ATOL_MAPS, rtol=0)


@pytest.mark.slow  # one FastMMN build per parameter tensor: about 30 s
def test_every_mmn_parameter_reaches_the_fast_path():
    """Perturbing any one parameter of the MMN changes what the FastMMN built from it computes
    (logits or maps): no weight is silently left out of the folding. (MMN's parameter count is
    asserted elsewhere; this is the FastMMN side.)"""
    torch.manual_seed(5)
    model = mmn.MMN(mmn.MMNConfig(num_joints=20, num_classes=7, channels=32, num_heads=2,
                                  depths=(1, 1, 1, 1))).eval()
    for m in model.modules():  # trained-looking batch-norm statistics, so every term matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    x, t = torch.randn(3, 2, 32, 20), torch.sort(torch.rand(3, 32) * 2 - 1).values

    def outputs(net: mmn.MMN) -> torch.Tensor:
        with torch.inference_mode():
            logits, maps = FastMMN.from_model(net, workers=1)(x, t, return_maps=True)
        return torch.cat([logits.flatten()] + [m[n].flatten() for m in maps for n in MAP_NAMES])

    base = outputs(model)
    noise = torch.Generator().manual_seed(0)
    unused = []
    for name, _ in model.named_parameters():
        other = copy.deepcopy(model)
        with torch.no_grad():  # random, not constant: a constant shift can cancel in a normalisation
            p = dict(other.named_parameters())[name]
            p.add_(torch.randn(p.shape, generator=noise) * 0.5)
        if torch.allclose(outputs(other), base, atol=1e-6, rtol=0):
            unused.append(name)
    assert unused == []
