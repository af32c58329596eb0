"""Hostile data pickles: every door that reads a data pickle refuses code, on every protocol.

Each payload is built here from raw opcodes. The plain :mod:`pickle` module runs it (proof
that it is live: it writes a marker file); the project's unpickler must refuse it, through
every entry point that reads data pickles, without the marker appearing.
"""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from core.safe_pickle import load_data_pickle, loads_data_pickle

PROTOCOLS = range(0, 6)


def _unicode(text: str, proto: int) -> bytes:
    if proto >= 1:
        raw = text.encode("utf-8")
        return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE
    return b"V" + text.encode("raw-unicode-escape") + b"\n"  # UNICODE


def _global(module: str, name: str, proto: int, stack: bool) -> bytes:
    if stack:  # protocol 4+: STACK_GLOBAL takes module and name from the stack
        return _unicode(module, proto) + _unicode(name, proto) + b"\x93"
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _call(fn: bytes, *args: bytes) -> bytes:
    return fn + b"(" + b"".join(args) + b"tR"  # MARK args TUPLE REDUCE: valid on every protocol


def eval_payloads(marker: Path, proto: int) -> dict[str, bytes]:
    """Payloads that call ``eval(code)``, ``code`` writing ``marker``, reached in several ways."""
    code = f"__import__('pathlib').Path({str(marker)!r}).write_text('pwned')"
    head = b"\x80" + bytes([proto]) if proto >= 2 else b""
    out = {}
    for stack in ((False, True) if proto >= 4 else (False,)):
        g = lambda m, n: _global(m, n, proto, stack)  # noqa: E731
        tag = "stack" if stack else "global"
        # the reported hole: numpy.dtypes / __builtins__.__class__.get (dict.get) on the builtins dict
        get_eval = _call(g("numpy.dtypes", "__builtins__.__class__.get"), g("numpy.dtypes", "__builtins__"),
                         _unicode("eval", proto))
        out[f"dtypes-dotted-{tag}"] = head + _call(get_eval, _unicode(code, proto)) + b"."
        # other dotted routes through allowed-looking modules
        out[f"numpy-dotted-{tag}"] = head + _call(g("numpy", "ndarray.__init__.__globals__.get"), _unicode("x", proto)) + b"."
        out[f"builtins-eval-{tag}"] = head + _call(g("builtins", "eval"), _unicode(code, proto)) + b"."
        out[f"collections-dotted-{tag}"] = head + _call(
            _call(g("collections", "OrderedDict.__class__.__call__"), g("builtins", "eval")), _unicode(code, proto)) + b"."
    return out


def all_payloads(tmp_path: Path) -> list[tuple[str, bytes, Path]]:
    cases = []
    for proto in PROTOCOLS:
        marker = tmp_path / f"pwned-{proto}"
        for name, data in eval_payloads(marker, proto).items():
            cases.append((f"p{proto}-{name}", data, marker))
    return cases


def test_the_reported_payload_is_live_with_plain_pickle(tmp_path):
    """Guards the test itself: the payloads do run code under the ordinary unpickler."""
    for proto in PROTOCOLS:
        marker = tmp_path / f"live-{proto}"
        data = eval_payloads(marker, proto)["dtypes-dotted-global" if proto < 4 else "dtypes-dotted-stack"]
        if proto >= 4:
            pickle.loads(data)
            assert marker.read_text() == "pwned", f"protocol {proto} payload did not run under plain pickle"
        data = eval_payloads(marker, proto)["builtins-eval-global"]
        marker.unlink(missing_ok=True)
        pickle.loads(data)
        assert marker.exists(), f"protocol {proto} eval payload did not run under plain pickle"


def test_every_payload_on_every_protocol_is_refused(tmp_path):
    cases = all_payloads(tmp_path)
    assert len(cases) >= 6 * 4
    for name, data, marker in cases:
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(data)
        with pytest.raises(ValueError, match=f"{name}.pkl: refusing to load global"):
            load_data_pickle(path)
        with pytest.raises(ValueError, match="refusing to load global"):
            loads_data_pickle(data)
        assert not marker.exists(), f"{name} ran code"


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_real_data_still_loads_on_every_protocol(proto):
    obj = {"annotations": [{"frame_dir": "a", "label": 3, "keypoint": np.random.rand(1, 5, 44, 2).astype(np.float32),
                            "keypoint_score": np.ones((1, 5, 44), np.float16), "total_frames": np.int64(5),
                            "img_shape": (480, 640), "raw": b"\x00\xff", "s": {1, 2}}],
           "split": {"train": ["a"]}, "label_names": ["x"] * 4}
    back = loads_data_pickle(pickle.dumps(obj, protocol=proto))
    ann = back["annotations"][0]
    np.testing.assert_array_equal(ann["keypoint"], obj["annotations"][0]["keypoint"])
    assert ann["keypoint_score"].dtype == np.float16 and ann["total_frames"] == 5 and ann["raw"] == b"\x00\xff"


def test_truncated_and_garbage_pickles_name_the_file(tmp_path):
    good = pickle.dumps({"annotations": [np.zeros(3)]}, protocol=4)
    for name, data in (("truncated", good[: len(good) // 2]), ("garbage", b"\x80\x04\xff\xfe\xfd"), ("empty", b"")):
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(data)
        with pytest.raises(ValueError, match=f"{name}.pkl: not a readable data pickle"):
            load_data_pickle(path)


# ------------------------------------------------------------------ every entry point


@pytest.fixture()
def hostile(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "data.pkl"
    path.write_bytes(eval_payloads(marker, 4)["dtypes-dotted-global"])
    return path, marker


def test_classify_refuses(hostile, golden_weights, capsys):
    from mmn.classify import main

    path, marker = hostile
    assert main([str(path), "--weights", str(golden_weights), "--device", "cpu"]) == 1
    assert "refusing to load global numpy.dtypes.__builtins__.__class__.get" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["authors", "pyskl"])
def test_training_and_test_datasets_refuse(hostile, fmt):
    from mmn.training.datasets import load_split

    path, marker = hostile
    if fmt == "authors":
        path.rename(path.parent / "train_data.pkl")
        cfg = dict(format="authors", root=str(path.parent), train={})
    else:
        cfg = dict(format="pyskl", path=str(path), train=dict(split="train"))
    with pytest.raises(ValueError, match="refusing to load global"):
        load_split(cfg, "train", 44, 52)
    assert not marker.exists()


def test_precomputed_pose_backend_refuses(hostile):
    from pose.estimators import create_estimator

    path, marker = hostile
    with pytest.raises(ValueError, match="refusing to load global"):
        create_estimator("precomputed", path=path)
    assert not marker.exists()
