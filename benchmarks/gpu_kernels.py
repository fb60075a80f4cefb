"""Time the CUDA twins on VGG-sized arrays, beside the device's copy bandwidth.

    python benchmarks/gpu_kernels.py              # on the GPU: needs cupy and a CUDA device
    python benchmarks/gpu_kernels.py --dry-run    # on the CPU emulator with tiny shapes (CI runs this)

For each kernel: check it against its NumPy twin (at batch 1), then time it
after a warm-up.  GB/s counts the bytes the kernel must at least read and
write once; the last column compares that with a plain device-to-device copy
measured in the same run (read + write), the ceiling for kernels that only
move data.  In dry-run mode the numbers time the emulator, not a GPU: the run
only proves that the script works.
"""
import argparse
import time

import numpy as np

from minivgg import kernels
from minivgg.kernels.launch import require_cupy

F32 = np.float32


def randn(xp, shape, rng):
    """Standard normal float32 values, drawn where the array lives."""
    if xp is np:
        return rng.standard_normal(shape, dtype=F32)
    return xp.random.standard_normal(shape, dtype=F32)


def nchw_view(xp, shape, rng):
    """A random NCHW view of NHWC memory, as the layers pass them."""
    n, c, h, w = shape
    return randn(xp, (n, h, w, c), rng).transpose(0, 3, 1, 2)


def cases(shapes):
    """The benchmark cases: (name, shape, make(xp, batch), run(twins, args), bytes(args))."""
    conv_shape, pool_shape, fc_shape, logits_shape, sgd_shape = shapes

    def image(shape):
        return lambda xp, batch, rng: (nchw_view(xp, (batch, *shape[1:]), rng),)

    def cols(xp, batch, rng):
        n, c, h, w = (batch, *conv_shape[1:])
        return (randn(xp, (n * h * w, 9 * c), rng), (n, c, h, w))

    def pooled(xp, batch, rng):
        x = nchw_view(xp, (batch, *pool_shape[1:]), rng)
        y, argmax = kernels.CUDA.max_pool_forward(x)
        # dy in NHWC memory, as the layers pass it: CuPy's ``y * 0 + 1`` would be C-ordered NCHW,
        # and the timing would include the transposing copy that max_pool_backward then makes
        return (nchw_view(xp, y.shape, rng), argmax, x.shape)

    def fc(xp, batch, rng):
        return (randn(xp, (batch, fc_shape[1]), rng),)

    def logits(xp, batch, rng):
        return (randn(xp, (batch, logits_shape[1]), rng),
                xp.asarray(rng.integers(0, logits_shape[1], batch)))

    def sgd_arrays(xp, batch, rng):
        return tuple(randn(xp, sgd_shape, rng) for _ in range(3))

    return [
        ("im2col 3x3", conv_shape, image(conv_shape),
         lambda k, x: k.im2col(x, 3, 3, 1, 1), lambda x: x.nbytes * 10),
        ("col2im 3x3", conv_shape, cols,
         lambda k, c, s: k.col2im(c, s, 3, 3, 1, 1), lambda c, s: c.nbytes * 10 / 9),
        ("bias_grad", conv_shape, image(conv_shape),
         lambda k, dy: k.bias_grad(dy), lambda dy: dy.nbytes),
        ("max_pool_forward 2x2", pool_shape, image(pool_shape),
         lambda k, x: k.max_pool_forward(x), lambda x: x.nbytes * 1.5),
        ("max_pool_backward 2x2", pool_shape, pooled,
         lambda k, dy, a, s: k.max_pool_backward(dy, a, s), lambda dy, a, s: dy.nbytes * 6),
        ("relu_forward", conv_shape, image(conv_shape),
         lambda k, x: k.relu_forward(x), lambda x: x.nbytes * 2),
        ("relu_backward", conv_shape, image(conv_shape),
         lambda k, x: k.relu_backward(x, x), lambda x: x.nbytes * 3),
        ("lrn_forward", conv_shape, image(conv_shape),
         lambda k, x: k.lrn_forward(x), lambda x: x.nbytes * 3),
        ("dropout_forward", fc_shape, fc,
         lambda k, x: k.dropout_forward(x, 0.5, 1, 2, 3), lambda x: x.nbytes * 2.25),
        ("softmax_cross_entropy_forward", logits_shape, logits,
         lambda k, z, t: k.softmax_cross_entropy_forward(z, t), lambda z, t: z.nbytes * 2),
        ("sgd_update", sgd_shape, sgd_arrays,
         lambda k, p, g, v: k.sgd_update(p, g, v, 0.01, 0.9, 5e-4), lambda p, g, v: p.nbytes * 5),
    ]


def check(name, make, run, xp, to_numpy):
    """Compare the CUDA twin with the NumPy twin at batch 1; returns the largest relative error.

    sgd_update works in place and returns nothing: its twins are compared by the tests.
    """
    if name == "sgd_update":
        return None
    args = make(xp, 1, np.random.default_rng(0))
    host_args = [to_numpy(a) if hasattr(a, "dtype") else a for a in args]
    got, expected = run(kernels.CUDA, *args), run(kernels.NUMPY, *host_args)
    got, expected = (got, expected) if isinstance(got, tuple) else ((got,), (expected,))
    error = 0.0
    for g, e in zip(got, expected):
        g, e = np.asarray(to_numpy(g), np.float64), np.asarray(e, np.float64)
        error = max(error, float(np.abs(g - e).max() / max(np.abs(e).max(), 1e-30)))
    return error


class Timer:
    """Seconds per call: CUDA events on the GPU, perf_counter on the emulator."""

    def __init__(self, xp):
        self.xp = xp

    def __call__(self, function, repeats, warmup):
        for _ in range(warmup):
            function()
        if self.xp is np:
            start = time.perf_counter()
            for _ in range(repeats):
                function()
            return (time.perf_counter() - start) / repeats
        begin, end = self.xp.cuda.Event(), self.xp.cuda.Event()
        begin.record()
        for _ in range(repeats):
            function()
        end.record()
        end.synchronize()
        return self.xp.cuda.get_elapsed_time(begin, end) / 1e3 / repeats


def copy_bandwidth(xp, timer, elements, repeats, warmup):
    """GB/s of ``dst[...] = src`` (read + write) for ``elements`` float32 values."""
    src, dst = xp.ones(elements, dtype=F32), xp.empty(elements, dtype=F32)

    def copy():
        dst[...] = src
    return 2 * src.nbytes / timer(copy, repeats, warmup) / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="run on the CPU emulator with tiny shapes (no GPU needed)")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)

    if args.dry_run:
        xp, to_numpy = np, np.asarray
        shapes = ((2, 8, 6, 6), (2, 8, 6, 6), (2, 64), (2, 10), (16, 8))
        repeats, warmup, copy_elements, batch = args.repeats or 1, 1, 1 << 20, 2
        where = "the CPU emulator (dry run: these times measure the emulator, not a GPU)"
    else:
        xp = require_cupy()
        to_numpy = xp.asnumpy
        shapes = ((32, 64, 224, 224), (32, 64, 224, 224), (256, 4096), (256, 1000), (4096, 25088))
        repeats, warmup, copy_elements, batch = args.repeats or 20, 3, 1 << 28, None
        where = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)["name"].decode()

    timer = Timer(xp)
    copy = copy_bandwidth(xp, timer, copy_elements, repeats, warmup)
    print(f"CUDA twins on {where}; float32; copy bandwidth {copy:.1f} GB/s (read + write)\n")
    print(f"{'kernel':32} {'shape':>22} {'check':>9} {'ms':>9} {'GB/s':>8} {'of copy':>8}")
    for name, shape, make, run, moved in cases(shapes):
        error = check(name.split()[0], make, run, xp, to_numpy)
        arrays = make(xp, batch or shape[0], np.random.default_rng(1))
        seconds = timer(lambda: run(kernels.CUDA, *arrays), repeats, warmup)
        rate = moved(*arrays) / seconds / 1e9
        checked = "-" if error is None else f"{error:.1e}"
        print(f"{name:32} {str(shape):>22} {checked:>9} {seconds * 1e3:9.3f} {rate:8.1f} {rate / copy:8.0%}")


if __name__ == "__main__":
    main()
