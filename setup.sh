#!/usr/bin/env bash
# Set up minivgg on a fresh machine: the package with its extras, and the real
# Fashion-MNIST images from Debian's package dataset-fashion-mnist.
#
#   bash setup.sh          # for training: minivgg, tqdm, matplotlib, the dataset
#   bash setup.sh --test   # also what the tests need: pytest, hypothesis, the
#                          # PyTorch oracle (CPU), g++ for the CUDA emulator,
#                          # CuPy and NVRTC for the CUDA compile check, MPI
#
# Python packages go to the interpreter $PYTHON (default: the python on PATH,
# that of an activated virtual environment).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@"
}

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    apt_install dataset-fashion-mnist
fi

extras="train"
if [ "${1:-}" = "--test" ]; then
    extras="train,test,dist,cuda"
    command -v g++ >/dev/null || apt_install g++
    "$PYTHON" -m pip install -q "torch==2.13.0"
fi
"$PYTHON" -m pip install -q -e ".[${extras}]"
