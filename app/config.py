"""Web-app settings: defaults, then a TOML/JSON config file, then ``MMN_APP_*`` variables,
then command-line flags (each later source wins).

Config-file keys are the :class:`AppConfig` field names (``-`` or ``_``), e.g.::

    host = "0.0.0.0"
    port = 8080
    weights = "checkpoints/MA52_J.pt"
    max_upload_mb = 200
    max_duration_s = 120

Environment variables are ``MMN_APP_`` + the upper-case field name (``MMN_APP_PORT=8080``,
``MMN_APP_WEIGHTS=...``); ``MMN_APP_CONFIG`` names a config file.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pipelines.stages.pose import PoseOptions
from pose.estimators import BACKENDS as ESTIMATOR_BACKENDS
from pose.estimators import DEFAULT_QUALITY as DEFAULT_POSE_QUALITY
from pose.estimators import POSE_QUALITIES

ROOT = Path(__file__).resolve().parents[1]
ENV_PREFIX = "MMN_APP_"
# the estimators that read pixels (precomputed results belong to the folder job, not uploads)
POSE_BACKENDS = tuple(b for b in ESTIMATOR_BACKENDS if b != "precomputed")


class ConfigError(ValueError):
    """A setting is missing, unknown or has a bad value; the message says which and why."""


@dataclass(frozen=True)
class AppConfig:
    """Everything ``python -m app`` can be told."""

    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    weights: Path | None = None           # MMN joint checkpoint (the authors' or mmn.train's)
    weights_bone: Path | None = None      # bone checkpoint: enables the bone and 2S choices
    device: str = "auto"
    pose_backend: str = PoseOptions.backend
    pose_options: dict = field(default_factory=dict)  # e.g. mmpose {config, checkpoint}
    pose_quality: str = DEFAULT_POSE_QUALITY  # mediapipe: fast or full (docs/pose-speed.md)
    max_upload_mb: float = 50.0           # upload size limit (also enforced by Gradio's upload route)
    max_duration_s: float = 60.0          # longest video accepted
    max_frames: int = 1800                # most frames accepted (bounds work whatever the frame rate)
    max_frame_pixels: int = 1920 * 1088   # largest frame accepted (width × height)
    queue_size: int = 8                   # requests waiting beyond this are turned away
    concurrency: int = 1                  # videos processed at the same time
    cache_ttl_s: int = 3600               # Gradio deletes served results older than this
    examples_dir: Path = ROOT / "examples" / "videos"
    temp_dir: Path | None = None          # parent of the private per-request folders
    live_max_s: float = 300.0             # longest Live-tab session (webcam), seconds
    live_sessions: int = 1                # Live-tab sessions at the same time (other browsers are told to wait)
    live_fps: float = 10.0                # webcam frames sent to the server per second (Live tab)
    live_idle_s: float = 30.0             # a live session without frames this long gives its place up

    def __post_init__(self) -> None:
        if not (0 < self.port < 65536):
            raise ConfigError(f"port must be 1..65535, got {self.port}")
        if self.pose_backend not in POSE_BACKENDS:
            raise ConfigError(f"pose_backend must be one of {', '.join(POSE_BACKENDS)}, got {self.pose_backend!r}")
        if self.pose_quality not in POSE_QUALITIES:
            raise ConfigError(f"pose_quality must be one of {', '.join(POSE_QUALITIES)}, got {self.pose_quality!r}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        for name in ("max_upload_mb", "max_duration_s", "live_max_s", "live_idle_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("queue_size", "concurrency", "cache_ttl_s", "max_frames", "max_frame_pixels", "live_sessions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (1.0 <= self.live_fps <= 30.0):
            raise ConfigError(f"live_fps must be between 1 and 30, got {self.live_fps}")
        if self.weights_bone is not None and self.weights is None:
            raise ConfigError("weights_bone needs weights (the joint stream) too")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def limits_text(self) -> str:
        """The limits, as stated on the page."""
        return (f"Video files only (mp4, mov, avi, mkv, webm, m4v, mpeg, wmv), up to "
                f"{self.max_upload_mb:g} MB and {self.max_duration_s:g} s (at most {self.max_frames} frames "
                f"of {self.max_frame_pixels / 1e6:.1f} megapixels).")

    def live_limits_text(self) -> str:
        """The Live tab's limits, as stated on the page."""
        at_once = "one session at a time" if self.live_sessions == 1 else f"{self.live_sessions} sessions at a time"
        return (f"Sessions up to {self.live_max_s:g} s, {at_once}; the webcam sends {self.live_fps:g} frames "
                f"a second (frames above {self.max_frame_pixels / 1e6:.1f} megapixels are scaled down).")


_FIELDS = {f.name: f for f in fields(AppConfig)}


def _coerce(name: str, value: object) -> object:
    """Turn a config-file or environment value into the field's type."""
    kind = _FIELDS[name].type
    try:
        if name in ("weights", "weights_bone", "temp_dir"):
            return None if value in (None, "") else Path(value).expanduser()
        if name == "examples_dir":
            return Path(value).expanduser()
        if name == "pose_options":
            return dict(json.loads(value) if isinstance(value, str) else value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(f"not a yes/no value: {value!r}")
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"not a whole number: {value!r}")
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}: {e}") from None


def _normalise(mapping: Mapping[str, Any], source: str) -> dict[str, Any]:
    out = {}
    for key, value in mapping.items():
        name = key.replace("-", "_").lower()
        if name not in _FIELDS:
            raise ConfigError(f"{source}: unknown setting {key!r} (known: {', '.join(_FIELDS)})")
        out[name] = _coerce(name, value)
    return out


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Settings from a ``.toml`` or ``.json`` file (a table ``[app]`` in TOML is also accepted)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror or e}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            try:
                import tomllib
            except ImportError:  # Python 3.10: the same parser from PyPI
                import tomli as tomllib

            data = tomllib.loads(text)
    except ValueError as e:
        raise ConfigError(f"config file {path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a table of settings")
    if set(data) == {"app"} and isinstance(data["app"], dict):
        data = data["app"]
    return _normalise(data, f"config file {path}")


def from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """Settings from ``MMN_APP_<FIELD>`` variables (``MMN_APP_CONFIG`` is not a field)."""
    found = {k[len(ENV_PREFIX):]: v for k, v in env.items()
             if k.startswith(ENV_PREFIX) and k != ENV_PREFIX + "CONFIG"}
    return _normalise(found, "environment")


def load_app_config(config_file: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> AppConfig:
    """Defaults ← config file (``config_file`` or ``$MMN_APP_CONFIG``) ← environment ← ``overrides``
    (command-line values; ``None`` means "not given")."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    config_file = config_file or env.get(ENV_PREFIX + "CONFIG") or None
    if config_file:
        values.update(read_config_file(config_file))
    values.update(from_environment(env))
    values.update(_normalise({k: v for k, v in (overrides or {}).items() if v is not None}, "command line"))
    return replace(AppConfig(), **values) if values else AppConfig()


def defaults() -> dict[str, Any]:
    """Field name → default value (for the command-line help)."""
    return {f.name: (f.default if f.default is not MISSING else f.default_factory())  # type: ignore[misc]
            for f in fields(AppConfig)}
