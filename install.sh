#!/usr/bin/env bash
# Set up .venv with everything the project needs, offline-capable after install.
#   ./install.sh            runtime + MediaPipe (default pose backend) + app, training, ray, boris and dev extras
#   ./install.sh --mmpose   also the mmpose backend (OpenMMLab packages --no-deps)
# Safe to re-run. PYTHON picks the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")"
with_mmpose=0
for arg in "$@"; do
  case "$arg" in
    --mmpose) with_mmpose=1 ;;
    *) echo "usage: ./install.sh [--mmpose]" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
# mediapipe 0.10.21 (the default pose backend) has wheels for CPython 3.9-3.12 only.
if ! "$PY" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))'; then
  echo "install.sh: $("$PY" --version 2>&1) found; the project needs Python 3.10-3.12 (mediapipe 0.10.21," \
       "the offline pose estimator, has no wheel for newer versions). Run e.g. PYTHON=python3.12 ./install.sh" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# 1. torch first: 2.13.0 (a CPU wheel on CPU machines); later ranges are then already satisfied.
pip install -q "torch==2.13.0"
# 2. the project, its runtime dependencies, Ray Data (--engine ray; no torch of its own) and the dev tools.
pip install -q -e ".[app,train,dev,ray,boris]"
# 3. MediaPipe 0.10.21: the last release that ships its Holistic models inside the wheel.
#    --no-deps: its declared needs (numpy<2, jax, opencv-contrib-python) are unused by Holistic
#    and opencv-contrib would share cv2/ with opencv-python.
pip install -q --no-deps "mediapipe==0.10.21"
if [ "$with_mmpose" = 1 ]; then
  pip install -q -e ".[app,train,dev,ray,boris,mmpose]"
  pip install -q --no-deps "mmpose==1.3.2" "mmcv-lite==2.1.0" "mmdet==3.3.0"
  python -c "import xtcocotools" 2>/dev/null || \
    pip install -q --no-deps --no-build-isolation --no-binary xtcocotools "xtcocotools==1.14.3"
fi
python -c "import torch, cv2, mediapipe, h5py; print(f'ready: torch {torch.__version__}, opencv {cv2.__version__}, mediapipe {mediapipe.__version__}')"
