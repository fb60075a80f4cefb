"""Winograd F(2x2, 3x3) against im2col + GEMM at every 3x3 convolution of VGG-A, float32, NumPy twins.

    python benchmarks/winograd.py              # widths 1 and 0.25, 32x32 input, batch 64 (about a minute)
    python benchmarks/winograd.py --quick      # a smoke run: batch 4, one call each (numbers meaningless)
    python benchmarks/winograd.py --size 224 --batch 8 --widths 1

For each layer, both algorithms are first checked against each other, then
timed in alternating rounds (im2col, Winograd, im2col, ...; medians of
``--repeats`` rounds after one warm-up), on inputs laid out as inside the
network (the image C-contiguous NCHW, every later activation an NCHW view of
NHWC memory).  Three jobs per layer:

* fwd: y = conv(x, w) + b  (``conv2d_forward`` against ``winograd_forward``);
* dx:  the input gradient alone  (col2im(dY @ W) against ``winograd_input_grad``);
* step: forward plus the whole backward, dx, dW and db, as a training step runs
  them (``conv2d_backward`` against ``winograd_backward``, whose dW is
  dY.T @ im2col(x) done in the backward).

"speed" is the im2col time over the Winograd time, measured in the same run:
above 1 Winograd is faster.  The last column says what the 'auto' rule of
``minivgg.functions.conv.choose_algorithm`` picks for the layer.
"""
import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

from bench_layers import random_conv_layer
from minivgg import kernels
from minivgg.functions.conv import (choose_algorithm, conv2d_backward, conv2d_forward, matmul, weight_matrix,
                                    winograd_backward, winograd_forward, winograd_input_grad)

VGG_A = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def conv_layers(width, in_channels, size):
    """(C, O, side) of every convolution of VGG-A at ``width`` (the channel counts scaled, at least 1)."""
    layers, channels = [], in_channels
    for item in VGG_A:
        if item == "M":
            size //= 2
        else:
            out = max(1, int(item * width))
            layers.append((channels, out, size))
            channels = out
    return layers


def alternating_medians(functions, repeats, warmup):
    """Median seconds of each function, timed in alternating rounds after ``warmup`` rounds."""
    times = [[] for _ in functions]
    for round_ in range(warmup + repeats):
        for fn, samples in zip(functions, times):
            start = time.perf_counter()
            fn()
            if round_ >= warmup:
                samples.append(time.perf_counter() - start)
    return [statistics.median(samples) for samples in times]


def relative_difference(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / (np.abs(want).max() + 1e-30))


def bench_layer(rng, batch, c, o, side, first, repeats, warmup):
    x, w, b, y, cols, dy = random_conv_layer(rng, batch, c, o, side, first)
    K = kernels.active("cpu")

    def im2col_dx():
        return K.col2im(matmul(np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).reshape(-1, o), weight_matrix(w)),
                        x.shape, 3, 3, 1, 1)

    def im2col_step():
        _, saved = conv2d_forward(x, w, b, 1, 1)
        return conv2d_backward(dy, x.shape, saved, w, 1, 1)

    def winograd_step():
        winograd_forward(x, w, b)
        return winograd_backward(dy, x, w)

    error = max(relative_difference(winograd_forward(x, w, b), y),
                *(relative_difference(g, r) for g, r in zip(winograd_backward(dy, x, w),
                                                            conv2d_backward(dy, x.shape, cols, w, 1, 1))))
    if error > 1e-5:
        raise AssertionError(f"{c}->{o} @{side}: Winograd differs from im2col by {error:.2e}")
    times = alternating_medians([lambda: conv2d_forward(x, w, b, 1, 1), lambda: winograd_forward(x, w, b),
                                 im2col_dx, lambda: winograd_input_grad(dy, w),
                                 im2col_step, winograd_step], repeats, warmup)
    return error, times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: batch 4, one round, no warm-up")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 64, 4 with --quick)")
    parser.add_argument("--size", type=int, default=32, help="input side (default 32)")
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.25],
                        help="VGG-A widths (default 1 0.25; width 0.25 has 1 input channel, as the default run)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7)")
    args = parser.parse_args(argv)
    batch = args.batch or (4 if args.quick else 64)
    repeats = args.repeats or (1 if args.quick else 7)
    warmup = 0 if args.quick else 1
    print(f"Winograd F(2x2, 3x3) vs im2col + GEMM at VGG-A's convolutions: {args.size}x{args.size} input, "
          f"batch {batch}, float32; median of {repeats} alternating rounds after {warmup} warm-up"
          + (" (QUICK MODE: smoke test, not a measurement)" if args.quick else ""))
    print(f"numpy {np.__version__}; python {platform.python_version()}; {os.cpu_count()} CPUs; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print()
    headers = ("width", "layer", "max rel diff", "fwd im2col ms", "fwd wino ms", "fwd speed",
               "dx im2col ms", "dx wino ms", "dx speed", "step im2col ms", "step wino ms", "step speed", "auto")
    rows = []
    rng = np.random.default_rng(0)
    for width in args.widths:
        in_channels = 3 if width == 1 else 1
        for index, (c, o, side) in enumerate(conv_layers(width, in_channels, args.size)):
            error, t = bench_layer(rng, batch, c, o, side, index == 0, repeats, warmup)
            auto = choose_algorithm((batch, c, side, side), (o, c, 3, 3), 1, 1)
            rows.append((f"{width:g}", f"{c}->{o} @{side}x{side}", f"{error:.1e}",
                         f"{1e3 * t[0]:.2f}", f"{1e3 * t[1]:.2f}", f"{t[0] / t[1]:.2f}x",
                         f"{1e3 * t[2]:.2f}", f"{1e3 * t[3]:.2f}", f"{t[2] / t[3]:.2f}x",
                         f"{1e3 * t[4]:.2f}", f"{1e3 * t[5]:.2f}", f"{t[4] / t[5]:.2f}x", auto))
            print(f"  measured {rows[-1][1]} (width {width:g})", file=sys.stderr)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, ["-" * w for w in widths], *rows]:
        print(" | ".join(v.rjust(w) for v, w in zip(line, widths)))
    print()
    print("speed: im2col's median time over Winograd's, in the same run (above 1: Winograd is faster).")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
