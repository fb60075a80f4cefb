"""Winograd (F(2x2, 3x3) or F(4x4, 3x3)) and taps against im2col + GEMM at every 3x3 convolution of a VGG,
float32, NumPy.

    python benchmarks/winograd.py              # VGG-A, widths 1 and 0.25, 32x32 input, batch 64 (a few minutes)
    python benchmarks/winograd.py --algorithm winograd4    # the same with Winograd F(4x4, 3x3)
    python benchmarks/winograd.py --config D --widths 1
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
  them, three ways: all im2col (the forward's columns serve dW); all
  Winograd (dW from its transposed transforms, the forward's transformed
  input kept); and "mixed", im2col's forward with Winograd's input gradient.

On maps of one 2x2 tile, 'taps' (``taps_forward``, ``taps_backward``) is
checked and timed beside them too: its forward and its whole step.

"speed" is the im2col time over the other's, measured in the same run:
above 1 the other is faster.  The last column says what the 'auto' rule of
``minivgg.functions.conv.choose_algorithm`` picks for the layer's forward
and input gradient.
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
from minivgg.functions.conv import (choose_algorithm, conv2d_backward, conv2d_forward, fits_one_tile, matmul,
                                    taps_backward, taps_forward, weight_matrix, winograd_backward,
                                    winograd_forward, winograd_input_grad, winograd_input_transform)
from minivgg.models import CONFIGS
from minivgg.models.vgg import parse_token


def conv_layers(config, width, in_channels, size):
    """(C, O, side) of every 3x3 convolution of VGG ``config`` at ``width`` (channel counts scaled, at least 1)."""
    layers, channels = [], in_channels
    for layer in map(parse_token, CONFIGS[config].split()):
        if layer[0] == "pool":
            size //= 2
        elif layer[0] == "conv":
            out = max(1, int(layer[2] * width))
            if layer[1] == 3:
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


# The largest difference from im2col (relative to the largest output) that a layer may show: float32 rounding
# of F(2x2, 3x3) stays below 1e-6 at VGG's widths, that of F(4x4, 3x3) below 2e-5 (tests/test_winograd.py).
TOLERANCE = {"winograd": 1e-5, "winograd4": 1e-4}


def bench_layer(rng, batch, c, o, side, first, repeats, warmup, algorithm="winograd"):
    x, w, b, y, cols, dy = random_conv_layer(rng, batch, c, o, side, first)
    K = kernels.active("cpu")

    def im2col_dx():
        return K.col2im(matmul(np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).reshape(-1, o), weight_matrix(w)),
                        x.shape, 3, 3, 1, 1)

    def im2col_step():
        _, saved = conv2d_forward(x, w, b, 1, 1)
        return conv2d_backward(dy, x.shape, saved, w, 1, 1)

    def winograd_step():
        v = winograd_input_transform(x, algorithm)
        winograd_forward(x, w, b, algorithm, v)
        # its dW from the transposed transforms of x (kept) and dy, no im2col
        return winograd_backward(dy, x.shape, v, w, algorithm, algorithm)

    def mixed_step():
        _, saved = conv2d_forward(x, w, b, 1, 1)
        return conv2d_backward(dy, x.shape, saved, w, 1, 1, input_grad=algorithm)

    def taps_step():
        taps_forward(x, w, b)
        return taps_backward(dy, x, w, input_grad=not first)

    error = max(relative_difference(winograd_forward(x, w, b, algorithm), y),
                *(relative_difference(g, r) for g, r in zip(winograd_step(), im2col_step())))
    jobs = [lambda: conv2d_forward(x, w, b, 1, 1), lambda: winograd_forward(x, w, b, algorithm),
            im2col_dx, lambda: winograd_input_grad(dy, w, algorithm), im2col_step, winograd_step, mixed_step]
    if fits_one_tile(x.shape):   # maps of one 2x2 tile: 'taps' too
        error = max(error, relative_difference(taps_forward(x, w, b), y),
                    *(relative_difference(g, r) for g, r in zip(taps_step(), im2col_step()) if r is not None))
        jobs += [lambda: taps_forward(x, w, b), taps_step]
    if error > TOLERANCE[algorithm]:
        raise AssertionError(f"{c}->{o} @{side}: Winograd or taps differs from im2col by {error:.2e}")
    times = alternating_medians(jobs, repeats, warmup)
    return error, times + [None] * (9 - len(times))


def taps_cells(t):
    """The four 'taps' columns: its forward and step times and speeds over im2col, or '-' off one-tile maps."""
    if t[7] is None:
        return ["-"] * 4
    return [f"{1e3 * t[7]:.2f}", f"{t[0] / t[7]:.2f}x", f"{1e3 * t[8]:.2f}", f"{t[4] / t[8]:.2f}x"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: batch 4, one round, no warm-up")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 64, 4 with --quick)")
    parser.add_argument("--config", default="A", choices=sorted(CONFIGS), help="the VGG (default A)")
    parser.add_argument("--size", type=int, default=32, help="input side (default 32)")
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.25],
                        help="widths (default 1 0.25; width 0.25 has 1 input channel, as the default run)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7)")
    parser.add_argument("--algorithm", default="winograd", choices=sorted(TOLERANCE),
                        help="the 'wino' columns: winograd (F(2x2, 3x3), the default) or winograd4 (F(4x4, 3x3))")
    args = parser.parse_args(argv)
    batch = args.batch or (4 if args.quick else 64)
    repeats = args.repeats or (1 if args.quick else 7)
    warmup = 0 if args.quick else 1
    name = {"winograd": "Winograd F(2x2, 3x3)", "winograd4": "Winograd F(4x4, 3x3)"}[args.algorithm]
    print(f"{name} vs im2col + GEMM at VGG-{args.config}'s convolutions: {args.size}x{args.size} input, "
          f"batch {batch}, float32; median of {repeats} alternating rounds after {warmup} warm-up"
          + (" (QUICK MODE: smoke test, not a measurement)" if args.quick else ""))
    print(f"numpy {np.__version__}; python {platform.python_version()}; {os.cpu_count()} CPUs; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print()
    headers = ("width", "layer", "max rel diff", "fwd im2col ms", "fwd wino ms", "fwd speed",
               "dx im2col ms", "dx wino ms", "dx speed", "step im2col ms", "step wino ms", "step speed",
               "step mixed ms", "mixed speed", "fwd taps ms", "fwd taps speed", "step taps ms", "taps speed",
               "auto fwd / dx")
    rows = []
    rng = np.random.default_rng(0)
    for width in args.widths:
        in_channels = 3 if width == 1 else 1
        for index, (c, o, side) in enumerate(conv_layers(args.config, width, in_channels, args.size)):
            error, t = bench_layer(rng, batch, c, o, side, index == 0, repeats, warmup, args.algorithm)
            auto = " / ".join(choose_algorithm((batch, c, side, side), (o, c, 3, 3), 1, 1, part)
                              for part in ("forward", "input_grad"))
            rows.append((f"{width:g}", f"{c}->{o} @{side}x{side}", f"{error:.1e}",
                         f"{1e3 * t[0]:.2f}", f"{1e3 * t[1]:.2f}", f"{t[0] / t[1]:.2f}x",
                         f"{1e3 * t[2]:.2f}", f"{1e3 * t[3]:.2f}", f"{t[2] / t[3]:.2f}x",
                         f"{1e3 * t[4]:.2f}", f"{1e3 * t[5]:.2f}", f"{t[4] / t[5]:.2f}x",
                         f"{1e3 * t[6]:.2f}", f"{t[4] / t[6]:.2f}x", *taps_cells(t), auto))
            print(f"  measured {rows[-1][1]} (width {width:g})", file=sys.stderr)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, ["-" * w for w in widths], *rows]:
        print(" | ".join(v.rjust(w) for v, w in zip(line, widths)))
    print()
    print("speed: im2col's median time over the other's, in the same run (above 1: the other is faster);")
    print("mixed: im2col's forward (its columns serve dW) with Winograd's input gradient;")
    print("taps: on maps of one 2x2 tile only, the 16 products that are not zero, no transform.")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
