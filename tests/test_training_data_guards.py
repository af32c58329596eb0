"""Training data that would silently train wrong, and the states training must never save
(issue 20, items 6 and 9): duplicate clips, absurd or complex keypoints and non-integer labels
in real pyskl / authors' data are refused naming the file and the clip; a NaN loss stops
training; weights holding NaN/inf are never saved nor loaded; and the small annotation-import
lows (a one-line error for 3000 spans, markup inside an ELAN value, a 5000-digit time slot)."""
from __future__ import annotations

import copy
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.safe_pickle import load_data_pickle
from mmn import load_official
from mmn import train as train_cli
from mmn.checkpoint import CheckpointError, save_checkpoint
from mmn.training.datasets import MAX_COORD, DatasetError, load_split, read_authors, read_pyskl
from tests.data import ROOT, VIDEOS_DIR

MSR_CONFIG = ROOT / "configs" / "msr_action3d_joint.py"
# MSR Action3D clips with pixel coordinates only (20 others hold the 2**31 sentinel; see below)
SENTINEL_ACTIONS = ("a06", "a11", "a18", "a20")
TINY = ["--device", "cpu", "--cfg-options", "loader.num_workers=0", "log_interval=1", "train.warmup_epochs=0",
        "train.val_interval=1", "checkpoint.interval=1"]


def _dump(obj, path: Path) -> Path:
    with open(path, "wb") as f:
        pickle.dump(obj, f)
    return path


@pytest.fixture(scope="module")
def msr(msr_pkl) -> dict:
    """The real pyskl MSR Action3D file, read through the project's safe unpickler."""
    return load_data_pickle(msr_pkl)


def small_msr(msr: dict, n_train: int = 8, n_val: int = 4) -> dict:
    """A handful of real MSR clips as a pyskl dict (splits xsub_train / xsub_val), deep-copied
    so a test can corrupt it."""
    train = [n for n in msr["split"]["xsub_train"] if not n.startswith(SENTINEL_ACTIONS)][::24][:n_train]
    val = [n for n in msr["split"]["xsub_val"] if not n.startswith(SENTINEL_ACTIONS)][::40][:n_val]
    keep = set(train) | set(val)
    return copy.deepcopy(dict(split=dict(xsub_train=train, xsub_val=val),
                              annotations=[a for a in msr["annotations"] if a["frame_dir"] in keep],
                              label_names=list(msr["label_names"])))


def _ann(data: dict, name: str) -> dict:
    return next(a for a in data["annotations"] if a["frame_dir"] == name)


# ---------------------------------------------------------------------------------- duplicates

def test_two_annotations_with_one_frame_dir_are_refused(msr, tmp_path):
    data = small_msr(msr)
    first, second = data["split"]["xsub_train"][:2]
    _ann(data, second)["frame_dir"] = first  # the old lookup kept one and used it twice
    data["split"]["xsub_train"].remove(second)
    path = _dump(data, tmp_path / "dup.pkl")
    with pytest.raises(DatasetError, match=rf"{re.escape(str(path))}: clip name \(frame_dir\) '{first}' appears "
                                           rf"twice in the annotations \(#\d+ and #\d+\)"):
        read_pyskl(path, "xsub_train")
    with pytest.raises(DatasetError, match=f"'{first}' appears twice"):  # whichever split is read
        read_pyskl(path, "xsub_val")


def test_a_split_listing_a_clip_twice_is_refused(msr, tmp_path):
    data = small_msr(msr)
    clip = data["split"]["xsub_train"][3]
    data["split"]["xsub_train"].append(clip)
    path = _dump(data, tmp_path / "twice.pkl")
    with pytest.raises(DatasetError, match=rf"{re.escape(str(path))}: split 'xsub_train' lists clip '{clip}' twice "
                                           rf"\(positions 3 and 8\)"):
        read_pyskl(path, "xsub_train")
    assert len(read_pyskl(path, "xsub_val")[0]) == 4  # the other split is fine


def test_authors_duplicates_name_the_clip(msr, tmp_path):
    """The authors' format: a label file labelling a clip twice, and a frame_dir used twice."""
    data = small_msr(msr)
    anns = data["annotations"][:4]
    names = [a["frame_dir"] for a in anns]
    _dump(dict(annotations=anns), tmp_path / "train_data.pkl")
    _dump([dict(file_name=n, label=int(a["label"])) for n, a in zip(names + names[1:2], anns + anns[1:2])],
          tmp_path / "train_label.pkl")
    with pytest.raises(DatasetError, match=rf"clip '{names[1]}' is labelled twice \(entries #1 and #4\)"):
        read_authors(tmp_path / "train_data.pkl", tmp_path / "train_label.pkl")
    dup = copy.deepcopy(anns)
    dup[2]["frame_dir"] = names[0]
    _dump(dict(annotations=dup), tmp_path / "dup_data.pkl")
    with pytest.raises(DatasetError, match=rf"dup_data\.pkl: clip name \(frame_dir\) '{names[0]}' appears twice"):
        read_authors(tmp_path / "dup_data.pkl")


# ---------------------------------------------------------------------------------- keypoints

@pytest.mark.parametrize("value, dtype, problem", [
    (3e38, np.float32, r"1 coordinate\(s\) beyond ±1e\+30 px \(largest 3e\+38\) in 1 frame\(s\), first frame 5"),
    (-3e38, np.float32, r"1 coordinate\(s\) beyond ±1e\+30 px \(largest 3e\+38\)"),
    (1e39, np.float64, r"1 coordinate\(s\) beyond ±1e\+30 px \(largest 1e\+39\)"),  # not inf: checked before the cast
    (np.nan, np.float32, r"1 NaN/infinite coordinate\(s\) in 1 frame\(s\), first frame 5"),
    (np.inf, np.float64, r"1 NaN/infinite coordinate\(s\)"),
], ids=["+3e38", "-3e38", "1e39-float64", "nan", "inf"])
def test_absurd_or_non_finite_keypoints_name_the_file_and_clip(msr, tmp_path, value, dtype, problem):
    data = small_msr(msr)
    clip = data["split"]["xsub_train"][2]
    kp = _ann(data, clip)["keypoint"].astype(dtype)
    kp[0, 5, 7, 1] = value
    _ann(data, clip)["keypoint"] = kp
    path = _dump(data, tmp_path / "absurd.pkl")
    with pytest.raises(DatasetError, match=rf"{re.escape(str(path))}: clip '{clip}' has {problem}"):
        read_pyskl(path, "xsub_train")


def test_the_bound_keeps_real_data_with_sentinels(msr_pkl, msr):
    """MSR Action3D stores 2**31 for lost joints in 20 clips: corrupt frames, yet finite after
    preprocessing, and the shipped MSR recipe trains on them. The bound lies far above."""
    from core.layouts import MSR_ACTION3D_20
    from mmn.preprocess import eval_pipeline

    clips, _ = read_pyskl(msr_pkl, None)
    peak = max(float(np.abs(c.keypoint).max()) for c in clips)
    assert peak == pytest.approx(2.0 ** 31, rel=1e-5) and peak < MAX_COORD
    pipeline = eval_pipeline(MSR_ACTION3D_20, "joint", 64)
    sentinel = [c for c in clips if np.abs(c.keypoint).max() > 1e6]
    assert len(sentinel) == 20
    assert all(np.isfinite(pipeline({"keypoint": c.keypoint.copy()})["inputs"]).all() for c in sentinel)
    data = dict(format="pyskl", path=str(msr_pkl), train=dict(split="xsub_train"), val=dict(split="xsub_val"))
    assert len(load_split(data, "train", 20, 20)[0]) == 291


def test_complex_keypoints_are_refused_not_cast(msr, tmp_path):
    data = small_msr(msr)
    clip = data["split"]["xsub_val"][1]
    _ann(data, clip)["keypoint"] = _ann(data, clip)["keypoint"].astype(np.complex64) + 1j
    path = _dump(data, tmp_path / "complex.pkl")
    with pytest.raises(DatasetError, match=rf"{re.escape(str(path))}: clip '{clip}' has complex keypoints "
                                           rf"\(complex64\)"):
        read_pyskl(path, "xsub_val")


# ---------------------------------------------------------------------------------- labels

@pytest.mark.parametrize("label, message", [
    (1.7, r"label 1\.7 is not a whole number"),
    ("x", r"label 'x' is not a class index"),
    ("3", r"label '3' is not a class index"),
    (True, r"label True is not a class index"),
    (float("nan"), r"label nan is not a whole number"),
], ids=["1.7", "x", "string-3", "True", "nan"])
def test_labels_that_are_not_whole_numbers_name_the_file_and_clip(msr, tmp_path, label, message):
    data = small_msr(msr)
    clip = data["split"]["xsub_train"][4]
    _ann(data, clip)["label"] = label
    path = _dump(data, tmp_path / "labels.pkl")
    with pytest.raises(DatasetError, match=rf"{re.escape(str(path))}: clip '{clip}': {message}"):
        read_pyskl(path, "xsub_train")


def test_whole_number_labels_of_any_numeric_type_are_read(msr, tmp_path):
    data = small_msr(msr)
    names = data["split"]["xsub_train"][:3]
    for name, label in zip(names, (np.int64(4), 5.0, np.float32(6.0))):
        _ann(data, name)["label"] = label
    clips, _ = read_pyskl(_dump(data, tmp_path / "ok.pkl"), "xsub_train")
    assert [(c.name, c.label, type(c.label)) for c in clips[:3]] == [(n, l, int) for n, l in zip(names, (4, 5, 6))]


def test_authors_label_file_labels_must_be_whole_numbers(msr, tmp_path):
    anns = small_msr(msr)["annotations"][:3]
    names = [a["frame_dir"] for a in anns]
    _dump(dict(annotations=anns), tmp_path / "val_data.pkl")
    for labels, message in (([0, 1.7, 2], rf"clip '{names[1]}': label 1\.7 is not a whole number"),
                            ([0, 1, "x"], rf"clip '{names[2]}': label 'x' is not a class index")):
        _dump([names, labels], tmp_path / "val_label.pkl")
        with pytest.raises(DatasetError, match=rf"val_label\.pkl: .*\({message}"):
            read_authors(tmp_path / "val_data.pkl", tmp_path / "val_label.pkl")


def test_train_cli_refuses_the_issues_file_before_training(msr, tmp_path, capsys):
    """The issue's case: ±3e38 in a clip gave a NaN loss, exit 0 and a "new best" checkpoint."""
    data = small_msr(msr)
    clip = data["split"]["xsub_train"][0]
    _ann(data, clip)["keypoint"][0, :, :, 0] = 3e38
    _ann(data, clip)["keypoint"][0, ::2, :, 0] = -3e38
    path = _dump(data, tmp_path / "issue.pkl")
    work = tmp_path / "work"
    assert train_cli.main([str(MSR_CONFIG), "--data", str(path), "--epochs", "1", "--work-dir", str(work),
                           *TINY]) == 2
    err = capsys.readouterr().err
    frames = _ann(data, clip)["keypoint"].shape[1]
    assert (f"error: {path}: clip '{clip}' has {frames * 20} coordinate(s) beyond ±1e+30 px (largest 3e+38) in "
            f"{frames} frame(s), first frame 0") in err
    assert not list(work.glob("**/*.pt")) and not list(work.glob("**/*.pth"))


# ---------------------------------------------------------------------------------- training

def test_a_nan_loss_stops_training_before_anything_is_saved(msr, tmp_path, capsys):
    """A learning rate of 1e37 sends the weights to ~1e38 in one AdamW step; the next batch's
    loss is NaN. Training stops there (exit 1), naming the iteration and the batch's clips."""
    torch.set_num_threads(1)
    path = _dump(small_msr(msr), tmp_path / "small.pkl")
    work = tmp_path / "work"
    code = train_cli.main([str(MSR_CONFIG), "--data", str(path), "--epochs", "2", "--work-dir", str(work), *TINY,
                           "train.lr=1e37", "train.batch_size=4"])
    err = capsys.readouterr().err
    assert code == 1, err
    line = next(x for x in err.splitlines() if x.startswith("error: "))
    assert re.fullmatch(r"error: training stopped at epoch 1, iteration 2 of the run: the loss is nan on a batch of "
                        r"4 clip\(s\): ('a\d\d_s\d\d_e\d\d', ){3}'a\d\d_s\d\d_e\d\d'; the batch's inputs are "
                        r"finite, so the training diverged: lower train\.lr or set train\.grad_clip\. No optimiser "
                        r"step was taken with it, and no checkpoint was written from it", line), line
    assert not list(work.glob("**/*.pt")) and not list(work.glob("**/*.pth"))  # epoch 1 never ended


def test_weights_with_nan_are_never_saved(msr, tmp_path, golden_weights):
    """Weights that turn NaN while the loss stayed finite (the last step of an epoch) stop the
    run at the epoch's end: neither mmn_last.pt nor mmengine's epoch_1.pth is written."""
    from mmengine.hooks import Hook

    from mmn.training.engine import NonFiniteWeightsError, PlainResumeStateHook, build_runner, load_config

    torch.set_num_threads(1)
    path = _dump(small_msr(msr), tmp_path / "small.pkl")
    cfg = load_config(MSR_CONFIG, {"train.epochs": 1, "train.batch_size": 8, "train.warmup_epochs": 0,
                                   "loader.num_workers": 0, "checkpoint.interval": 1}, data=path)
    work = tmp_path / "work"
    runner = build_runner(cfg, work, device="cpu")

    class Diverge(Hook):  # what an overflowing backward pass does to one tensor
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            with torch.no_grad():
                runner.model.mmn.head.weight[0, 0] = float("nan")

    runner.register_hook(Diverge(), priority="LOWEST")
    with pytest.raises(NonFiniteWeightsError, match=r"the model's weights hold 1 NaN/infinite value\(s\) in 1 "
                                                    r"tensor\(s\), first 'head\.weight'; refused to save the "
                                                    r"checkpoints of epoch 1"):
        runner.train()
    assert not list(work.glob("*.pt")) and not list(work.glob("*.pth"))

    # every other door: the project format, and mmengine's resume checkpoints
    model = load_official(golden_weights)
    with torch.no_grad():
        model.STPE[1, 2] = float("inf")
    with pytest.raises(CheckpointError, match=r"best\.pt: not written: the model's weights hold 1 NaN/infinite "
                                              r"value\(s\) in 1 tensor\(s\), first 'STPE'"):
        save_checkpoint(tmp_path / "best.pt", model, taxonomy=model.meta.taxonomy, layout=model.meta.layout,
                        modality="joint")
    assert not (tmp_path / "best.pt").exists()
    with pytest.raises(NonFiniteWeightsError, match="refused to save mmengine's resume checkpoint"):
        PlainResumeStateHook().before_save_checkpoint(runner, {"state_dict": {"mmn.STPE": model.STPE.detach()},
                                                               "meta": {}})


def test_a_checkpoint_with_nan_weights_fails_up_front_naming_it(golden_weights, tmp_path, capsys):
    """The issue's "new best" file failed every video at `pictures` without naming it: now
    loading refuses it, so the pipeline stops before any video, and --init-from too."""
    from pipelines import video_to_labels

    state = torch.load(golden_weights, map_location="cpu", weights_only=True)
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 10)
    state[key] = state[key].clone()
    state[key].view(-1)[:3] = float("nan")
    bad = tmp_path / "mmn_best.pt"
    torch.save(state, bad)  # a file written outside save_checkpoint's guard
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(bad))}: its weights hold 3 NaN/infinite value\(s\) "
                                              rf"in 1 tensor\(s\), first '{re.escape(key.removeprefix('module.'))}'"):
        load_official(bad)

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(VIDEOS_DIR / "0019_02_0078.mp4", videos / "0019_02_0078.mp4")
    out = tmp_path / "out"
    assert video_to_labels.main([str(videos), "--out", str(out), "--weights", str(bad), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: its weights hold 3 NaN/infinite value(s)" in err
    assert not out.exists() or not list(out.rglob("*.labels.json"))  # stopped before any video


# ---------------------------------------------------------------------------------- item 9: annotation import

def _pympi_eaf(path: Path, values: list[tuple[int, int, str]]) -> Path:
    """An ELAN file made by pympi-ling (another program), tier 'Behaviour'."""
    from pympi.Elan import Eaf

    eaf = Eaf(author="test")
    eaf.add_tier("Behaviour")
    for start, end, value in values:
        eaf.add_annotation("Behaviour", start, end, value)
    eaf.to_file(str(path))
    return path


def test_markup_inside_an_elan_value_is_refused_not_dropped(tmp_path):
    from pipelines.formats.elan import read_eaf_spans
    from pipelines.formats.spans import AnnotationError

    path = _pympi_eaf(tmp_path / "coded.eaf", [(0, 800, "nod"), (900, 1500, "a<b")])
    spans = read_eaf_spans(path)  # pympi escapes a '<' in a value: it is text, and comes back as written
    assert [(s.start_s, s.end_s, s.label) for s in spans] == [(0.0, 0.8, "nod"), (0.9, 1.5, "a<b")]
    text = path.read_text(encoding="utf-8")
    assert text.count("<ANNOTATION_VALUE>nod</ANNOTATION_VALUE>") == 1
    (tmp_path / "marked.eaf").write_text(text.replace("<ANNOTATION_VALUE>nod</ANNOTATION_VALUE>",
                                                      "<ANNOTATION_VALUE>n<b>o</b>d</ANNOTATION_VALUE>"),
                                         encoding="utf-8")
    with pytest.raises(AnnotationError, match=r"marked\.eaf:\d+: annotation a\d+ \(tier 'Behaviour'\): its "
                                              r"ANNOTATION_VALUE holds an element <b> \(line \d+\); ELAN values are "
                                              r"plain text"):
        read_eaf_spans(tmp_path / "marked.eaf")


@pytest.mark.parametrize("digits", [4000, 5000])
def test_a_huge_time_slot_is_refused_with_a_short_message(tmp_path, digits):
    from pipelines.formats.elan import read_eaf_spans
    from pipelines.formats.spans import AnnotationError

    path = _pympi_eaf(tmp_path / "coded.eaf", [(0, 800, "nod"), (900, 1500, "shake")])
    text = path.read_text(encoding="utf-8")
    assert 'TIME_VALUE="1500"' in text
    huge = tmp_path / "huge.eaf"
    huge.write_text(text.replace('TIME_VALUE="1500"', f'TIME_VALUE="{"7" * digits}"'), encoding="utf-8")
    with pytest.raises(AnnotationError) as e:
        read_eaf_spans(huge)
    msg = str(e.value)
    assert re.fullmatch(rf"{re.escape(str(huge))}:\d+: time slot 'ts\d' has TIME_VALUE='7{{40}}'… \({digits} "
                        rf"characters\), not whole milliseconds", msg), msg[:300]


def test_thousands_of_spans_without_a_window_give_a_short_error(tmp_path, golden_raw, capsys):
    """3000 spans too short for any window made a 365 KB one-line error: now a count and the
    first few. The skeleton comes from the real golden MA-52 clip (precomputed pose)."""
    from pipelines import build_dataset as build_cli

    skeleton = golden_raw[2][:75]  # 0030_01_0002 has 75 frames
    poses = _dump(dict(annotations=[dict(frame_dir="0030_01_0002", keypoint=skeleton[None],
                                         keypoint_score=np.ones((1, 75, 44), np.float32))]), tmp_path / "poses.pkl")
    table = tmp_path / "spans.csv"
    rows = [f"0030_01_0002.mp4,{i * 0.0008:.4f},{i * 0.0008 + 0.0004:.4f},code {i}" for i in range(3000)]
    table.write_text("video,start_s,end_s,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "data.pkl"
    code = build_cli.main([str(table), "--videos", str(VIDEOS_DIR), "--out", str(out), "--window", "0.5",
                           "--stride", "0.25", "--pose-backend", "precomputed", "--pose-results", str(poses)])
    err = capsys.readouterr().err
    assert code == 1, err[-2000:]
    line = next(x for x in err.splitlines() if x.startswith("error: "))
    assert len(line) < 2000, f"{len(line)} characters"
    assert line.startswith(f"error: no labelled window is left: 3000 spans without a window, the first 5: span "
                           f"{table}:2: shorter than a window")
    assert line.endswith("; and 2995 more")
    assert f"span {table}:6:" in line and f"{table}:7:" not in line
