"""Max-pooling forward and backward (the NumPy twin of pool.cu).

    y[n, c, i, j] = max over (u, v) of x[n, c, s*i + u, s*j + v]

for a (kh, kw) window and stride s, with no padding.  The backward sends each
output gradient to the one input that won the max (the first, on a tie):

    dx[n, c, s*i + u*, s*j + v*] += dy[n, c, i, j],   (u*, v*) = argmax

``+=`` because overlapping windows (stride < kernel) can pick the same input.
The forward returns the winner's position inside its window (u*kw + v) so that
the backward needs no search.
"""
import numpy as np

from .conv import conv_output_size
from .layout import to_nchw, to_nhwc


def window_view(x_nhwc, kh, kw, stride):
    """A read-only (N, Ho, Wo, kh, kw, C) view of every pooling window."""
    n, h, w, c = x_nhwc.shape
    ho = conv_output_size(h, kh, stride, 0)
    wo = conv_output_size(w, kw, stride, 0)
    sn, sh, sw, sc = x_nhwc.strides
    return np.lib.stride_tricks.as_strided(
        x_nhwc, shape=(n, ho, wo, kh, kw, c),
        strides=(sn, sh * stride, sw * stride, sh, sw, sc), writeable=False)


def max_pool_forward(x, kh=2, kw=2, stride=2):
    """Returns ``(y, argmax)``: the NCHW maxima and each winner's index u*kw + v."""
    windows = window_view(to_nhwc(x), kh, kw, stride)
    n, ho, wo, _, _, c = windows.shape
    flat = windows.reshape(n, ho, wo, kh * kw, c)
    argmax = flat.argmax(axis=3).astype(np.int32)
    y = np.take_along_axis(flat, argmax[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    return to_nchw(y), to_nchw(argmax)


def max_pool_backward(dy, argmax, x_shape, kh=2, kw=2, stride=2):
    """Route each output gradient to the input that won its window."""
    n, c, h, w = x_shape
    dy_nhwc, arg_nhwc = to_nhwc(dy), to_nhwc(argmax)
    ho, wo = dy_nhwc.shape[1:3]
    dx = np.zeros((n, h, w, c), dtype=dy.dtype)
    for u in range(kh):
        for v in range(kw):
            won = arg_nhwc == u * kw + v
            dx[:, u:u + stride * ho:stride, v:v + stride * wo:stride, :] += np.where(won, dy_nhwc, 0)
    return to_nchw(dx)
