"""Plug an own NumPy kernel into a VGG-A training step: check it, then time it.

    python examples/custom_numpy_kernel.py

The kernel here is an im2col written with NumPy's ``sliding_window_view``:
every (3, 3) window of the padded NHWC input as a strided view, then one
copy into the (N*Ho*Wo, 9*C) matrix that the convolution's GEMM reads.
``minivgg.kernels.override(im2col=...)`` swaps it in for a block of code:
every convolution in the network then calls it, and nothing is patched.
As in llm.c's dev/cuda: first the reference, then the check, then the
timing after a warm-up.
"""
import argparse
import statistics
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import minivgg.functional as F
from minivgg import Tensor, kernels
from minivgg.kernels.layout import to_nhwc
from minivgg.models import vgg
from minivgg.optim import SGD


def im2col_windows(x, kh, kw, stride=1, padding=0):
    """Rows (n, i, j), columns (u, v, c): the matrix of the reference im2col, from one strided view."""
    x_nhwc = np.pad(to_nhwc(x), ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    windows = sliding_window_view(x_nhwc, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]  # (N, Ho, Wo, C, kh, kw)
    n, ho, wo, c = windows.shape[:4]
    return np.ascontiguousarray(windows.transpose(0, 1, 2, 4, 5, 3)).reshape(n * ho * wo, kh * kw * c)


def check(kernel, reference, shapes):
    """The largest relative difference between ``kernel`` and ``reference`` over NCHW ``shapes``."""
    rng, worst = np.random.default_rng(0), 0.0
    for shape in shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        want, got = reference(x, 3, 3, 1, 1), kernel(x, 3, 3, 1, 1)
        assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
        worst = max(worst, float(np.abs(got - want).max() / np.abs(want).max()))
    return worst


def training_step(model, optimizer, x, labels):
    """Forward, loss, backward and one SGD step; returns the loss."""
    loss = F.softmax_cross_entropy(model(Tensor(x)), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def median_step_seconds(steps, model, optimizer, x, labels):
    training_step(model, optimizer, x, labels)  # warm-up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        training_step(model, optimizer, x, labels)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description="check and time an own im2col inside VGG-A")
    parser.add_argument("--width", type=float, default=0.25, help="VGG-A channel scale (default 0.25)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per kernel")
    args = parser.parse_args(argv)

    shapes = [(2, 3, 32, 32), (2, 16, 16, 16), (2, 64, 8, 8), (1, 1, 5, 7)]
    error = check(im2col_windows, kernels.NUMPY.im2col, shapes)
    print(f"check: im2col_windows differs from the reference im2col by {error:.1e} (relative)")

    rng = np.random.default_rng(1)
    x = rng.standard_normal((args.batch, 1, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, args.batch)
    times = {}
    for name, context in (("reference", kernels.use(kernels.NUMPY)),
                          ("im2col_windows", kernels.override(im2col=im2col_windows))):
        model = vgg("A", num_classes=10, in_channels=1, input_size=32, width=args.width, init="glorot")
        optimizer = SGD(model.parameters(), lr=0.01)
        with context:
            times[name] = median_step_seconds(args.steps, model, optimizer, x, labels)
        print(f"{name:>15}: {times[name] * 1e3:7.1f} ms per VGG-A training step (median of {args.steps})")
    print(f"im2col_windows / reference speed: {times['reference'] / times['im2col_windows']:.2f}x")


if __name__ == "__main__":
    main()
