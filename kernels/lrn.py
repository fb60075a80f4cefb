"""The LRN kernels: the NumPy twins of lrn.cu, then the CUDA launches.

The maths and the gradient's derivation are in ``minivgg/functions/lrn.py``.
The power is the slow part: both twins compute one per element,
s = d**(-beta), and get d**(-beta-1) as s / d.
"""
import numpy as np

from . import launch
from .layout import array_module, check_same_dtype, to_nchw, to_nhwc


def channel_window_sum(a, before, after):
    """s[:, c] = sum of a[:, c - before .. c + after] along axis 1, zero outside."""
    n, c, h, w = a.shape
    padded = np.zeros((n, c + before + after, h, w), dtype=a.dtype)
    padded[:, before:before + c] = a
    total = padded[:, 0:c].copy()
    for shift in range(1, before + after + 1):
        total += padded[:, shift:shift + c]
    return total


def lrn_forward(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """Returns ``(y, d)``: the normalised output and the denominator base d."""
    d = k + alpha * channel_window_sum(x * x, size // 2, (size - 1) // 2)
    return x * d ** (-beta), d


def lrn_backward(dy, x, d, size=5, alpha=1e-4, beta=0.75):
    """Gradient of lrn_forward w.r.t. x, given its saved denominator ``d``."""
    scale = d ** (-beta)  # one power (the slow part) serves both terms: d**(-beta-1) = scale / d
    weighted = dy * x * scale / d
    spread = channel_window_sum(weighted, (size - 1) // 2, size // 2)
    return dy * scale - 2 * alpha * beta * x * spread


# ---- the CUDA twins (lrn.cu) -----------------------------------------------------------

def lrn_forward_cuda(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """lrn_forward on lrn.cu: one thread per element sums its channel window."""
    xp = array_module(x)
    x_nhwc = to_nhwc(x)
    y, d = xp.empty_like(x_nhwc), xp.empty_like(x_nhwc)
    t = x.dtype.type
    launch.run_elementwise("lrn_forward", x.dtype, x.size,
                           (x_nhwc, y, d, *launch.indices(x.size // x.shape[1], x.shape[1], size),
                            t(alpha), t(-beta), t(k)))
    return to_nchw(y), to_nchw(d)


def lrn_backward_cuda(dy, x, d, size=5, alpha=1e-4, beta=0.75):
    """lrn_backward on lrn.cu, with the one power per element of the NumPy twin."""
    check_same_dtype("lrn_backward", dy, x, d)
    dy_nhwc, x_nhwc, d_nhwc = to_nhwc(dy), to_nhwc(x), to_nhwc(d)
    dx = array_module(x).empty_like(x_nhwc)
    t = x.dtype.type
    launch.run_elementwise("lrn_backward", x.dtype, x.size,
                           (dy_nhwc, x_nhwc, d_nhwc, dx, *launch.indices(x.size // x.shape[1], x.shape[1], size),
                            t(-beta), t(2 * alpha * beta)))
    return to_nchw(dx)
