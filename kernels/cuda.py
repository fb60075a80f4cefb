"""The CUDA twins of the NumPy kernels, and the one function that launches them.

Every function below has the name, arguments and result of its NumPy twin in
``kernels/<op>.py`` and runs the CUDA C of ``kernels/<op>.cu``:

* given CuPy arrays, on the GPU: each .cu file is compiled once per process by
  ``cupy.RawModule`` (NVRTC), and the matrix products go to ``cupy.matmul``;
* given NumPy arrays, on the CPU emulator of ``kernels/emulator/``: the same
  .cu file compiled by g++, one CUDA thread at a time.  Slow, but it is how the
  tests check the CUDA C on a machine without a GPU, and how a learner can step
  through a kernel in a debugger.

Both paths share all the Python here (shapes, grids, output arrays) and meet
in ``launch()``.  Arrays are NCHW views of NHWC memory, as in the NumPy twins;
``xp`` is whichever of numpy and cupy owns the arguments.
"""
import functools
import hashlib
from pathlib import Path

import numpy as np

from .conv import conv_output_size
from .dropout import keep_threshold

KERNEL_DIR = Path(__file__).resolve().parent

# The kernels of each .cu file.  Each is a template over the element type T,
# instantiated for float and double through NVRTC name expressions.
KERNELS = {
    "activation.cu": ("relu_forward", "relu_backward"),
    "conv.cu": ("im2col", "col2im", "bias_grad"),
    "dropout.cu": ("dropout_forward", "dropout_backward"),
    "loss.cu": ("softmax_cross_entropy_forward", "softmax_cross_entropy_backward"),
    "lrn.cu": ("lrn_forward", "lrn_backward"),
    "pool.cu": ("max_pool_forward", "max_pool_backward"),
    "sgd.cu": ("sgd_update",),
}
SOURCE_OF = {kernel: source for source, kernels in KERNELS.items() for kernel in kernels}
C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

BLOCK = 256            # threads per block of the one-dimensional kernels
MAX_BLOCKS = 65535     # grid-stride loops cover any size with at most this many blocks


# ---- where the kernels come from --------------------------------------------

def require_cupy():
    """The cupy module, or a clear ImportError where it is not installed."""
    try:
        import cupy
    except ImportError as error:
        raise ImportError("cupy is not installed; pip install cupy-cuda13x") from error
    return cupy


def name_expressions(source):
    """The template instantiations of one .cu file, e.g. ``relu_forward<float>``."""
    return [f"{kernel}<{c_type}>" for kernel in KERNELS[source] for c_type in C_TYPES.values()]


def nvrtc_options():
    """NVRTC options for every .cu file (the architecture is added by the caller).

    CuPy caches compiled modules on disk keyed by the source text and the
    options, not by included headers; the define carries a hash of
    cuda_common.h so that editing the header recompiles.
    """
    header_hash = hashlib.sha256((KERNEL_DIR / "cuda_common.h").read_bytes()).hexdigest()[:16]
    return (f"-I{KERNEL_DIR}", f"-DMINIVGG_COMMON_H_HASH=0x{header_hash}")


def nvrtc_compile(source, arch):
    """Compile kernels/<source> with NVRTC for ``arch`` ("sm_90", "compute_80"...), no GPU needed.

    ``cupy.RawModule`` asks the CUDA driver which GPU to compile for, which
    fails on a machine without one.  This drives NVRTC itself, with the same
    options and an explicit architecture: the check that CI runs on every
    commit.  Returns {name expression: lowered (mangled) name} and the
    compiler log; raises RuntimeError with the log when compilation fails.
    """
    require_cupy()
    from cupy.cuda import nvrtc
    expressions = name_expressions(source)
    program = nvrtc.createProgram((KERNEL_DIR / source).read_text(), source, [], [])
    try:
        for expression in expressions:
            nvrtc.addNameExpression(program, expression)
        try:
            nvrtc.compileProgram(program, [f"--gpu-architecture={arch}", *nvrtc_options()])
        except nvrtc.NVRTCError as error:
            raise RuntimeError(f"NVRTC could not compile {source} for {arch}:\n"
                               f"{nvrtc.getProgramLog(program)}") from error
        lowered = {e: nvrtc.getLoweredName(program, e) for e in expressions}
        return lowered, nvrtc.getProgramLog(program)
    finally:
        nvrtc.destroyProgram(program)


@functools.cache
def gpu_module(source):
    """The ``cupy.RawModule`` of kernels/<source>, compiled once per process."""
    cupy = require_cupy()
    return cupy.RawModule(code=(KERNEL_DIR / source).read_text(), options=nvrtc_options(),
                          name_expressions=name_expressions(source))


@functools.cache
def gpu_function(kernel, expression, device_id):
    """``expression`` (e.g. ``relu_forward<float>``) on GPU ``device_id``, looked up once, not per launch."""
    return gpu_module(SOURCE_OF[kernel]).get_function(expression)


@functools.cache
def emulated_module(source):
    """The emulator's build of kernels/<source>, compiled once (and cached on disk)."""
    from .emulator import EmulatedModule
    return EmulatedModule(KERNEL_DIR / source, name_expressions(source))


# ---- the launch ----------------------------------------------------------------

def array_module(*arrays):
    """``numpy`` (run on the emulator) or ``cupy`` (run on the GPU) for ``arrays``."""
    on_cpu = {isinstance(a, np.ndarray) for a in arrays}
    if on_cpu == {True}:
        return np
    cupy = require_cupy()
    if on_cpu == {False} and all(isinstance(a, cupy.ndarray) for a in arrays):
        return cupy
    kinds = sorted({type(a).__module__ + "." + type(a).__name__ for a in arrays})
    raise TypeError(f"expected all NumPy arrays or all CuPy arrays, got {kinds}")


def is_dense(a):
    """True when ``a`` fills one gap-free block of memory, its axes in any order."""
    slowest_first = sorted(range(a.ndim), key=lambda axis: a.strides[axis], reverse=True)
    return a.transpose(slowest_first).flags.c_contiguous


def launch(kernel, dtype, grid, block, args, shared_bytes=0):
    """Run ``kernel<T>`` (T the C type of ``dtype``) on ``grid`` x ``block`` threads.

    ``args`` are the kernel's arguments in order: arrays (passed as pointers;
    each must be dense) and NumPy scalars whose type matches the C parameter
    (``np.int64`` for index_t, ``np.uint32`` for unsigned int, ``T`` for T).
    The arrays decide where it runs: CuPy arrays on the GPU, NumPy arrays on
    the emulator.  A grid with no blocks runs nothing.
    """
    dtype = np.dtype(dtype)
    if dtype not in C_TYPES:
        raise TypeError(f"{kernel}: expected float32 or float64 data, got {dtype}")
    arrays = [a for a in args if not isinstance(a, np.generic)]
    for k, a in enumerate(arrays):
        if not is_dense(a):
            raise ValueError(f"{kernel}: array argument {k} is not one dense block of memory "
                             f"(shape {a.shape}, strides {a.strides})")
    if 0 in tuple(grid):
        return
    expression = f"{kernel}<{C_TYPES[dtype]}>"
    xp = array_module(*arrays)
    if xp is np:
        emulated_module(SOURCE_OF[kernel]).launch(expression, grid, block, args, shared_bytes)
    else:
        function = gpu_function(kernel, expression, xp.cuda.Device().id)
        function(tuple(grid), tuple(block), tuple(args), shared_mem=shared_bytes)


def grid_for(n):
    """The grid of a grid-stride loop over ``n`` elements, ``BLOCK`` threads per block."""
    return (max(1, min(-(-n // BLOCK), MAX_BLOCKS)),)


def indices(*values):
    """Python ints as the kernels' index_t (64-bit) arguments."""
    return tuple(np.int64(v) for v in values)


# ---- layout helpers (the xp versions of kernels/layout.py) -------------------

def to_nhwc(x):
    """A C-contiguous NHWC array holding NCHW ``x`` (free for an NCHW view of NHWC memory)."""
    return array_module(x).ascontiguousarray(x.transpose(0, 2, 3, 1))


def to_nchw(x_nhwc):
    """The NCHW view of NHWC ``x_nhwc`` (no copy)."""
    return x_nhwc.transpose(0, 3, 1, 2)


def dense(x):
    """``x`` itself when dense, else a C-contiguous copy."""
    return x if is_dense(x) else array_module(x).ascontiguousarray(x)


def empty_with_layout(like, dtype=None):
    """An uninitialised array shaped like dense ``like``, its axes in the same memory order."""
    slowest_first = sorted(range(like.ndim), key=lambda axis: like.strides[axis], reverse=True)
    buffer = array_module(like).empty([like.shape[a] for a in slowest_first],
                                      dtype=like.dtype if dtype is None else dtype)
    return buffer.transpose(np.argsort(slowest_first).tolist())


def with_layout(a, like):
    """``a`` laid out in memory like ``like`` (a copy only when the layouts differ)."""
    if a.strides == like.strides:
        return a
    out = empty_with_layout(like, a.dtype)
    out[...] = a
    return out


def check_same_dtype(op, *arrays):
    """Raise unless all ``arrays`` share one dtype (the kernels take one T)."""
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) != 1:
        raise TypeError(f"{op}: expected arrays of one dtype, got {sorted(map(str, dtypes))}")


# ---- convolution (conv.cu) ----------------------------------------------------

def im2col(x, kh, kw, stride=1, padding=0):
    """Copy every (kh, kw) window of NCHW ``x`` into a row of a matrix.

    Returns ``cols`` of shape (N*Ho*Wo, kh*kw*C), row (n, i, j), column (u, v, c).
    """
    x_nhwc = to_nhwc(x)
    n, h, w, c = x_nhwc.shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    cols = array_module(x).empty((n * ho * wo, kh * kw * c), dtype=x.dtype)
    launch("im2col", x.dtype, grid_for(cols.size), (BLOCK,),
           (x_nhwc, cols, *indices(n, h, w, c, kh, kw, stride, padding, ho, wo)))
    return cols


def col2im(cols, x_shape, kh, kw, stride=1, padding=0):
    """The adjoint of im2col: add each row of ``cols`` back onto its window (NCHW view)."""
    n, c, h, w = x_shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    x_nhwc = array_module(cols).empty((n, h, w, c), dtype=cols.dtype)
    launch("col2im", cols.dtype, grid_for(x_nhwc.size), (BLOCK,),
           (dense(cols), x_nhwc, *indices(n, h, w, c, kh, kw, stride, padding, ho, wo)))
    return to_nchw(x_nhwc)


def weight_matrix(w):
    """Weight (O, C, kh, kw) as the (O, kh*kw*C) matrix that matches im2col's columns."""
    return array_module(w).ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(w.shape[0], -1)


def conv2d_forward(x, w, b=None, stride=1, padding=0):
    """y = conv(x, w) + b.  Returns ``(y, cols)``; keep ``cols`` for the backward."""
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(wd, kw, stride, padding)
    cols = im2col(x, kh, kw, stride, padding)
    y = cols @ weight_matrix(w).T
    if b is not None:
        y += b
    return to_nchw(y.reshape(n, ho, wo, o)), cols


def bias_grad(dy):
    """db[o] = sum over n, i, j of dy[n, o, i, j]."""
    rows_by_o = to_nhwc(dy).reshape(-1, dy.shape[1])
    rows, o = rows_by_o.shape
    db = array_module(dy).zeros(o, dtype=dy.dtype)
    block = (32, max(1, BLOCK // 32))
    grid = (-(-o // block[0]), max(1, min(-(-rows // block[1]), 1024)))
    launch("bias_grad", dy.dtype, grid, block, (rows_by_o, db, *indices(rows, o)),
           shared_bytes=block[0] * block[1] * dy.dtype.itemsize)
    return db


def conv2d_backward(dy, x_shape, cols, w, stride=1, padding=0, input_grad=True):
    """Gradients of conv2d w.r.t. its input, weight and bias: ``(dx, dw, db)``.

    With ``input_grad=False`` (the first layer: nothing to send the gradient
    to) dx is None and its GEMM and col2im are skipped.
    """
    o, c, kh, kw = w.shape
    dy_rows = to_nhwc(dy).reshape(-1, o)
    dw = (dy_rows.T @ cols).reshape(o, kh, kw, c).transpose(0, 3, 1, 2)
    dx = None
    if input_grad:
        dx = col2im(dy_rows @ weight_matrix(w), x_shape, kh, kw, stride, padding)
    return dx, array_module(dw).ascontiguousarray(dw), bias_grad(dy)


# ---- max-pooling (pool.cu) -----------------------------------------------------

def max_pool_forward(x, kh=2, kw=2, stride=2):
    """Returns ``(y, argmax)``: the NCHW maxima and each winner's index u*kw + v."""
    xp = array_module(x)
    x_nhwc = to_nhwc(x)
    n, h, w, c = x_nhwc.shape
    ho, wo = conv_output_size(h, kh, stride, 0), conv_output_size(w, kw, stride, 0)
    y = xp.empty((n, ho, wo, c), dtype=x.dtype)
    argmax = xp.empty((n, ho, wo, c), dtype=np.int32)
    launch("max_pool_forward", x.dtype, grid_for(y.size), (BLOCK,),
           (x_nhwc, y, argmax, *indices(n, h, w, c, kh, kw, stride, ho, wo)))
    return to_nchw(y), to_nchw(argmax)


def max_pool_backward(dy, argmax, x_shape, kh=2, kw=2, stride=2):
    """Route each output gradient to the input that won its window."""
    n, c, h, w = x_shape
    dy_nhwc, arg_nhwc = to_nhwc(dy), to_nhwc(argmax.astype(np.int32, copy=False))
    ho, wo = dy_nhwc.shape[1:3]
    dx = array_module(dy).empty((n, h, w, c), dtype=dy.dtype)
    launch("max_pool_backward", dy.dtype, grid_for(dx.size), (BLOCK,),
           (dy_nhwc, arg_nhwc, dx, *indices(n, h, w, c, kh, kw, stride, ho, wo)))
    return to_nchw(dx)


# ---- ReLU (activation.cu) ------------------------------------------------------

def relu_forward(x):
    """y = max(x, 0), in the memory layout of ``x``."""
    x = dense(x)
    y = empty_with_layout(x)
    launch("relu_forward", x.dtype, grid_for(x.size), (BLOCK,), (x, y, *indices(x.size)))
    return y


def relu_backward(dy, y):
    """dx = dy where the output was positive, else 0."""
    check_same_dtype("relu_backward", dy, y)
    y = dense(y)
    dy = with_layout(dy, y)
    dx = empty_with_layout(y)
    launch("relu_backward", y.dtype, grid_for(y.size), (BLOCK,), (dy, y, dx, *indices(y.size)))
    return dx


# ---- dropout (dropout.cu) ------------------------------------------------------

def dropout_forward(x, p, seed, step, layer, sample_offset=0):
    """Returns ``(y, mask)`` with y = x * mask / (1 - p), the mask that dropout.py draws."""
    xp = array_module(x)
    threshold = keep_threshold(p)
    x = xp.ascontiguousarray(x)      # the hash numbers elements in NCHW (C) order
    y = xp.empty_like(x)
    mask = xp.empty(x.shape, dtype=bool)
    per_sample = x.size // x.shape[0] if x.shape[0] else 1
    scale = x.dtype.type(1.0 / (1.0 - p))
    launch("dropout_forward", x.dtype, grid_for(x.size), (BLOCK,),
           (x, y, mask, *indices(x.size, per_sample),
            np.uint32(seed), np.uint32(step), np.uint32(layer), np.uint32(sample_offset),
            threshold, scale))
    return y, mask


def dropout_backward(dy, mask, p):
    """dx = dy * mask / (1 - p)."""
    xp = array_module(dy, mask)
    dy, mask = xp.ascontiguousarray(dy), xp.ascontiguousarray(mask, dtype=bool)
    dx = xp.empty_like(dy)
    launch("dropout_backward", dy.dtype, grid_for(dy.size), (BLOCK,),
           (dy, mask, dx, *indices(dy.size), dy.dtype.type(1.0 / (1.0 - p))))
    return dx


# ---- softmax cross-entropy (loss.cu) ---------------------------------------------

def reduction_block(k):
    """Threads for one row of k values: a power of two, at most BLOCK."""
    threads = 1
    while threads < min(k, BLOCK):
        threads *= 2
    return threads


def softmax_cross_entropy_forward(z, labels):
    """Returns ``(loss, probs)``: the mean loss (0-d array) and the softmax."""
    xp = array_module(z, labels)
    z = xp.ascontiguousarray(z)
    labels = xp.ascontiguousarray(labels, dtype=np.int64)
    n, k = z.shape
    probs = xp.empty_like(z)
    row_loss = xp.empty(n, dtype=z.dtype)
    threads = reduction_block(k)
    launch("softmax_cross_entropy_forward", z.dtype, (n,), (threads,),
           (z, labels, probs, row_loss, *indices(k)), shared_bytes=threads * z.dtype.itemsize)
    return xp.asarray(row_loss.mean(), dtype=z.dtype), probs


def softmax_cross_entropy_backward(probs, labels, dloss=1.0):
    """dz = dloss * (probs - onehot(labels)) / N."""
    xp = array_module(probs, labels)
    probs = xp.ascontiguousarray(probs)
    labels = xp.ascontiguousarray(labels, dtype=np.int64)
    n, k = probs.shape
    dz = xp.empty_like(probs)
    launch("softmax_cross_entropy_backward", probs.dtype, grid_for(probs.size), (BLOCK,),
           (probs, labels, dz, *indices(probs.size, k), probs.dtype.type(float(dloss) / n)))
    return dz


# ---- local response normalisation (lrn.cu) ---------------------------------------

def lrn_forward(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """Returns ``(y, d)``: the normalised output and the denominator base d."""
    xp = array_module(x)
    x_nhwc = to_nhwc(x)
    y, d = xp.empty_like(x_nhwc), xp.empty_like(x_nhwc)
    t = x.dtype.type
    launch("lrn_forward", x.dtype, grid_for(x.size), (BLOCK,),
           (x_nhwc, y, d, *indices(x.size // x.shape[1], x.shape[1], size),
            t(alpha), t(-beta), t(k)))
    return to_nchw(y), to_nchw(d)


def lrn_backward(dy, x, d, size=5, alpha=1e-4, beta=0.75):
    """Gradient of lrn_forward w.r.t. x, given its saved denominator ``d``."""
    check_same_dtype("lrn_backward", dy, x, d)
    dy_nhwc, x_nhwc, d_nhwc = to_nhwc(dy), to_nhwc(x), to_nhwc(d)
    dx = array_module(x).empty_like(x_nhwc)
    t = x.dtype.type
    launch("lrn_backward", x.dtype, grid_for(x.size), (BLOCK,),
           (dy_nhwc, x_nhwc, d_nhwc, dx,
            *indices(x.size // x.shape[1], x.shape[1], size),
            t(-beta), t(-beta - 1), t(2 * alpha * beta)))
    return to_nchw(dx)


# ---- SGD (sgd.cu) ------------------------------------------------------------------

def sgd_update(param, grad, velocity, lr, momentum, weight_decay):
    """One SGD step on ``param`` and ``velocity``, in place, in one fused pass; returns None.

    Unlike the NumPy twin, ``grad`` is left as it was (no scratch space is needed).
    """
    for name, array in (("grad", grad), ("velocity", velocity)):
        if array.shape != param.shape or array.dtype != param.dtype:
            raise ValueError(f"sgd_update: {name} has shape {array.shape} and dtype {array.dtype}, "
                             f"but param has shape {param.shape} and dtype {param.dtype}")
    if not is_dense(param) or velocity.strides != param.strides:
        raise ValueError(f"sgd_update: param and velocity are updated in place, so they must be dense "
                         f"with the same strides, got {param.strides} and {velocity.strides}")
    t = param.dtype.type
    launch("sgd_update", param.dtype, grid_for(param.size), (BLOCK,),
           (param, with_layout(grad, param), velocity, *indices(param.size),
            t(lr), t(momentum), t(weight_decay)))
