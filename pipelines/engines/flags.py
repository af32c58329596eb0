"""The engine flags of ``video_to_labels`` (``--engine`` and the Ray stages' sizes) and the
:class:`RaySettings` they make. Nothing here imports Ray: it must first be told to stay on
loopback (:func:`pipelines.engines.ray.keep_ray_on_loopback`)."""
from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from core.cli import non_negative_float, positive_float, positive_int

__all__ = ["ENGINES", "RaySettings", "add_engine_arguments", "ray_data_installed", "ray_settings"]

ENGINES = ("local", "ray")


@dataclasses.dataclass(frozen=True)
class RaySettings:
    """The ``--engine ray`` flags."""

    address: str | None = None         # None: start a local Ray on this machine
    pose_actors: int | None = None     # None: as many as the CPUs left by the other stages allow
    pose_cpus: float = 1.0
    mmn_actors: int = 1
    mmn_cpus: float = 0.5
    mmn_gpus: float | None = None      # None: 1 per actor when the cluster has GPUs (and --device allows)
    writer_cpus: float = 0.5
    batch_across_videos: bool = False

    @property
    def videos_per_model_call(self) -> int:
        # Ray Data waits until a call's videos have all come out of the pose stage: without
        # mixing windows across videos, one video per call keeps results streaming
        return 8 if self.batch_across_videos else 1


def ray_data_installed() -> bool:
    """Whether ``ray.data`` can be imported, found without importing ``ray``."""
    import importlib.util

    spec = importlib.util.find_spec("ray")  # a top-level name: nothing is imported
    return spec is not None and any((Path(d) / "data" / "__init__.py").is_file()
                                    for d in spec.submodule_search_locations or ())


class _EngineAction(argparse.Action):
    """``--engine ray`` without Ray installed is a usage error, found when parsing."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 value: str | Sequence[str] | None, option_string: str | None = None) -> None:
        if value == "ray" and not ray_data_installed():
            parser.error("--engine ray needs Ray Data: pip install '.[ray]' (./install.sh installs it)")
        setattr(namespace, self.dest, value)


def add_engine_arguments(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("engine", "where the videos are processed (see docs/ray.md)")
    g.add_argument("--engine", choices=ENGINES, default="local", action=_EngineAction,
                   help="local: one process, one video after another (default); ray: Ray Data over this machine's "
                        "cores or a cluster")
    g.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS") or None,
                   help="join this Ray cluster (default: $RAY_ADDRESS; none: start a local Ray on this machine)")
    g.add_argument("--pose-actors", type=positive_int,
                   help="pose estimators running at once (default: as many as the CPUs left by the other stages)")
    g.add_argument("--pose-cpus", type=positive_float, default=RaySettings.pose_cpus,
                   help="CPUs each pose actor reserves (may be fractional)")
    g.add_argument("--mmn-actors", type=positive_int, default=RaySettings.mmn_actors, help="MMN actors")
    g.add_argument("--mmn-cpus", type=positive_float, default=RaySettings.mmn_cpus,
                   help="CPUs each MMN actor reserves")
    g.add_argument("--mmn-gpus", type=non_negative_float,
                   help="GPUs each MMN actor reserves (default: 1 where the cluster has GPUs, else 0)")
    g.add_argument("--writer-cpus", type=positive_float, default=RaySettings.writer_cpus,
                   help="CPUs each write task (pictures, clip, labels JSON) reserves")
    g.add_argument("--mmn-batch-across-videos", action="store_true",
                   help="fill MMN batches with windows of several videos (fuller GPU batches; probabilities "
                        "then differ from the local engine's by ~1e-7)")


def ray_settings(args: argparse.Namespace) -> RaySettings:
    """The :class:`RaySettings` of parsed flags."""
    return RaySettings(address=args.ray_address, pose_actors=args.pose_actors, pose_cpus=args.pose_cpus,
                       mmn_actors=args.mmn_actors, mmn_cpus=args.mmn_cpus, mmn_gpus=args.mmn_gpus,
                       writer_cpus=args.writer_cpus, batch_across_videos=args.mmn_batch_across_videos)
