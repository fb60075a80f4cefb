"""Convolution as im2col + one matrix product (the NumPy twin of conv.cu).

For an input x of shape (N, C, H, W), a weight w of shape (O, C, kh, kw),
stride s and zero padding p, the output has Ho = (H + 2p - kh) // s + 1 rows,
Wo = (W + 2p - kw) // s + 1 columns and

    y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] * xp[n, c, s*i + u, s*j + v]

where xp is x padded with p zeros on each side.  im2col copies every window
of xp into one row of a matrix ``cols`` with N*Ho*Wo rows and kh*kw*C
columns; the sum above is then the matrix product ``cols @ W.T`` with
W = w reshaped to (O, kh*kw*C).  The gradients are two more products:

    dW = dY.T @ cols            dcols = dY @ W            db = sum of dY rows

and col2im adds every row of dcols back to the window it came from.
Rows are ordered (n, i, j) and columns (u, v, c): the channels are the
fastest axis (NHWC), so each window row is a few contiguous runs of memory.
"""
import numpy as np

from .layout import to_nchw, to_nhwc


def conv_output_size(size, kernel, stride, padding):
    """Output length of a convolution or pooling along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def pad_nhwc(x_nhwc, padding):
    """Zero-pad the two spatial axes of an NHWC array."""
    if padding == 0:
        return x_nhwc
    n, h, w, c = x_nhwc.shape
    padded = np.zeros((n, h + 2 * padding, w + 2 * padding, c), dtype=x_nhwc.dtype)
    padded[:, padding:padding + h, padding:padding + w, :] = x_nhwc
    return padded


SMALL_CHANNELS = 4  # below this, im2col copies whole image rows instead of runs of C numbers


def im2col(x, kh, kw, stride=1, padding=0):
    """Copy every (kh, kw) window of NCHW ``x`` into a row of a matrix.

    Returns ``cols`` of shape (N*Ho*Wo, kh*kw*C), row (n, i, j), column (u, v, c).
    For an input layer (1 or 3 channels) each window offset contributes only
    C contiguous numbers per row, and such short copies are slow; there the
    transpose of ``cols`` is filled instead, one long image row at a time,
    and its transposed view is returned (the same matrix, column-major).
    """
    xp = pad_nhwc(to_nhwc(x), padding)
    n, hp, wp, c = xp.shape
    ho = (hp - kh) // stride + 1
    wo = (wp - kw) // stride + 1
    if c < SMALL_CHANNELS:
        cols_t = np.empty((kh, kw, c, n, ho, wo), dtype=x.dtype)
        for u in range(kh):
            for v in range(kw):
                cols_t[u, v] = xp[:, u:u + stride * ho:stride, v:v + stride * wo:stride, :].transpose(3, 0, 1, 2)
        return cols_t.reshape(kh * kw * c, n * ho * wo).T
    cols = np.empty((n, ho, wo, kh, kw, c), dtype=x.dtype)
    for u in range(kh):
        for v in range(kw):
            cols[:, :, :, u, v, :] = xp[:, u:u + stride * ho:stride, v:v + stride * wo:stride, :]
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
    xp = np.zeros((n, h + 2 * padding, w + 2 * padding, c), dtype=cols.dtype)
    for u in range(kh):
        for v in range(kw):
            xp[:, u:u + stride * ho:stride, v:v + stride * wo:stride, :] += windows[:, :, :, u, v, :]
    return to_nchw(xp[:, padding:padding + h, padding:padding + w, :])


def weight_matrix(w):
    """Weight (O, C, kh, kw) as the (O, kh*kw*C) matrix that matches im2col's columns."""
    o = w.shape[0]
    return np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(o, -1)


def conv2d_forward(x, w, b=None, stride=1, padding=0):
    """y = conv(x, w) + b.  Returns ``(y, cols)``; keep ``cols`` for the backward."""
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho = conv_output_size(h, kh, stride, padding)
    wo = conv_output_size(wd, kw, stride, padding)
    cols = im2col(x, kh, kw, stride, padding)
    y = cols @ weight_matrix(w).T
    if b is not None:
        y += b
    return to_nchw(y.reshape(n, ho, wo, o)), cols


def bias_grad(dy):
    """db[o] = sum over n, i, j of dy[n, o, i, j]."""
    return to_nhwc(dy).reshape(-1, dy.shape[1]).sum(axis=0)


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
    return dx, np.ascontiguousarray(dw), bias_grad(dy)
