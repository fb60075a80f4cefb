#!/usr/bin/env bash
# The real-GPU check of minivgg: under five minutes on one H100; results in $OUT (default ./gpu_results).
#
#   bash benchmarks/gpu_check.sh              # on a machine with a CUDA GPU
#   bash benchmarks/gpu_check.sh --dry-run    # the same run on a CPU-only machine, in under a minute
#   PYTHON=venv/bin/python bash benchmarks/gpu_check.sh   # with that interpreter (default: python on PATH)
#
# What it runs and writes: see benchmarks/gpu_check.py.  Exit status 0 when every part ran to its end.
set -euo pipefail

OUT="${OUT:-gpu_results}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export OUT
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# CuPy caches every compiled kernel (ours and its own) in ~/.cupy/kernel_cache and fails to compile
# where it cannot create that folder; the parts share the cache, so only the first one compiles.
if [ -z "${CUPY_CACHE_DIR:-}" ] && ! { mkdir -p "${HOME:-/nonexistent}/.cupy/kernel_cache" 2>/dev/null \
                                       && [ -w "$HOME/.cupy/kernel_cache" ]; }; then
    export CUPY_CACHE_DIR="${TMPDIR:-/tmp}/cupy-kernel-cache-$(id -u)"
fi

# A fresh machine may hold the repository without minivgg installed from it.
if ! (cd /tmp && "$PYTHON" -c "import minivgg.kernels" 2>/dev/null); then
    echo "gpu_check: installing minivgg from $(pwd) (pip install -e . --no-deps)" >&2
    "$PYTHON" -m pip install --quiet --no-deps --no-build-isolation -e . >&2
fi
exec "$PYTHON" benchmarks/gpu_check.py "$@"
