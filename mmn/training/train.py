"""Train MMN on a skeleton dataset with mmengine's Runner.

    python -m mmn.train CONFIG [--work-dir DIR] [--resume [CKPT]] [--cfg-options KEY=VALUE ...]
    python -m mmn.train configs/custom_joint.py --data DATA.pkl [--epochs N] [--init-from CKPT] --work-dir DIR
    torchrun --nproc-per-node N -m mmn.train CONFIG [...]          # DDP, one process per GPU/CPU share

``--data`` names a pyskl data file (``data.path``); its ``label_names`` give the class list and
``num_classes``, and the trained checkpoints carry that taxonomy. ``--init-from`` starts from a
released or trained MMN checkpoint: every backbone tensor is loaded strictly, the classification
head is kept when the class list is the same and re-initialised otherwise (logged, and recorded
as ``init_from`` in the checkpoints' provenance).

The work directory (default ``work_dirs/<config name>``) receives a dated log folder (the text
log, ``vis_data/`` scalars and TensorBoard events), mmengine's resume checkpoints
``epoch_*.pth`` and the project-format ``mmn_best.pt`` / ``mmn_last.pt``, which
:func:`mmn.load_official`, ``mmn.classify``, ``mmn.test``, the pipeline and the app read.
Without a GPU, training runs on the CPU (AMP off); with torchrun on CPU the ranks talk gloo.

A NaN or infinite loss stops training before the optimiser step, and weights holding NaN or
infinity are never saved (:class:`mmn.training.engine.TrainingStopped`). Exit status: 0 trained,
1 training stopped that way (the message says at which iteration and on which clips), 2 usage,
config, data or checkpoint error (the message names the file and, for data, the clip).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from mmengine.config import DictAction

from mmn.checkpoint import CheckpointError
from mmn.training.engine import TrainingStopped, build_runner, load_config


def _init_cpu_distributed() -> None:
    """mmengine's own initialisation calls ``torch.cuda.set_device``, which a CPU build lacks:
    start the gloo process group here; mmengine then finds it initialised."""
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="gloo")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mmn.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("config", type=Path, help="experiment config, e.g. configs/ma52_joint.py")
    ap.add_argument("--work-dir", type=Path, help="output folder (default work_dirs/<config name>)")
    ap.add_argument("--resume", nargs="?", const=True, default=False,
                    help="resume from the latest checkpoint in the work dir, or from the given .pth")
    ap.add_argument("--data", type=Path, metavar="DATA.pkl",
                    help="pyskl data file (sets data.path; its label_names set the classes and num_classes)")
    ap.add_argument("--epochs", type=int, metavar="N", help="training epochs (sets train.epochs)")
    ap.add_argument("--init-from", type=Path, metavar="CKPT",
                    help="start from this MMN checkpoint (released or trained): backbone loaded strictly, "
                         "head kept for the same class list, else re-initialised")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--threads", type=int, help="CPU threads per process (default: cores / processes)")
    ap.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                    help="override config keys, e.g. train.epochs=5 data.path=/data/x.pkl")
    args = ap.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        ap.error(f"--epochs must be at least 1, got {args.epochs}")
    options = dict(args.cfg_options)
    if args.epochs is not None:
        options["train.epochs"] = args.epochs

    try:
        cfg = load_config(args.config, options, data=args.data)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    work_dir = args.work_dir or Path(cfg.get("work_root", "work_dirs")) / args.config.stem
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else \
        ("cpu" if args.device == "auto" else args.device)
    if device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda was asked for, but torch sees no CUDA device", file=sys.stderr)
        return 2

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = "pytorch" if "RANK" in os.environ and world_size > 1 else "none"
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    threads = args.threads or cfg.get("threads") or max(1, (os.cpu_count() or 1) // max(1, local_size))
    torch.set_num_threads(int(threads))
    if launcher == "pytorch" and device == "cpu":
        _init_cpu_distributed()

    try:
        runner = build_runner(cfg, work_dir, launcher=launcher, resume=args.resume, device=device,
                              world_size=world_size if launcher != "none" else 1, init_from=args.init_from)
    except ValueError as e:  # dataset, config, resume and --init-from problems: a clear message, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        runner.train()
    except (TrainingStopped, CheckpointError) as e:  # diverged: nothing broken was saved
        runner.logger.error(str(e))
        print(f"error: {e}", file=sys.stderr)
        return 1
    if launcher == "pytorch" and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
