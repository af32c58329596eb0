"""Serve the web app: ``python -m app [--host H] [--port P] [--weights J.pt [--weights-bone B.pt]]
[--pose-backend mediapipe|mmpose] [--share] [--config app.toml]``.

Every flag can also come from the environment (``MMN_APP_HOST``, ``MMN_APP_PORT``,
``MMN_APP_WEIGHTS``, ...) or a TOML/JSON config file (``--config`` or ``MMN_APP_CONFIG``);
see :mod:`app.config`. Flags win over the environment, which wins over the file.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from app.config import POSE_BACKENDS, AppConfig, ConfigError, load_app_config


def build_parser() -> argparse.ArgumentParser:
    d = AppConfig()
    ap = argparse.ArgumentParser(prog="python -m app", description="MMN micro-action recognition web app.")
    ap.add_argument("--config", type=Path, help="TOML or JSON settings file (also $MMN_APP_CONFIG)")
    ap.add_argument("--host", help=f"address to listen on (default {d.host}; 0.0.0.0 for all)")
    ap.add_argument("--port", type=int, help=f"port (default {d.port})")
    ap.add_argument("--weights", type=Path, help="MMN joint checkpoint (the authors' MA-52 or mmn.train's)")
    ap.add_argument("--weights-bone", type=Path, help="MMN bone checkpoint: adds the bone and 2S choices")
    ap.add_argument("--pose-backend", choices=POSE_BACKENDS, help=f"pose estimator (default {d.pose_backend})")
    ap.add_argument("--device", help="auto, cpu or cuda (default auto)")
    ap.add_argument("--share", action="store_const", const=True, default=None,
                    help="also open a public gradio.live link (off by default)")
    ap.add_argument("--max-upload-mb", type=float, help=f"upload size limit in MB (default {d.max_upload_mb:g})")
    ap.add_argument("--max-duration-s", type=float, help=f"longest video in seconds (default {d.max_duration_s:g})")
    ap.add_argument("--queue-size", type=int, help=f"requests allowed to wait (default {d.queue_size})")
    ap.add_argument("--live-max-s", type=float, help=f"longest Live-tab session in seconds (default {d.live_max_s:g})")
    ap.add_argument("--live-sessions", type=int,
                    help=f"Live-tab sessions at the same time (default {d.live_sessions})")
    return ap


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def make_server(cfg: AppConfig, folders: Any) -> tuple[Any, dict[str, Any]]:
    """The queued Blocks app (private folders under ``folders``, an
    :class:`app.folders.RequestFolders`) and the keyword arguments for its ``launch()``. Raises
    :class:`app.engine.ModelError` when a configured checkpoint cannot be used."""
    from app.engine import Models
    from app.live_views import LIVE_CSS
    from app.summaries import CSS
    from app.ui import build_app

    models = Models.from_config(cfg)
    if models is None:
        print("note: no --weights: the app runs without action labels (skeleton, motion-energy heatmap "
              "and annotated video only)", file=sys.stderr)
    blocks = build_app(cfg, models, folders)
    blocks.queue(max_size=cfg.queue_size, default_concurrency_limit=cfg.concurrency)
    launch_kwargs = dict(server_name=cfg.host, server_port=cfg.port, share=cfg.share,
                         max_file_size=cfg.max_upload_bytes, allowed_paths=[str(Path(cfg.examples_dir).resolve())],
                         css=CSS + LIVE_CSS, footer_links=["api", "gradio"], show_error=False)
    return blocks, launch_kwargs


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k != "config"}
    try:
        cfg = load_app_config(args.config, os.environ, overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name in ("weights", "weights_bone"):
        p = getattr(cfg, name)
        if p is not None and not Path(p).is_file():
            print(f"error: {name.replace('_', '-')} {p}: no such file", file=sys.stderr)
            return 2

    from app.folders import RequestFolders

    folders = RequestFolders(cfg.temp_dir)
    # Gradio's upload/result cache goes into the private root unless the user chose a place.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(folders.root / "gradio"))
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: Gradio closes, folders are removed
    try:
        from app.engine import ModelError

        try:
            blocks, launch_kwargs = make_server(cfg, folders)
        except ModelError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"serving on http://{cfg.host}:{cfg.port} (limits: {cfg.limits_text()})", file=sys.stderr, flush=True)
        blocks.launch(**launch_kwargs)
    except KeyboardInterrupt:
        pass
    finally:
        folders.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
