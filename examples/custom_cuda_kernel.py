"""Plug an own CUDA C kernel into a VGG-A training step, on the CPU emulator or a GPU.

    python examples/custom_cuda_kernel.py

``custom_relu.cu`` (beside this file) holds the kernel.  ``CudaSource`` loads
it through the same path as minivgg's own kernels: NVRTC on a GPU, g++ and
the emulator on NumPy arrays, with ``cuda_common.h`` found by default.  The
wrapper below has the arguments and result of the kernel set's
``relu_forward``; ``kernels.override(relu_forward=...)`` puts it into every
ReLU of the network.  On the emulator each CUDA thread runs in turn, so the
network is tiny; the check against the NumPy twin is exact.
"""
from pathlib import Path

import numpy as np

import minivgg.functional as F
from minivgg import Tensor, kernels
from minivgg.kernels.launch import CudaSource, grid_for
from minivgg.kernels.layout import array_module, dense, empty_with_layout
from minivgg.models import vgg
from minivgg.optim import SGD

SOURCE = CudaSource(Path(__file__).with_name("custom_relu.cu"), ["relu_pairs"])


def relu_pairs(x):
    """y = max(x, 0) by custom_relu.cu, in the memory layout of ``x`` (as the set's relu_forward)."""
    x = dense(x)
    y = empty_with_layout(x)
    pairs = (x.size + 1) // 2
    SOURCE.launch("relu_pairs", x.dtype, grid_for(pairs, 128), (128,), (x, y, np.int64(x.size)))
    return y


def main():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 7, 2))
    error = float(np.abs(relu_pairs(x) - kernels.NUMPY.relu_forward(x)).max())
    print(f"check: relu_pairs differs from the NumPy twin by {error} (float64, 210 elements)")

    model = vgg("A", num_classes=10, in_channels=1, input_size=32, width=1 / 16, init="glorot")
    optimizer = SGD(model.parameters(), lr=0.01)
    images = rng.standard_normal((4, 1, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, 4)
    calls = []

    def counted_relu(a):
        calls.append(a.shape)
        return relu_pairs(a)

    with kernels.override(relu_forward=counted_relu):
        loss = F.softmax_cross_entropy(model(Tensor(images)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    where = "a GPU" if array_module(images) is not np else "the CPU emulator"
    print(f"one VGG-A training step with relu_pairs on {where}: loss {loss.item():.4f}, "
          f"{len(calls)} ReLUs ran the custom kernel")


if __name__ == "__main__":
    main()
