"""Where the Ray engine runs: a local Ray bound to 127.0.0.1, or a cluster checked before
joining it, and how its stages are sized to fit (:func:`plan_stages`). Nothing here imports
``ray`` at load time."""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sys
from types import ModuleType

from pipelines.engines.flags import RaySettings

__all__ = ["RAY_CONNECT_TIMEOUT_S", "Plan", "PlanError", "RaySession", "check_ray_address", "cluster_size",
           "keep_ray_on_loopback", "plan_stages"]


class PlanError(ValueError):
    """The flags ask for more than the Ray cluster has (a usage error, exit status 2)."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """What each stage reserves on a cluster with ``cpus`` CPUs and ``gpus`` GPUs."""

    cpus: float
    gpus: float
    nodes: int
    pose_actors: int
    pose_cpus: float
    mmn_actors: int        # 0: no model stage (no --weights)
    mmn_cpus: float
    mmn_gpus: float
    writer_cpus: float

    @property
    def reserved_cpus(self) -> float:
        return self.pose_actors * self.pose_cpus + self.mmn_actors * self.mmn_cpus + self.writer_cpus

    def describe(self) -> str:
        mmn = (f"{self.mmn_actors} MMN actor(s) × {self.mmn_cpus:g} CPU" +
               (f" + {self.mmn_gpus:g} GPU" if self.mmn_gpus else "") if self.mmn_actors else "no MMN stage")
        return (f"{self.pose_actors} pose actor(s) × {self.pose_cpus:g} CPU, {mmn}, writers {self.writer_cpus:g} CPU "
                f"each, on {self.nodes} node(s) with {self.cpus:g} CPUs and {self.gpus:g} GPUs")


def plan_stages(cpus: float, gpus: float, nodes: int, settings: RaySettings, *, has_model: bool,
                device: str = "auto", export_clips: bool = False) -> Plan:
    """Size the stages so that their CPU reservations fit the cluster (otherwise stages wait
    for each other and run one after another). Raises ValueError (a usage error) when the
    flags ask for more than the cluster has (:class:`PlanError`)."""
    mmn_actors = settings.mmn_actors if has_model else 0
    mmn_gpus = 0.0
    if has_model and device != "cpu":
        if settings.mmn_gpus is not None:
            mmn_gpus = settings.mmn_gpus
        elif gpus > 0:
            mmn_gpus = min(1.0, gpus / mmn_actors)
        if device == "cuda" and gpus <= 0:
            raise PlanError("--device cuda was asked for, but the Ray cluster has no GPU")
        if mmn_gpus * mmn_actors > gpus + 1e-9:
            raise PlanError(f"{mmn_actors} MMN actor(s) × {mmn_gpus:g} GPU need more than the cluster's "
                             f"{gpus:g} GPU(s)")
    others = mmn_actors * settings.mmn_cpus + settings.writer_cpus
    pose_actors = settings.pose_actors
    if pose_actors is None:
        # leave the writers room to keep up: clips cost about a third of the pose work
        writers = max(settings.writer_cpus, cpus * (0.25 if export_clips else 0.1))
        pose_actors = max(1, int((cpus - mmn_actors * settings.mmn_cpus - writers + 1e-9) // settings.pose_cpus))
    plan = Plan(cpus, gpus, nodes, pose_actors, settings.pose_cpus, mmn_actors, settings.mmn_cpus, mmn_gpus,
                settings.writer_cpus)
    if plan.reserved_cpus > cpus + 1e-9:
        raise PlanError(f"the stages would reserve {plan.reserved_cpus:g} CPUs ({pose_actors} pose actor(s) × "
                         f"{settings.pose_cpus:g} + {others:g} for MMN and the writers) but the Ray cluster has "
                         f"{cpus:g}: lower --pose-actors or --pose-cpus (or --mmn-cpus, --writer-cpus)")
    return plan


RAY_CONNECT_TIMEOUT_S = 20.0  # a --ray-address that does not answer within this is a usage error


def keep_ray_on_loopback() -> None:
    """Make this process's Ray advertise and bind 127.0.0.1, not the machine's outward address.

    Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when ``ray`` is first imported, into
    ``ray_constants.ENABLE_RAY_CLUSTER``; while it is true, Ray resolves 127.0.0.1 to the
    outward address and its servers listen on every interface. The variable is set for the
    processes Ray starts, and the constant too where ``ray`` was imported already.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False


def check_ray_address(address: str, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`PlanError` naming ``address`` unless a TCP connection to it opens within
    ``timeout_s`` (Ray itself retries an unreachable GCS for minutes)."""
    if address == "auto" or "://" in address:
        return  # Ray finds "auto" itself; a ray:// client address is checked by Ray's client
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise PlanError(f"--ray-address {address!r}: expected HOST:PORT of a Ray head node's GCS (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise PlanError(f"--ray-address {address!r}: no Ray head answers there ({e.strerror or e}); "
                        f"is the cluster started (ray start --head) and the port right?") from None


def _is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    return host == "localhost" or host.startswith("127.") or host == "::1"


class RaySession:
    """Connect to (or start) Ray; close what this run started."""

    def __init__(self, address: str | None) -> None:
        self.address, self.started = address, False

    def __enter__(self) -> ModuleType:
        if self.address is None or _is_loopback(self.address):
            keep_ray_on_loopback()  # before ray is imported where possible (see there)
        if self.address is not None:
            check_ray_address(self.address)
        import ray

        if ray.is_initialized():  # a caller's own Ray (in-process use): use it, leave it running
            return ray
        common = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
        if self.address is None:
            ray.init(address="local", _node_ip_address="127.0.0.1", **common)
        else:
            import core
            import mmn
            import pipelines
            import pose

            ray.init(address=self.address, runtime_env={"py_modules": [core, pose, mmn, pipelines],
                                                        "excludes": ["__pycache__", "*.pyc"]}, **common)
        self.started = True
        return ray

    def __exit__(self, *exc: object) -> None:
        if self.started:
            import ray

            ray.shutdown()


def cluster_size(ray: ModuleType) -> tuple[float, float, int]:
    res = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return float(res.get("CPU", 0.0)), float(res.get("GPU", 0.0)), nodes
