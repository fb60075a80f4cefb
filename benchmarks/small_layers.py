"""Two convolutions without im2col's nine-fold copy, for the small-channel layers, against the 'auto' rule.

    python benchmarks/small_layers.py            # the default run's 3x3 layers above 2x2 (a minute)
    python benchmarks/small_layers.py --quick    # a smoke run: batch 4, one round (numbers meaningless)

Issue #11 proposed, for the narrow layers where Winograd's transforms cost
more than they save, a convolution that makes no im2col copy.  Both variants
here compute y = conv(x, w) for a 3x3 kernel, stride 1, padding 1, on NHWC
memory, and are timed against the forward that minivgg runs for the layer
(``minivgg.functional.conv2d``, the algorithm of ``choose_algorithm``):

* shifted: the padded input xp, flat as (rows, C), times the nine taps'
  weights side by side, (C, 9*O), in one GEMM; output pixel (i, j) is then the
  sum over the taps (u, v) of the product's row (i + u, j + v), block (u, v):

      y[n, i, j] = sum_{u, v} (xp @ W_uv)[n, i + u, j + v]

  No copy of the input, but the product is nine times the output.
* rows: im2col along one axis only.  Each padded row's three taps go side
  by side, R[n, i', j] = (xp[n, i', j], xp[n, i', j + 1], xp[n, i', j + 2])
  (three times the input, not nine), then one GEMM against the three weight
  rows side by side, (3*C, 3*O), and

      y[n, i, j] = sum_u (R @ W_u)[n, i + u, j]

Both go a chunk of images at a time (``--chunks``), so that what the product
writes stays in cache, on minivgg's shard threads with one OpenBLAS thread
each (``kernels/blas.py``), into pooled buffers (``kernels/workspace.py``), as
minivgg's own kernels do.  Each variant is first checked against the rule's
result, then the three are timed in alternating rounds; speed is the rule's
median time over the variant's (above 1 the variant is faster).
"""
import argparse
import os
import platform
import sys

import numpy as np

import minivgg.functional as F
from minivgg import Tensor
from minivgg.functions.conv import choose_algorithm
from minivgg.kernels import blas, workspace
from minivgg.kernels.conv import pad_nhwc
from winograd import alternating_medians, conv_layers, relative_difference

TOLERANCE = 1e-4   # float32: both variants sum the same products as im2col, in another order


def in_chunks(conv_chunk, x, y, chunk, scratch_shape):
    """Run ``conv_chunk(x[s:e], y[s:e], scratch)`` over chunks of ``chunk`` images, on the shard threads,
    each thread with a scratch array of its own."""
    def work(start, stop):
        own = workspace.empty((chunk, *scratch_shape), x.dtype)
        for s in range(start, stop, chunk):
            e = min(stop, s + chunk)
            conv_chunk(x[s:e], y[s:e], own[:e - s])
    blas.over_threads(work, len(x), x.size)
    return y


def shifted_conv(x, w, chunk):
    """conv(x, w), stride 1, padding 1, for NHWC ``x``: one GEMM against the nine taps, nine slices added."""
    n, h, wd, c = x.shape
    o = w.shape[0]
    taps = np.ascontiguousarray(w.transpose(1, 2, 3, 0).reshape(c, 9 * o))      # columns (u, v, o)
    xp = pad_nhwc(x, 1)

    def conv_chunk(xp_part, y_part, product):
        np.matmul(xp_part.reshape(-1, c), taps, out=product.reshape(-1, 9 * o))
        np.add(product[:, :h, :wd, 0], product[:, :h, 1:wd + 1, 1], out=y_part)
        for k in range(2, 9):
            u, v = divmod(k, 3)
            y_part += product[:, u:u + h, v:v + wd, k]
    return in_chunks(conv_chunk, xp, workspace.empty((n, h, wd, o), x.dtype), chunk, (h + 2, wd + 2, 9, o))


def rows_conv(x, w, chunk):
    """conv(x, w), stride 1, padding 1, for NHWC ``x``: im2col along W alone, one GEMM, three rows added."""
    n, h, wd, c = x.shape
    o = w.shape[0]
    weight_rows = np.ascontiguousarray(w.transpose(3, 1, 2, 0).reshape(3 * c, 3 * o))   # rows (v, c), columns (u, o)
    rows = workspace.empty((n, h + 2, wd, 3, c), x.dtype)
    rows[:, 0], rows[:, h + 1], rows[:, 1:h + 1, 0, 0], rows[:, 1:h + 1, -1, 2] = 0, 0, 0, 0   # the padding
    rows[:, 1:h + 1, 1:, 0] = x[:, :, :-1]
    rows[:, 1:h + 1, :, 1] = x
    rows[:, 1:h + 1, :-1, 2] = x[:, :, 1:]

    def conv_chunk(rows_part, y_part, product):
        np.matmul(rows_part.reshape(-1, 3 * c), weight_rows, out=product.reshape(-1, 3 * o))
        np.add(product[:, 0:h, :, 0], product[:, 1:h + 1, :, 1], out=y_part)
        y_part += product[:, 2:h + 2, :, 2]
    return in_chunks(conv_chunk, rows, workspace.empty((n, h, wd, o), x.dtype), chunk, (h + 2, wd, 3, o))


def bench_layer(rng, batch, c, o, side, chunk, repeats, warmup):
    """(largest relative difference, [rule, shifted, rows] median seconds) for one layer's forward."""
    x_nhwc = rng.standard_normal((batch, side, side, c)).astype(np.float32)
    x = Tensor(x_nhwc.transpose(0, 3, 1, 2))          # an NCHW view of NHWC memory, as inside the network
    w = (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    wt = Tensor(w)

    def rule():
        return F.conv2d(x, wt, padding=1).data
    want = rule()
    error = max(relative_difference(variant(x_nhwc, w, chunk).transpose(0, 3, 1, 2), want)
                for variant in (shifted_conv, rows_conv))
    if error > TOLERANCE:
        raise AssertionError(f"{c}->{o} @{side}: a variant differs from the rule's forward by {error:.2e}")
    return error, alternating_medians([rule, lambda: shifted_conv(x_nhwc, w, chunk),
                                       lambda: rows_conv(x_nhwc, w, chunk)], repeats, warmup)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: batch 4, one round, no warm-up")
    parser.add_argument("--chunks", type=int, nargs="+", default=[2, 4, 8, 32], help="images per chunk")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds (default 15)")
    args = parser.parse_args(argv)
    batch, repeats, warmup = (4, 1, 0) if args.quick else (64, args.repeats, 2)
    print(f"the default run's convolutions (VGG-A width 0.25, 1x32x32), batch {batch}, float32, forward only; "
          f"median of {repeats} alternating rounds" + (" (QUICK MODE: numbers meaningless)" if args.quick else ""))
    print(f"numpy {np.__version__}; python {platform.python_version()}; {os.cpu_count()} CPUs; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print()
    print("| layer | rule's algorithm | images per chunk | rule ms | shifted ms | speed | rows ms | speed | max rel diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for c, o, side in conv_layers("A", 0.25, 1, 32):
        if side <= 2:       # one 2x2 tile: 'taps' already makes only the products that are not zero
            continue
        algorithm = choose_algorithm((batch, c, side, side), (o, c, 3, 3), 1, 1)
        for chunk in args.chunks:
            error, (rule, shifted, rows) = bench_layer(rng, batch, c, o, side, chunk, repeats, warmup)
            print(f"| {c}->{o} @{side}x{side} | {algorithm} | {chunk} | {1e3 * rule:.2f} | {1e3 * shifted:.2f} | "
                  f"{rule / shifted:.2f}x | {1e3 * rows:.2f} | {rule / rows:.2f}x | {error:.1e} |", flush=True)
    print()
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
