"""python -m mmn.classify on the golden fixture's raw clips."""
import json
import pickle

import numpy as np

from core.taxonomy import MA52
from tests.cli import run_cli


def _run(*args):
    return run_cli("mmn.classify", *args, timeout=300)


def test_classify_npy_top1_equals_golden_argmax(tmp_path, golden, golden_weights):
    paths = []
    for i in range(6):
        paths.append(tmp_path / f"clip{i}.npy")
        np.save(paths[-1], golden[f"raw_{i}"])
    res = _run("--weights", golden_weights, "--device", "cpu", *paths)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 6
    table = MA52.classes
    for i, line in enumerate(lines):
        name, rest = line.split("\t")
        assert name == f"clip{i}"
        top1 = table[int(golden["logits_joint"][i].argmax())]
        assert rest.startswith(f"{top1.code} {top1.name} [{top1.body}]")
        assert rest.count("|") == 4  # top-5


def test_classify_json_pickle_and_two_stream(tmp_path, golden, golden_weights):
    pkl = tmp_path / "test_data.pkl"
    anns = [{"frame_dir": f"vid{i}", "keypoint": golden[f"raw_{i}"][None]} for i in range(3)]
    with open(pkl, "wb") as f:
        pickle.dump({"annotations": anns}, f)
    res = _run("--weights", golden_weights, "--json", pkl)
    assert res.returncode == 0, res.stderr
    objs = [json.loads(line) for line in res.stdout.splitlines()]
    assert [o["clip"] for o in objs] == ["vid0", "vid1", "vid2"]
    for i, o in enumerate(objs):
        np.testing.assert_allclose(o["logits"], golden["logits_joint"][i], atol=1e-4)
        assert len(o["top_k"]) == 5 and {"code", "body", "prob"} <= set(o["top_k"][0])
    # 2S: the same file as the bone stream, so the ensemble differs from joint alone
    res2 = _run("--weights", golden_weights, "--weights-bone", golden_weights, "--json", pkl)
    objs2 = [json.loads(line) for line in res2.stdout.splitlines()]
    assert objs2[0]["streams"] == ["joint", "bone"]
    assert not np.allclose(objs2[0]["logits"], objs[0]["logits"], atol=1e-3)


def test_classify_reports_bad_input_and_continues(tmp_path, golden, golden_weights):
    good = tmp_path / "good.npy"; np.save(good, golden["raw_0"])
    wrong = tmp_path / "wrong.npy"; np.save(wrong, np.zeros((10, 17, 2)))
    text = tmp_path / "notes.pkl"; text.write_text("hello")
    res = _run("--weights", golden_weights, wrong, text, good)
    assert res.returncode == 1
    assert "wrong.npy" in res.stderr and "(L ≥ 1, 44, 2)" in res.stderr
    assert "notes.pkl" in res.stderr
    assert res.stdout.startswith("good\t")
    assert _run("--weights", tmp_path / "missing.pt", good).returncode == 2


def test_body_levels_agree_with_shared_table(class_table):
    rows = [line.split("\t") for line in class_table.read_text().splitlines()[1:]]
    assert len(MA52.classes) == 52
    for row, cls, body in zip(rows, MA52.classes, MA52.action_to_body()):
        assert (int(row[0]), row[1], row[2], int(row[3]), row[5]) == (cls.index, cls.code, cls.name, body, cls.body)
