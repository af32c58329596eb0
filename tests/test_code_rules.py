"""Standing rules of the code (issue 21), checked on the source itself: no function in
pipelines/ or app/ over 80 lines; none of the stand-ins the stage functions replaced; the
folder CLI loads without the Ray engine; the labelling library's dataset builder and the
training engine's dataset reader have different names."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.data import ROOT

MAX_LINES = 80
GONE = re.compile(r"ReplayRecognizer|_Collected|_SkeletonFromPoseStage|class _Capture|\(BaseException\)")


def _sources() -> list[Path]:
    return sorted(p for d in ("pipelines", "app") for p in (ROOT / d).rglob("*.py"))


def test_no_function_over_80_lines():
    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long


def test_no_stand_ins_for_the_stages():
    found = [f"{p.relative_to(ROOT)}:{i}" for p in _sources()
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if GONE.search(line)]
    assert not found, found


def test_folder_cli_does_not_load_the_ray_engine():
    code = ("import sys, pipelines.video_to_labels\n"
            "print('pipelines.engines.ray' in sys.modules, 'ray' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.split() == ["False", "False"], res.stderr[-2000:]


def test_dataset_builder_and_training_reader_have_distinct_names():
    from pipelines import dataset_builder

    assert hasattr(dataset_builder, "build_training_set") and not hasattr(dataset_builder, "build_dataset")
