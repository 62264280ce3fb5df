#!/usr/bin/env bash
# Builds mmcv 2.1.0 with its C++ ops for the torch of the active Python and installs it.
#
# Why a script: PyPI has mmcv 2.1.0 (the newest that mmdet 3.3.0 and mmsegmentation 1.2.2 accept) as source only.
# - It must build against the installed torch, so without build isolation, and with MMCV_WITH_OPS=1: otherwise
#   it installs without `mmcv._ext` and RoIAlign / NMS fail only later, at run time.
# - Its setup.py hard-codes -std=c++17, but torch >= 2.14 headers need C++20: the flag is raised for those.
# - The build takes 10+ minutes on 2 cores, so the wheel is kept in a cache folder keyed by the torch version
#   and reused by every later environment on the machine (CI included).
set -euo pipefail
PYTHON=$(command -v "${PYTHON:-python}"); PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"  # absolute: the build runs in another folder
MMCV_VERSION=2.1.0

if "$PYTHON" -c "import mmcv, mmcv._ext; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  echo "mmcv $MMCV_VERSION with ops already installed"
  exit 0
fi

torch_version=$("$PYTHON" -c "import torch; print(torch.__version__)")
py_tag=$("$PYTHON" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
cache_root=${MLLA_MM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlla-mm}
wheel_dir="$cache_root/mmcv-$MMCV_VERSION/torch-$torch_version-$py_tag-$(uname -m)"
wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)

if [ -z "$wheel" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "building mmcv $MMCV_VERSION with ops against torch $torch_version (10-15 minutes on 2 cores)..."
  "$PYTHON" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$work" "mmcv==$MMCV_VERSION"
  tar xzf "$work/mmcv-$MMCV_VERSION.tar.gz" -C "$work"
  src="$work/mmcv-$MMCV_VERSION"
  if "$PYTHON" -c "import sys, torch; v = tuple(int(p) for p in torch.__version__.split('+')[0].split('.')[:2]); sys.exit(v < (2, 14))"; then
    sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
    echo "torch $torch_version needs C++20: raised mmcv's -std=c++17"
  fi
  mkdir -p "$wheel_dir"
  (cd "$src" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
     "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$wheel_dir" . ) > "$work/build.log" 2>&1 || {
    tail -n 60 "$work/build.log"; echo "mmcv build failed (full log above)" >&2; exit 1; }
  wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl | head -n 1)
fi
"$PYTHON" -m pip install -q "$wheel"  # with its light dependencies (opencv, addict, yapf, ...)
"$PYTHON" -c "import mmcv._ext; from mmcv.ops import RoIAlign, nms; print('mmcv', '$MMCV_VERSION', 'ops ready')"
