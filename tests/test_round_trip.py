"""The annotation loop on real video, through the README's commands: label → ELAN → correct →
build a dataset → train → label again with the lab's own class names."""
import csv
import json
import shutil

import pytest
from pympi.Elan import Eaf

from mmn import load_official
from tests.cli import run_cli
from tests.data import ROOT, VIDEOS_DIR

# the lab's own coding scheme: one code per bundled clip
SCHEME = {"0010_02_0101": "head turn", "0019_02_0078": "nod", "0030_01_0002": "body rock"}


def _cli(module, *args):
    res = run_cli(module, *args)
    assert res.returncode in (0, 1), res.stderr[-3000:]
    return res


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_label_correct_in_elan_build_train_and_label_again(tmp_path, golden_weights):
    videos = tmp_path / "videos"
    videos.mkdir()
    for clip in VIDEOS_DIR.glob("*.mp4"):  # two recordings of each action: whole videos go to train or val
        for take in ("a", "b"):
            shutil.copy(clip, videos / f"{clip.stem}_{take}.mp4")
    first = tmp_path / "first"
    _cli("pipelines.video_to_labels", videos, "--out", first, "--weights", golden_weights, "--elan",
         "--device", "cpu")

    # the coder opens each .eaf in ELAN and replaces the micro-action tier with the lab's codes
    corrected = tmp_path / "corrected"
    corrected.mkdir()
    for eaf_path in sorted(first.glob("*.eaf")):
        eaf = Eaf(str(eaf_path))
        assert "micro-action" in eaf.get_tier_names() and "window top-1" in eaf.get_tier_names()
        key = eaf_path.name.removesuffix(".eaf")
        label = SCHEME[key[:-2]]
        duration_ms = max(e for _, e, _ in eaf.get_annotation_data_for_tier("window top-1"))  # pympi: ms
        if "micro-action p" in eaf.get_tier_names():  # the probabilities of the replaced segments
            eaf.remove_tier("micro-action p")
        eaf.remove_all_annotations_from_tier("micro-action")
        eaf.add_annotation("micro-action", 0, int(duration_ms), label)
        eaf.to_file(str(corrected / eaf_path.name))
    data = tmp_path / "data.pkl"
    _cli("pipelines.build_dataset", *sorted(corrected.glob("*.eaf")), "--out", data, "--videos", videos,
         "--tier", "micro-action", "--window", "1.0", "--stride", "0.25", "--val-fraction", "0.34", "--seed", "1")
    assert data.is_file()

    work = tmp_path / "work"
    _cli("mmn.train", ROOT / "configs" / "custom_joint.py", "--data", data, "--epochs", "2", "--work-dir", work,
         "--device", "cpu", "--cfg-options", "train.batch_size=4", "train.warmup_epochs=1", "train.val_interval=1",
         "loader.num_workers=0", "checkpoint.interval=1")
    model = load_official(work / "mmn_best.pt")
    assert sorted(model.meta.taxonomy.class_names) == sorted(SCHEME.values())
    assert model.meta.taxonomy.codes is None and model.meta.taxonomy.body_levels is None

    again = first  # the same output folder: the skeletons are reused, the labels redone (new checkpoint)
    _cli("pipelines.video_to_labels", videos, "--out", again, "--weights", work / "mmn_best.pt", "--elan",
         "--threshold", "0", "--device", "cpu")
    names = set(SCHEME.values())
    for doc_path in again.glob("*.labels.json"):
        doc = json.loads(doc_path.read_text())
        assert doc["model"]["taxonomy"]["name"] == "custom" and doc["model"]["taxonomy"]["body_levels"] is None
        assert {r["name"] for w in doc["windows"] for r in w.get("top_k", [])} <= names
        assert doc["segments"] and {s["name"] for s in doc["segments"]} <= names
        key = doc_path.name.removesuffix(".labels.json")
        eaf = Eaf(str(again / f"{key}.eaf"))
        values = {v for _, _, v in eaf.get_annotation_data_for_tier("micro-action")}
        assert values and values <= names
        assert not [t for t in eaf.get_tier_names() if t.startswith("body-level")]
        with open(again / f"{key}.events.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert rows and {r["name"] for r in rows} <= names and all(r["code"] == "" for r in rows)
