"""Time every NumPy kernel at the layer shapes of VGG-A on 32x32 images, batch 64, float32.

    python benchmarks/kernels.py            # the full table (15 to 45 s on 2 cores, by load)
    python benchmarks/kernels.py --quick    # a smoke run: batch 4, one call each (numbers meaningless)
    python benchmarks/kernels.py --variant im2col=examples.custom_numpy_kernel:im2col_windows
                                            # check an own kernel against the reference twin, then time both

With ``--variant NAME=module:function`` (repeatable) the table is of the
variants instead: each is first checked against the active set's kernel of
the same name on every VGG-A shape it meets (the largest relative
difference is printed), then both are timed after a warm-up, side by side.

Each kernel is checked first, then timed: one warm-up call, then the median
of ``--repeats`` calls.  The header prints the load average: on a shared
machine, other processes (and BLAS threads fighting over the cores) distort
the times, so compare ratios from a quiet run.  Every row sits beside a reference measured in the
same run, on the same arrays' sizes, so the ratio survives a change of
machine:

* convolutions (compute-bound, GFLOP/s) beside the bare ``numpy.matmul`` of
  the same GEMM shapes: forward (N*Ho*Wo, 9C) @ (9C, O); backward the two
  GEMMs dW = dY.T @ cols and dcols = dY @ W.  The ratio is what im2col,
  col2im and the layout cost on top of BLAS.
* element-wise and reduction kernels (memory-bound, GB/s) beside a bare
  ``numpy.copyto`` that reads and writes the same number of bytes.  GB/s
  counts the ideal traffic: every input read once, every output written once.

For the convolutions, a naive NCHW im2col (the classic Caffe/Chainer layout,
written here for comparison only) is timed too: it gathers (C, kh, kw) columns
from NCHW memory and pays transposes to feed the GEMM and to give back NCHW
memory.  The kernels of minivgg keep activations in NHWC memory instead, so
that each window row is a few long contiguous runs of channels.

Inputs are laid out as they reach each kernel inside the network: the image
is C-contiguous NCHW, every later activation an NCHW view of NHWC memory
(what the kernels return).
"""
import argparse
import copy
import importlib.util
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench_layers import nhwc_view, random_conv_layer
from minivgg import kernels
from minivgg.functions.conv import conv2d_backward, conv2d_forward, weight_matrix
from minivgg.kernels.layout import conv_output_size

# VGG-A (Table 1 of the paper, column A): 3x3 convolutions (stride 1, padding 1) and 2x2 max-pools.
VGG_A = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
CLASSIFIER_WIDTH = 4096  # the paper's FC-4096 layers, where dropout runs
CLASSES = (10, 1000)     # CIFAR-10 at 32x32; ImageNet's 1000 for comparison


# --- the naive NCHW convolution (for comparison only) ----------------------------------------------

def nchw_conv2d_forward(x, w, b, stride, padding):
    """im2col from NCHW memory into (N, C, kh, kw, Ho, Wo), one tensordot, output copied back to NCHW."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(wd, kw, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    col = np.empty((n, c, kh, kw, ho, wo), dtype=x.dtype)
    for u in range(kh):
        for v in range(kw):
            col[:, :, u, v] = xp[:, :, u:u + stride * ho:stride, v:v + stride * wo:stride]
    y = np.tensordot(col, w, ((1, 2, 3), (1, 2, 3)))  # (N, Ho, Wo, O)
    y += b
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2)), col


def nchw_conv2d_backward(dy, x_shape, col, w, stride, padding):
    """dW and db by tensordot over the saved columns; dx by col2im into padded NCHW memory."""
    n, c, h, wd = x_shape
    _, _, kh, kw = w.shape
    ho, wo = dy.shape[2:]
    dw = np.tensordot(dy, col, ((0, 2, 3), (0, 4, 5)))  # (O, C, kh, kw)
    db = dy.sum(axis=(0, 2, 3))
    dcol = np.moveaxis(np.tensordot(w, dy, (0, 1)), 3, 0)  # (N, C, kh, kw, Ho, Wo), a view
    dxp = np.zeros((n, c, h + 2 * padding, wd + 2 * padding), dtype=dy.dtype)
    for u in range(kh):
        for v in range(kw):
            dxp[:, :, u:u + stride * ho:stride, v:v + stride * wo:stride] += dcol[:, :, u, v]
    return np.ascontiguousarray(dxp[:, :, padding:padding + h, padding:padding + wd]), dw, db


# --- timing ----------------------------------------------------------------------------------------

def median_seconds(fn, repeats, warmup):
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def nbytes(*arrays):
    return sum(np.asarray(a).nbytes for a in arrays)


class Bench:
    """Collects table rows; each row is timed beside its reference."""

    def __init__(self, repeats, warmup):
        self.repeats, self.warmup, self.rows = repeats, warmup, []
        self.copy_cache = {}

    def time(self, fn):
        return median_seconds(fn, self.repeats, self.warmup)

    def copy_seconds(self, total_bytes):
        """A bare copy that reads total_bytes/2 and writes total_bytes/2 (float32 elements)."""
        count = max(1, total_bytes // 8)
        if count not in self.copy_cache:
            src, dst = np.ones(count, np.float32), np.empty(count, np.float32)
            self.copy_cache[count] = self.time(lambda: np.copyto(dst, src))
        return self.copy_cache[count]

    def memory_row(self, kernel, shape, fn, moved_bytes):
        seconds, reference = self.time(fn), self.copy_seconds(moved_bytes)
        self.rows.append(dict(kernel=kernel, shape=shape, ms=1e3 * seconds,
                              rate=f"{moved_bytes / seconds / 1e9:.3g} GB/s",
                              reference="copy of same bytes", ref_ms=1e3 * reference, ratio=seconds / reference))

    def compute_row(self, kernel, shape, seconds, flops, reference_name, reference_seconds, note=""):
        self.rows.append(dict(kernel=kernel, shape=shape, ms=1e3 * seconds,
                              rate=f"{flops / seconds / 1e9:.3g} GFLOP/s", reference=reference_name,
                              ref_ms=1e3 * reference_seconds, ratio=seconds / reference_seconds, note=note))


# --- the layers ------------------------------------------------------------------------------------

def vgg_a_layers(size=32, channels=3):
    """(kind, in_channels, out_channels, side) for every layer of VGG-A's feature extractor."""
    layers = []
    for item in VGG_A:
        if item == "M":
            layers.append(("pool", channels, channels, size))
            size //= 2
        else:
            layers.append(("conv", channels, item, size))
            channels = item
    return layers


def bench_conv(bench, rng, batch, c, o, side, first, naive, totals):
    shape = f"{c}->{o} @{side}x{side}"
    x, w, b, y, cols, dy = random_conv_layer(rng, batch, c, o, side, first)

    m, k = cols.shape
    flops = 2.0 * m * k * o
    # the operands exactly as the kernel hands them to BLAS (the weight matrix as a transposed view),
    # prepared outside the timed call: the ratio is what im2col, col2im and the layout changes cost
    w_mat = weight_matrix(w)                                                    # (O, 9C)
    a_mat, b_mat = cols, w_mat.T                                                # (M, 9C), (9C, O)
    dy_rows = np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).reshape(-1, o)     # (M, O)

    fwd = bench.time(lambda: conv2d_forward(x, w, b, 1, 1))
    fwd_ref = bench.time(lambda: np.matmul(a_mat, b_mat))
    bwd = bench.time(lambda: conv2d_backward(dy, x.shape, cols, w, 1, 1))
    bwd_ref = bench.time(lambda: (np.matmul(dy_rows.T, a_mat), np.matmul(dy_rows, w_mat)))
    gemm = f"matmul {m}x{k}@{k}x{o}"
    bench.compute_row("conv fwd", shape, fwd, flops, gemm, fwd_ref)
    bench.compute_row("conv bwd", shape, bwd, 2 * flops, "matmul x2 (dW, dcols)", bwd_ref)
    totals["fwd"] += fwd
    totals["fwd_ref"] += fwd_ref
    totals["bwd"] += bwd
    totals["bwd_ref"] += bwd_ref
    totals["flops"] += flops

    if naive:
        x_nchw = np.ascontiguousarray(x)  # the naive variant keeps every activation C-contiguous NCHW
        dy_nchw = np.ascontiguousarray(dy)
        y_naive, col = nchw_conv2d_forward(x_nchw, w, b, 1, 1)
        check(y_naive, y, "naive NCHW conv forward")
        for got, want in zip(nchw_conv2d_backward(dy_nchw, x.shape, col, w, 1, 1),
                             conv2d_backward(dy, x.shape, cols, w, 1, 1)):
            check(got, want, "naive NCHW conv backward")
        nfwd = bench.time(lambda: nchw_conv2d_forward(x_nchw, w, b, 1, 1))
        nbwd = bench.time(lambda: nchw_conv2d_backward(dy_nchw, x.shape, col, w, 1, 1))
        bench.compute_row("conv fwd, naive NCHW", shape, nfwd, flops, gemm, fwd_ref,
                          note=f"{nfwd / fwd:.2f}x the NHWC kernel's time")
        bench.compute_row("conv bwd, naive NCHW", shape, nbwd, 2 * flops, "matmul x2 (dW, dcols)", bwd_ref,
                          note=f"{nbwd / bwd:.2f}x the NHWC kernel's time")
    return y


def check(got, want, what):
    scale = np.abs(want).max(initial=0.0) + 1e-30
    error = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64)).max(initial=0.0) / scale
    if error > 1e-4:
        raise AssertionError(f"{what}: differs from the reference by {error:.2e} (relative to the largest value)")


def bench_relu(bench, rng, shape_text, x):
    K = kernels.active("cpu")
    y = K.relu_forward(x)
    dy = nhwc_view(rng.standard_normal(x.shape).astype(np.float32))
    bench.memory_row("relu fwd", shape_text, lambda: K.relu_forward(x), nbytes(x, y))
    bench.memory_row("relu bwd", shape_text, lambda: K.relu_backward(dy, y), nbytes(dy, y, y))


def bench_pool(bench, rng, shape_text, x):
    K = kernels.active("cpu")
    y, argmax = K.max_pool_forward(x, 2, 2, 2)
    dy = nhwc_view(rng.standard_normal(y.shape).astype(np.float32))
    bench.memory_row("max_pool fwd", shape_text, lambda: K.max_pool_forward(x, 2, 2, 2), nbytes(x, y, argmax))
    bench.memory_row("max_pool bwd", shape_text, lambda: K.max_pool_backward(dy, argmax, x.shape, 2, 2, 2),
                     nbytes(dy, argmax, x))


def bench_lrn(bench, rng, shape_text, x):
    K = kernels.active("cpu")
    y, d = K.lrn_forward(x, 5, 1e-4, 0.75, 2.0)
    dy = nhwc_view(rng.standard_normal(x.shape).astype(np.float32))
    bench.memory_row("lrn fwd (n=5)", shape_text, lambda: K.lrn_forward(x, 5, 1e-4, 0.75, 2.0), nbytes(x, y, d))
    bench.memory_row("lrn bwd (n=5)", shape_text, lambda: K.lrn_backward(dy, x, d, 5, 1e-4, 0.75),
                     nbytes(dy, x, d, x))


def bench_dropout(bench, rng, batch):
    K = kernels.active("cpu")
    x = rng.standard_normal((batch, CLASSIFIER_WIDTH)).astype(np.float32)
    y, mask = K.dropout_forward(x, 0.5, 1, 2, 3, 0)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    shape_text = f"{batch}x{CLASSIFIER_WIDTH} p=0.5"
    bench.memory_row("dropout fwd", shape_text, lambda: K.dropout_forward(x, 0.5, 1, 2, 3, 0), nbytes(x, y, mask))
    bench.memory_row("dropout bwd", shape_text, lambda: K.dropout_backward(dy, mask, 0.5), nbytes(dy, mask, x))


def bench_loss(bench, rng, batch):
    K = kernels.active("cpu")
    for classes in CLASSES:
        z = rng.standard_normal((batch, classes)).astype(np.float32)
        labels = rng.integers(0, classes, batch)
        loss, probs = K.softmax_cross_entropy_forward(z, labels)
        shape_text = f"{batch}x{classes}"
        bench.memory_row("softmax-CE fwd", shape_text, lambda: K.softmax_cross_entropy_forward(z, labels),
                         nbytes(z, labels, probs))
        bench.memory_row("softmax-CE bwd", shape_text,
                         lambda: K.softmax_cross_entropy_backward(probs, labels, 1.0), nbytes(probs, labels, z))


def run(batch, repeats, warmup, naive_convs):
    rng = np.random.default_rng(0)
    bench = Bench(repeats, warmup)
    totals = dict(fwd=0.0, fwd_ref=0.0, bwd=0.0, bwd_ref=0.0, flops=0.0)
    relu_shapes, conv_index = set(), 0
    x = None
    for kind, c, o, side in vgg_a_layers():
        if kind == "conv":
            y = bench_conv(bench, rng, batch, c, o, side, first=conv_index == 0,
                           naive=conv_index < naive_convs, totals=totals)
            if conv_index == 0:
                bench_lrn(bench, rng, f"{batch}x{o}x{side}x{side}", y)  # A-LRN: LRN after the first conv
            if y.shape not in relu_shapes:  # the same shapes repeat: time each once
                relu_shapes.add(y.shape)
                bench_relu(bench, rng, f"{batch}x{o}x{side}x{side}", y)
            conv_index += 1
            x = y
        else:
            bench_pool(bench, rng, f"{batch}x{c}x{side}x{side}", nhwc_view(
                rng.standard_normal((batch, c, side, side)).astype(np.float32)))
    bench.compute_row("all 8 convs fwd", "VGG-A", totals["fwd"], totals["flops"], "the 8 forward GEMMs",
                      totals["fwd_ref"])
    bench.compute_row("all 8 convs bwd", "VGG-A", totals["bwd"], 2 * totals["flops"], "the 16 backward GEMMs",
                      totals["bwd_ref"])
    bench_dropout(bench, rng, batch)
    bench_loss(bench, rng, batch)
    return bench.rows


# --- variants: an own kernel beside the reference --------------------------------------------------

def kernel_cases(batch, rng):
    """(kernel name, shape text, arguments) for every kernel of a set at VGG-A's shapes, each shape once."""
    K, seen = kernels.active("cpu"), set()
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    cases = []
    for kind, c, o, side in vgg_a_layers():
        text = f"{batch}x{c}x{side}x{side}"
        if kind == "pool":
            y, argmax = K.max_pool_forward(x, 2, 2, 2)
            dy = nhwc_view(rng.standard_normal(y.shape).astype(np.float32))
            cases += [("max_pool_forward", text, (x, 2, 2, 2)), ("max_pool_backward", text, (dy, argmax, x.shape, 2, 2, 2))]
            x = y
            continue
        cols = K.im2col(x, 3, 3, 1, 1)
        dy = nhwc_view(rng.standard_normal((batch, o, side, side)).astype(np.float32))
        cases += [("im2col", text, (x, 3, 3, 1, 1)), ("col2im", text, (cols, x.shape, 3, 3, 1, 1)),
                  ("bias_grad", f"{batch}x{o}x{side}x{side}", (dy,))]
        x = K.relu_forward(dy)
        cases += [("relu_forward", f"{batch}x{o}x{side}x{side}", (dy,)),
                  ("relu_backward", f"{batch}x{o}x{side}x{side}", (dy, x))]
        if c == 3:
            cases += [("lrn_forward", f"{batch}x{o}x{side}x{side}", (dy, 5, 1e-4, 0.75, 2.0))]
    fc = rng.standard_normal((batch, CLASSIFIER_WIDTH)).astype(np.float32)
    cases += [("dropout_forward", f"{batch}x{CLASSIFIER_WIDTH}", (fc, 0.5, 1, 2, 3, 0))]
    for classes in CLASSES:
        z = rng.standard_normal((batch, classes)).astype(np.float32)
        cases += [("softmax_cross_entropy_forward", f"{batch}x{classes}", (z, rng.integers(0, classes, batch)))]
    weight = rng.standard_normal((512, 512, 3, 3)).astype(np.float32)
    cases += [("sgd_update", "512x512x3x3", (weight, weight * 0.1, weight * 0.01, 0.01, 0.9, 5e-4))]
    unique = []
    for name, text, args in cases:
        if (name, text) not in seen:
            seen.add((name, text))
            unique.append((name, text, args))
    return unique


def load_variant(spec):
    """``NAME=module:function`` -> (NAME, the function); the module may be a dotted name or a .py path."""
    name, _, target = spec.partition("=")
    module_name, _, function_name = target.partition(":")
    if name not in kernels.NAMES or not function_name:
        raise SystemExit(f"--variant: expected NAME=module:function with NAME one of {list(kernels.NAMES)}, "
                         f"got {spec!r}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # so that examples.x resolves from a clone
    if module_name.endswith(".py"):
        module_spec = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    return name, getattr(module, function_name)


def results_of(function, args):
    """What a kernel produced: its outputs, or for an in-place kernel (sgd_update) its updated arguments."""
    args = copy.deepcopy(args)
    out = function(*args)
    outs = out if isinstance(out, tuple) else (args[0], args[2]) if out is None else (out,)
    return [np.asarray(o, np.float64) for o in outs]


def largest_difference(variant, reference, args):
    """Max |variant - reference| over max |reference|, over all outputs; shapes must match."""
    worst = 0.0
    for got, want in zip(results_of(variant, args), results_of(reference, args)):
        if got.shape != want.shape:
            raise AssertionError(f"variant output has shape {got.shape}, the reference {want.shape}")
        worst = max(worst, float(np.abs(got - want).max(initial=0.0) / (np.abs(want).max(initial=0.0) + 1e-30)))
    return worst


def run_variants(variants, batch, repeats, warmup):
    """Check each variant on every case of its kernel, then time it beside the reference."""
    reference_set = kernels.active("cpu")
    rows = []
    for name, text, args in kernel_cases(batch, np.random.default_rng(0)):
        if name not in variants:
            continue
        reference, variant = reference_set.functions[name], variants[name]
        error = largest_difference(variant, reference, args)
        ref = median_seconds(lambda: reference(*copy.copy(args)), repeats, warmup)
        own = median_seconds(lambda: variant(*copy.copy(args)), repeats, warmup)
        rows.append((name, text, f"{error:.1e}", f"{ref * 1e3:.3f}", f"{own * 1e3:.3f}", f"{ref / own:.2f}x"))
    headers = ("kernel", "shape", "max rel diff", "reference ms", "variant ms", "variant speed")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, ["-" * w for w in widths], *rows]:
        print(" | ".join(v.rjust(w) for v, w in zip(line, widths)))


def load_warning():
    """A warning line when other work competes for the cores, else None."""
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        return (f"WARNING: the machine is loaded (1-minute load average {load:.2f} on {os.cpu_count()} CPUs): "
                "other processes share the cores, so the times below are unreliable; rerun on a quiet machine")
    return None


def blas_name():
    try:
        return np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # the layout of show_config differs between NumPy versions
        return "unknown BLAS"


def print_table(rows):
    headers = ("kernel", "shape", "median ms", "rate", "reference", "ref ms", "ratio", "note")
    cells = [(r["kernel"], r["shape"], f"{r['ms']:.3f}", r["rate"].strip(), r["reference"], f"{r['ref_ms']:.3f}",
              f"{r['ratio']:.2f}x", r.get("note", "")) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    right = {2, 3, 5, 6}

    def line(values):
        return " | ".join(v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths)))

    print(line(headers).rstrip())
    print("-+-".join("-" * w for w in widths))
    for c in cells:
        print(line(c).rstrip())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: batch 4, one call, no warm-up")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 64, 4 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per kernel (default 7)")
    parser.add_argument("--naive-convs", type=int, default=4,
                        help="time the naive NCHW variant for this many of the first convs (default 4)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=module:function",
                        help="check an own kernel against the reference twin NAME, then time both (repeatable)")
    args = parser.parse_args(argv)
    variants = dict(load_variant(spec) for spec in args.variant)
    batch = args.batch or (4 if args.quick else 64)
    repeats = args.repeats or (1 if args.quick else 7)
    warmup = 0 if args.quick else 1

    env = {key: os.environ[key] for key in ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                             "MKL_NUM_THREADS") if key in os.environ}
    print(f"minivgg NumPy kernels at VGG-A's shapes: 32x32 input, batch {batch}, float32; "
          f"median of {repeats} after {warmup} warm-up" + (" (QUICK MODE: smoke test, not a measurement)"
                                                           if args.quick else ""))
    print(f"numpy {np.__version__} with {blas_name()}; python {platform.python_version()}; "
          f"{os.cpu_count()} CPUs; {platform.processor() or platform.machine()}; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
          + (f"; {' '.join(f'{k}={v}' for k, v in env.items())}" if env else ""))
    warning = load_warning()
    if warning:
        print(warning)
    print()
    if variants:
        run_variants(variants, batch, repeats, warmup)
        print()
        print("variant speed: the reference's median time over the variant's, measured in the same run.")
    else:
        print_table(run(batch, repeats, warmup, args.naive_convs))
        print()
        print("ratio: the kernel's time over its reference's, measured in the same run "
              "(conv: bare numpy.matmul of the same GEMMs; others: a copy of the same bytes).")
    warning = load_warning()
    print(warning or f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
