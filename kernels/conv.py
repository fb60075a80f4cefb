"""The copies behind a convolution: im2col, col2im and the bias gradient, twice.

``minivgg/functions/conv.py`` states the maths and does the matrix products;
these kernels move the data.  For an NCHW input x with a (kh, kw) window,
stride s and zero padding p, im2col copies every window of the padded input
into one row of a matrix ``cols``: N*Ho*Wo rows ordered (n, i, j), kh*kw*C
columns ordered (u, v, c),

    cols[(n, i, j), (u, v, c)] = xp[n, c, s*i + u, s*j + v]

The channels are the fastest axis (NHWC memory), so each window row is a few
contiguous runs of memory.  col2im is its adjoint: it adds every row of a
matrix back onto the window it came from.  bias_grad sums dy over n, i, j.

The NumPy twins come first; the CUDA twins below launch ``conv.cu``, whose
kernels have the same names and compute the same entries.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import launch, shards, workspace
from .layout import array_module, conv_output_size, dense, to_nchw, to_nhwc


# ---- the NumPy twins ---------------------------------------------------------------

def pad_nhwc(x_nhwc, padding):
    """Zero-pad the two spatial axes of an NHWC array (into a reused buffer: only its border is zeroed)."""
    if padding == 0:
        return x_nhwc
    n, h, w, c = x_nhwc.shape
    p = padding
    padded = workspace.empty((n, h + 2 * p, w + 2 * p, c), x_nhwc.dtype)

    def pad(start, stop):
        part = padded[start:stop]
        part[:, :p], part[:, p + h:], part[:, p:p + h, :p], part[:, p:p + h, p + w:] = 0, 0, 0, 0
        part[:, p:p + h, p:p + w, :] = x_nhwc[start:stop]
    shards.over_batch(pad, n, padded.size)
    return padded


SMALL_CHANNELS = 4  # below this, im2col copies whole image rows instead of runs of C numbers


def im2col(x, kh, kw, stride=1, padding=0):
    """Copy every (kh, kw) window of NCHW ``x`` into a row of a matrix.

    Returns ``cols`` of shape (N*Ho*Wo, kh*kw*C), row (n, i, j), column (u, v, c).
    The windows are a strided view of the padded input, ``windows[n, i, j,
    c, u, v]``, copied in one call into the (n, i, j, u, v, c) order of
    ``cols``.  For an input layer (1 or 3 channels) each window offset
    contributes only C contiguous numbers per row, and such short copies are
    slow; there the transpose of ``cols`` is filled instead, one long image
    row at a time, and its transposed view is returned (the same matrix,
    column-major).
    """
    xp = pad_nhwc(to_nhwc(x), padding)
    n, hp, wp, c = xp.shape
    ho = (hp - kh) // stride + 1
    wo = (wp - kw) // stride + 1
    if c < SMALL_CHANNELS:
        cols_t = workspace.empty((kh, kw, c, n, ho, wo), x.dtype)

        def copy_rows(start, stop):
            for u in range(kh):
                for v in range(kw):
                    window = xp[start:stop, u:u + stride * ho:stride, v:v + stride * wo:stride, :]
                    cols_t[u, v, :, start:stop] = window.transpose(3, 0, 1, 2)
        shards.over_batch(copy_rows, n, cols_t.size)
        return cols_t.reshape(kh * kw * c, n * ho * wo).T
    windows = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    cols = workspace.empty((n, ho, wo, kh, kw, c), x.dtype)

    def copy_windows(start, stop):
        np.copyto(cols[start:stop], windows[start:stop].transpose(0, 1, 2, 4, 5, 3))
    shards.over_batch(copy_windows, n, cols.size)
    return cols.reshape(n * ho * wo, kh * kw * c)


def col2im(cols, x_shape, kh, kw, stride=1, padding=0):
    """The adjoint of im2col: add each row of ``cols`` back onto its window.

    ``x_shape`` is the NCHW shape of the input that im2col saw; the result has
    that shape (an NCHW view of NHWC memory).
    """
    n, c, h, w = x_shape
    ho = conv_output_size(h, kh, stride, padding)
    wo = conv_output_size(w, kw, stride, padding)
    windows = cols.reshape(n, ho, wo, kh, kw, c)
    xp = workspace.empty((n, h + 2 * padding, w + 2 * padding, c), cols.dtype)

    def add_windows(start, stop):
        part = xp[start:stop]
        part.fill(0)
        for u in range(kh):
            for v in range(kw):
                part[:, u:u + stride * ho:stride, v:v + stride * wo:stride, :] += windows[start:stop, :, :, u, v, :]
    shards.over_batch(add_windows, n, cols.size)
    return to_nchw(xp[:, padding:padding + h, padding:padding + w, :])


def bias_grad(dy):
    """db[o] = sum over n, i, j of dy[n, o, i, j]: the product 1^T dY of a row of ones with dY's
    (N*H*W, O) rows.

    BLAS's matrix-vector product reads dY once at memory speed, where NumPy's
    column sums of so narrow a matrix run 3-15x slower (65536 x 16, the
    default run's first layer: 1.1 ms against 0.07 ms on the 2-core EPYC).
    """
    rows = to_nhwc(dy).reshape(-1, dy.shape[1])
    ones = workspace.empty((rows.shape[0],), dy.dtype)
    ones.fill(1)
    return ones @ rows


# ---- the CUDA twins (conv.cu) --------------------------------------------------------

def im2col_cuda(x, kh, kw, stride=1, padding=0):
    """im2col on conv.cu: one thread per entry of ``cols``."""
    x_nhwc = to_nhwc(x)
    n, h, w, c = x_nhwc.shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    cols = array_module(x).empty((n * ho * wo, kh * kw * c), dtype=x.dtype)
    launch.run_elementwise("im2col", x.dtype, cols.size,
                           (x_nhwc, cols, *launch.indices(n, h, w, c, kh, kw, stride, padding, ho, wo)))
    return cols


def col2im_cuda(cols, x_shape, kh, kw, stride=1, padding=0):
    """col2im on conv.cu: one thread per input element gathers its windows (no atomics)."""
    n, c, h, w = x_shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    x_nhwc = array_module(cols).empty((n, h, w, c), dtype=cols.dtype)
    launch.run_elementwise("col2im", cols.dtype, x_nhwc.size,
                           (dense(cols), x_nhwc, *launch.indices(n, h, w, c, kh, kw, stride, padding, ho, wo)))
    return to_nchw(x_nhwc)


def bias_grad_cuda(dy):
    """bias_grad on conv.cu: a 2-d grid of column sums through shared memory."""
    rows_by_o = to_nhwc(dy).reshape(-1, dy.shape[1])
    rows, o = rows_by_o.shape
    db = array_module(dy).zeros(o, dtype=dy.dtype)
    block = (32, max(1, launch.BLOCK // 32))
    grid = (-(-o // block[0]), max(1, min(-(-rows // block[1]), 1024)))
    launch.run("bias_grad", dy.dtype, grid, block, (rows_by_o, db, *launch.indices(rows, o)),
               shared_bytes=block[0] * block[1] * dy.dtype.itemsize)
    return db
