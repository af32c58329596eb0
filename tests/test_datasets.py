"""Dataset readers (authors' release format, pyskl), validation and SkeletonDataset, on real data."""
import os
import pickle

import numpy as np
import pytest
import torch

from core.layouts import MA52_44, MSR_ACTION3D_20
from mmn.preprocess import eval_pipeline
from mmn.training.augment import train_pipeline
from mmn.training.datasets import (
    DatasetError,
    SkeletonDataset,
    load_split,
    read_authors,
    read_label_file,
    read_pyskl,
    validate,
)
from mmn.training.engine import layout_from_cfg


def _dump(obj, path):
    with open(path, "wb") as f:
        pickle.dump(obj, f)
    return path


def write_authors_split(root, split, clips, labels, label_form="records"):
    """Authors' format from raw (L, V, 2) clips: {split}_data.pkl and {split}_label.pkl."""
    names = [f"{split}{i:04d}" for i in range(len(clips))]
    anns = [dict(frame_dir=n, keypoint=c[None].astype(np.float32), keypoint_score=np.ones(c.shape[:2])[None],
                 total_frames=len(c), img_shape=(1296, 1080), original_shape=(1296, 1080), label=int(l))
            for n, c, l in zip(names, clips, labels)]
    _dump(dict(split={split: names}, annotations=anns), root / f"{split}_data.pkl")
    if label_form == "records":  # what the authors' create_label_pkls.py writes
        lab = [dict(file_name=n, length=len(c), label=int(l)) for n, c, l in zip(names, clips, labels)]
    elif label_form == "pair":
        lab = [list(names), [int(l) for l in labels]]
    elif label_form == "columns":
        lab = dict(file_name=list(names), label=[int(l) for l in labels])
    else:
        lab = {n: int(l) for n, l in zip(names, labels)}
    if label_form is not None:
        _dump(lab, root / f"{split}_label.pkl")
    return names


# ---------------------------------------------------------------- pyskl (the MSR Action3D fixture)

def test_pyskl_msr_splits_are_read_in_split_order(msr_pkl):
    train, names = read_pyskl(msr_pkl, "xsub_train")
    val, _ = read_pyskl(msr_pkl, "xsub_val")
    assert len(train) == 291 and len(val) == 275 and len(names) == 20
    assert not {c.name for c in train} & {c.name for c in val}
    assert all(int(c.name.split("_")[1][1:]) % 2 == 1 for c in train)  # odd subjects train
    for c in train + val:
        assert c.keypoint.dtype == np.float32 and c.keypoint.shape[1:] == (20, 2) and 13 <= len(c.keypoint) <= 255
    assert sorted({c.label for c in train}) == list(range(20))
    assert train[0].name == "a01_s01_e01" and train[0].label == 0
    validate(train, 20, 20, "msr")


def test_pyskl_unknown_split_is_a_clear_error(msr_pkl):
    with pytest.raises(DatasetError, match="no split 'xsub_test'.*xsub_train"):
        read_pyskl(msr_pkl, "xsub_test")


def test_load_split_from_a_config_section(msr_pkl):
    data = dict(format="pyskl", path=str(msr_pkl), train=dict(split="xsub_train"), val=dict(split="xsub_val"))
    clips, names = load_split(data, "val", 20, 20)
    assert len(clips) == 275 and names[0] == "high arm wave"
    with pytest.raises(DatasetError, match="has 20 joints; the layout has 44"):
        load_split(data, "val", 44, 52)
    with pytest.raises(DatasetError, match="no 'test' split"):
        load_split(data, "test", 20, 20)


# ---------------------------------------------------------------- authors' format

@pytest.mark.parametrize("form", ["records", "pair", "columns", "mapping"])
def test_authors_format_label_forms(tmp_path, golden_raw, form):
    labels = [3, 14, 0, 51, 7, 7]
    names = write_authors_split(tmp_path, "train", golden_raw, labels, form)
    clips = read_authors(tmp_path / "train_data.pkl", tmp_path / "train_label.pkl")
    assert [c.name for c in clips] == names and [c.label for c in clips] == labels
    for c, raw in zip(clips, golden_raw):
        np.testing.assert_array_equal(c.keypoint, raw)


def test_authors_label_order_wins_over_data_order(tmp_path, golden_raw):
    names = write_authors_split(tmp_path, "val", golden_raw[:3], [0, 1, 2])
    _dump([dict(file_name=n, label=l) for n, l in zip(names[::-1], [2, 1, 0])], tmp_path / "val_label.pkl")
    clips = read_authors(tmp_path / "val_data.pkl", tmp_path / "val_label.pkl")
    assert [c.name for c in clips] == names[::-1]
    np.testing.assert_array_equal(clips[0].keypoint, golden_raw[2])


def test_authors_names_must_match(tmp_path, golden_raw):
    names = write_authors_split(tmp_path, "train", golden_raw[:3], [0, 1, 2])
    _dump([dict(file_name=n, label=0) for n in names[:2]], tmp_path / "l1.pkl")
    with pytest.raises(DatasetError, match="1 clip\\(s\\) of the data have no label, first 'train0002'"):
        read_authors(tmp_path / "train_data.pkl", tmp_path / "l1.pkl")
    _dump([dict(file_name=n, label=0) for n in names + ["ghost"]], tmp_path / "l2.pkl")
    with pytest.raises(DatasetError, match="not in the data, first 'ghost'"):
        read_authors(tmp_path / "train_data.pkl", tmp_path / "l2.pkl")
    _dump({"something": "else", "file_name": [1]}, tmp_path / "l3.pkl")
    with pytest.raises(DatasetError, match="not a label file"):
        read_label_file(tmp_path / "l3.pkl")


def test_authors_without_label_file_uses_annotation_labels_or_unlabelled(tmp_path, golden_raw):
    write_authors_split(tmp_path, "test", golden_raw[:2], [5, 6], label_form=None)
    data = dict(format="authors", root=str(tmp_path), test=dict(split="test"))
    clips, _ = load_split(data, "test", 44, 52)
    assert [c.label for c in clips] == [5, 6]
    anns = [dict(frame_dir=f"t{i}", keypoint=c[None]) for i, c in enumerate(golden_raw[:2])]
    _dump(dict(annotations=anns), tmp_path / "blind_data.pkl")
    blind = dict(format="authors", root=str(tmp_path), test=dict(split="blind"))
    with pytest.raises(DatasetError, match="label -1"):
        load_split(blind, "test", 44, 52)
    clips, _ = load_split(blind, "test", 44, 52, allow_unlabelled=True)
    assert [c.label for c in clips] == [-1, -1]


def _with_nan(kp):
    kp = kp.copy()
    kp[0, 3, 5] = np.nan  # joint 5 of frame 3: two coordinates
    return kp


@pytest.mark.parametrize("break_it,message", [
    (lambda kp: kp[:, :0], "is empty \\(0 frames\\)"),
    (_with_nan, "has 2 NaN/infinite coordinate\\(s\\) in 1 frame\\(s\\), first frame 3"),
    (lambda kp: kp[:, :, :40], "has 40 joints; the layout has 44"),
    (lambda kp: kp[0], "expected \\(M, T, V, 2\\)"),
    (lambda kp: kp[:0], "no person"),
])
def test_bad_clips_are_named(tmp_path, golden_raw, break_it, message):
    write_authors_split(tmp_path, "train", golden_raw[:2], [0, 1])
    with open(tmp_path / "train_data.pkl", "rb") as f:
        obj = pickle.load(f)
    obj["annotations"][1]["keypoint"] = break_it(obj["annotations"][1]["keypoint"])
    _dump(obj, tmp_path / "train_data.pkl")
    data = dict(format="authors", root=str(tmp_path), train=dict(split="train"))
    with pytest.raises(DatasetError, match=f"train_data.pkl.*{message}" if "person" in message or "(M" in message
                       else f"clip 'train0001' {message}"):
        load_split(data, "train", 44, 52)


def test_label_out_of_range_is_an_error(tmp_path, golden_raw):
    write_authors_split(tmp_path, "train", golden_raw[:2], [0, 52])
    with pytest.raises(DatasetError, match="clip 'train0001' has label 52, outside \\[0, 52\\)"):
        load_split(dict(format="authors", root=str(tmp_path), train={}), "train", 44, 52)


def test_malicious_pickle_is_refused_not_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))
    _dump(dict(annotations=[Evil()]), tmp_path / "train_data.pkl")
    with pytest.raises(ValueError, match="refusing to load global"):
        load_split(dict(format="authors", root=str(tmp_path), train={}), "train", 44, 52)
    assert not (tmp_path / "pwned").exists()


def test_unknown_format_and_missing_files():
    with pytest.raises(DatasetError, match="format must be one of"):
        load_split(dict(format="csv", train={}), "train", 44, 52)
    with pytest.raises(DatasetError, match="no such data file"):
        load_split(dict(format="authors", root="/nonexistent", train={}), "train", 44, 52)


# ---------------------------------------------------------------- SkeletonDataset

def test_dataset_eval_samples_match_the_authors_preprocessing(tmp_path, golden, golden_raw):
    for modality in ("joint", "bone"):
        write_authors_split(tmp_path, "test", golden_raw, range(6))
        clips = read_authors(tmp_path / "test_data.pkl", tmp_path / "test_label.pkl")
        ds = SkeletonDataset(clips, eval_pipeline(MA52_44, modality))
        for i in range(6):
            s = ds[i]
            assert s["inputs"].shape == (2, 64, 44, 1) and s["index_t"].shape == (64,)
            assert int(s["label"]) == i and int(s["index"]) == i
            np.testing.assert_allclose(s["inputs"].numpy(), golden[modality][i], atol=1e-5)
            np.testing.assert_allclose(s["index_t"].numpy(), golden["index_t"][i], atol=1e-6)


def test_training_dataset_is_seeded_and_varies_between_draws(msr_pkl):
    clips, _ = read_pyskl(msr_pkl, "xsub_train")

    def draws(seed):
        ds = SkeletonDataset(clips[:3], train_pipeline(MSR_ACTION3D_20, "joint", augment=dict(p=1.0)), seed=seed)
        return [ds[0]["inputs"].numpy() for _ in range(2)]

    a, b, c = draws(7), draws(7), draws(8)
    np.testing.assert_array_equal(a[0], b[0])  # same seed, same stream
    assert not np.array_equal(a[0], a[1])      # a new draw each epoch
    assert not np.array_equal(a[0], c[0])      # another seed, another stream


def test_user_defined_layout_from_a_config_dict(msr_pkl):
    spec = dict(name="msr_custom", num_joints=20, centre_joint=2,
                bones=[[19, 2], [0, 2], [1, 2]],
                parts={"upper": [19, 2, 0, 1, 3, 7, 8, 9, 10, 11, 12], "lower": [6, 4, 5, 13, 14, 15, 16, 17, 18]})
    layout = layout_from_cfg(dict(layout=spec))
    assert layout.num_joints == 20 and layout.centre_joint == 2 and layout.partition[:3] == (19, 2, 0)
    clips, _ = read_pyskl(msr_pkl, "xsub_val")
    out = SkeletonDataset(clips[:1], eval_pipeline(layout, "bone"))[0]["inputs"].numpy()
    assert out.shape == (2, 64, 20, 1)
    # bone modality with three bones: only joints 19, 0 and 1 (model positions 0, 2, 3) are non-zero
    nonzero = np.flatnonzero(np.abs(out).sum(axis=(0, 1, 3)))
    np.testing.assert_array_equal(nonzero, [0, 2, 3])
    with pytest.raises(ValueError, match="parts must cover"):
        layout_from_cfg(dict(layout={**spec, "parts": {"all": list(range(19))}}))


def test_workers_and_ranks_draw_different_augmentations(monkeypatch, msr_pkl):
    clips, _ = read_pyskl(msr_pkl, "xsub_train")
    pipe = lambda: train_pipeline(MSR_ACTION3D_20, "joint", augment=dict(p=1.0))  # noqa: E731
    same = [clips[0]] * 2
    loader = torch.utils.data.DataLoader(SkeletonDataset(same, pipe(), seed=1), batch_size=1, num_workers=2)
    first_of_each_worker = [b["inputs"][0].numpy() for b in loader]  # sample i comes from worker i
    assert not np.array_equal(*first_of_each_worker)
    monkeypatch.setenv("RANK", "0")
    rank0 = SkeletonDataset(same, pipe(), seed=1)[0]["inputs"].numpy()
    monkeypatch.setenv("RANK", "1")
    rank1 = SkeletonDataset(same, pipe(), seed=1)[0]["inputs"].numpy()
    assert not np.array_equal(rank0, rank1)
