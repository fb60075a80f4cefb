"""2-d convolution, differentiable: im2col + one matrix product.

For an input x of shape (N, C, H, W), a weight w of shape (O, C, kh, kw),
stride s and zero padding p, the output has Ho = (H + 2p - kh) // s + 1 rows,
Wo = (W + 2p - kw) // s + 1 columns and

    y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] * xp[n, c, s*i + u, s*j + v]

where xp is x padded with p zeros on each side.  The kernel ``im2col``
copies every window of xp into one row of a matrix ``cols`` (N*Ho*Wo rows
(n, i, j), kh*kw*C columns (u, v, c)); the sum above is then the matrix
product

    Y = cols @ W.T          W = w laid out as (O, kh*kw*C), columns (u, v, c)

and the gradients are two more products and the adjoint of im2col:

    dW = dY.T @ cols        dx = col2im(dY @ W)        db = sum of dY over n, i, j

Y and dY are (N*Ho*Wo, O): NHWC memory, of which the op hands out the NCHW
view.  The products are written once, here, for NumPy (BLAS) and CuPy
(cuBLAS) alike; only the copies (im2col, col2im, bias_grad) come from the
kernel set of the arrays' device.

A second algorithm computes the same y for 3x3 kernels with stride 1 and
padding 1: Winograd F(2x2, 3x3) (Lavin & Gray 2016; the maths is in
``kernels/winograd.py``).  Its 16 products, one per entry (i, j) of the 4x4
transform domain, are

    M[i, j] = V[i, j] @ U[i, j]        V = input transform (P tiles, C), U = filter transform (C, O)

and y = output transform of M.  The input gradient of a 3x3, stride-1,
padding-1 convolution is itself one: dx = conv(dy, w') with
w'[c, o, u, v] = w[o, c, 2 - u, 2 - v] (the filters flipped, in and out
channels swapped), so it runs through the same three steps.  The weight
gradient comes from the same transforms, transposed (``winograd_weight_grad``):
16 products Z[i, j]^T @ V[i, j] with Z the output gradient's transform, and
no im2col.

Winograd F(4x4, 3x3), 'winograd4' (``kernels/winograd4.py``), does the same
with 4x4 output tiles: 36 products (P, C) @ (C, O), P four times fewer
tiles, 4x fewer multiplications than the direct sum instead of 2.25x, and
less data in the transforms, for about 20 times the float32 rounding.
After an F(4x4) forward its input gradient comes from the adjoint of that
forward, sharing the output gradient's transform with dW
(``winograd_adjoint_gradients``).

A fourth, 'taps', is for maps of one 2x2 tile (H and W at most 2, where VGG
ends at 32x32).  With padding 1, output pixel p sees input pixel q through
one tap, (u, v) = q - p + (1, 1), so only 16 of im2col's 36 products per
2x2 map are not zero; 'taps' makes just those, as GEMMs on views of the NHWC
input and of the weight's (O, kh, kw, C) memory (``taps_forward``).

``choose_algorithm`` picks one per layer for the forward and one for the
input gradient (the rule and its measurements are next to it);
``use_algorithm("im2col" | "winograd" | "winograd4" | "taps" | "auto")`` forces one for
both, for a block of code, ``set_algorithm`` for the process.
"""
import contextlib
import itertools
from typing import Callable, NamedTuple, Optional

import numpy as np

from ..autograd import Function
from ..kernels import kernels_for
from ..kernels import shards, workspace
from ..kernels.workspace import matmul
from ..kernels.layout import array_module, conv_output_size, to_nchw, to_nhwc
from ..kernels.winograd import winograd_filter_transform, winograd_weight_transform
from ..kernels.winograd4 import winograd4_filter_transform, winograd4_weight_transform
from .checks import check_ndim

ALGORITHMS = ("auto", "im2col", "winograd", "winograd4", "taps")


class WinogradTransforms(NamedTuple):
    """One Winograd algorithm: its kernels (by name in the kernel set), its filter transform and that
    transform's adjoint, and its output tile's side (a tile has (tile + 2)**2 transform entries).
    ``input_adjoint``, the adjoint of the input transform, gives dx from the adjoint of the forward
    (``winograd_adjoint_gradients``); None where the algorithm has none, whose dx is conv(dy, w').
    ``bias_entry``: the transform entry through which the bias reaches every output (``winograd_conv3x3``)."""
    input_transform: str
    output_transform: str
    grad_transform: str
    filter_transform: Callable
    weight_transform: Callable
    tile: int
    input_adjoint: Optional[str]
    bias_entry: int


WINOGRAD_TRANSFORMS = {
    "winograd": WinogradTransforms("winograd_input_transform", "winograd_output_transform",
                                   "winograd_grad_transform", winograd_filter_transform, winograd_weight_transform, 2,
                                   None, 4 * 1 + 1),
    "winograd4": WinogradTransforms("winograd4_input_transform", "winograd4_output_transform",
                                    "winograd4_grad_transform", winograd4_filter_transform,
                                    winograd4_weight_transform, 4, "winograd4_input_transform_adjoint", 6 * 1 + 1),
}
_algorithm = "auto"   # process-wide, like the active kernel sets (data-parallel replica threads see it too)


def set_algorithm(name):
    """Use algorithm ``name`` for every convolution from now on: 'auto' (the rule), 'im2col', 'winograd'
    (F(2x2, 3x3)), 'winograd4' (F(4x4, 3x3)) or 'taps'.

    The Winograd algorithms apply to the layers they can compute (3x3, stride 1,
    padding 1), 'taps' to those of them on maps of one 2x2 tile; the others keep im2col.
    """
    global _algorithm
    if name not in ALGORITHMS:
        raise ValueError(f"conv2d: expected an algorithm in {list(ALGORITHMS)}, got {name!r}")
    _algorithm = name


@contextlib.contextmanager
def use_algorithm(name):
    """Within this block, convolutions use algorithm ``name`` (see ``set_algorithm``)."""
    previous = _algorithm
    set_algorithm(name)
    try:
        yield name
    finally:
        set_algorithm(previous)


def winograd_applies(w_shape, stride, padding):
    """Winograd F(2x2, 3x3) computes exactly the 3x3 convolutions with stride 1 and padding 1."""
    return tuple(w_shape[2:]) == (3, 3) and stride == 1 and padding == 1


def fits_one_tile(x_shape):
    """The map is at most 2x2: one tile of Winograd F(2x2, 3x3), the maps that 'taps' computes."""
    return x_shape[2] <= 2 and x_shape[3] <= 2


# The 'auto' rule, from benchmarks/winograd.py (benchmarks/results/winograd.txt: VGG-A at widths 1 and 0.25
# and VGG-D at width 1, 32x32, batch 64, float32, 2 cores, quiet).  Winograd saves GEMM work in proportion
# to C*O per pixel and adds transform work in proportion to C + O, so what decides is C*O / (C + O), half
# the harmonic mean of C and O.  The forward and the input gradient are chosen apart: a Winograd forward
# makes no columns, and its dW comes from its own transforms, transposed (``winograd_weight_grad``), while
# a Winograd input gradient only replaces the dx GEMM and col2im.
#
# On maps larger than one 4x4 tile F(4x4, 3x3) beats F(2x2, 3x3) at every width measured; speed over
# im2col (2-core AVX-512 EPYC, two runs; F(2x2, 3x3) in brackets):
#
#   layer (C->O @side)     harmonic mean   forward             input gradient      training step, all F(4x4)
#   16->32 @16                    21        0.80-0.93x (0.82x)  1.53-1.61x (1.05x)  1.04x (im2col forward: 1.43x)
#   32->64 @8                     43        0.85-0.90x (0.84x)  0.90x (0.72x)       0.80x
#   64->64 @8                     64        1.14-1.17x (1.07x)  1.46-1.60x (0.95x)  1.21x (im2col forward: 1.31x)
#   64->64 @32                    64        1.32-1.39x (0.71x)  2.70-3.03x (1.48x)  1.66x (im2col forward: 1.52x)
#   64->128 @16                   85        1.20-1.44x (0.83x)  1.46-1.62x (1.00x)  1.21-1.24x (1.15-1.25x)
#   128->128 @16, 128->256 @8  128, 171     1.29-1.45x          1.41-2.46x          1.17-1.49x (1.00-1.39x)
#   256->256 @8                  256        1.49-1.63x (1.28x)  1.71-1.93x (1.48x)  1.44-1.58x (1.21-1.26x)
#
# So on such maps F(4x4) for the forward (and with it dW) and the input gradient from a harmonic mean of
# 64, and the input gradient down to 16 on maps of 16x16 and more, where there are tiles enough.
# Re-measured at width 0.25 once the stacks of products ran on one OpenBLAS thread per half
# (``kernels/blas.py``): 16->32 @16 forward 1.07x, its step all F(4x4) 1.24x against 1.11x with im2col's
# forward; but F(4x4)'s forward there too measured 0.99x on the default run's whole step (in-process A/B,
# 25 rounds).  Once F(4x4)'s forward transforms went one axis at a time (``kernels/winograd4.py``,
# ``both_axes``), the default run's whole step (in-process A/B, 31 rounds, three runs): F(4x4) forwards at
# 16->32 @16 and 32->64 @8 1.014-1.023x, and with 32->64 @8's input gradient too 1.027-1.038x (batch 128:
# 1.016x).  Hence the thresholds of 16 (forward) and 32 (input gradient) below; at width 1 only VGG's
# first layer (3->64, harmonic mean 6) is under them.
#
# On maps of one 4x4 tile (VGG's 4x4 layers) F(4x4) has no edge over F(2x2) (256->512: 1.07-1.11x /
# 1.02x, 512->512: 0.92-1.04x / 1.06-1.17x forward), and below a harmonic mean of 128 neither beats im2col
# (64->128 @4 input gradient: 0.81-0.86x / 0.66x): F(2x2, 3x3) there, forward from 160, input gradient
# from 128.  With F(2x2)'s own dW, its training step on these maps: 256->512 1.09-1.19x, 512->512
# 1.24-1.28x (im2col's forward with its input gradient: 1.02-1.09x); 128->128 1.05x, as with im2col's
# forward; 64->128 0.78x.
#
# On a map of one 2x2 tile (H and W at most 2: the last two convolutions of VGG-A at 32x32) 'taps' computes
# the 16 products that are not zero, with no transform: both parts, whatever the width.  Against im2col
# (benchmarks/results/winograd.txt, 2-core EPYC, batch 64, OpenBLAS's AVX-512 / AVX2 kernels): 512->512
# forward 1.4x / 1.7x, whole step 1.2x / 1.6x; 128->128 forward 1.5x / 1.7x, step 1.3x / 1.4x.  There
# Winograd's products are tiny GEMMs of N rows each, and its transforms save nothing (its step is
# 0.3-1.05x im2col's there).  Whole networks (benchmarks/algorithms.py) against the rule without 'taps':
# VGG-A width 1 1.04-1.05x, its forward 1.04-1.06x, VGG-D 1.10-1.30x, the default run 1.02-1.03x.
MIN_HARMONIC_MEAN = {
    "winograd4": {"forward": 16, "input_grad": 32},     # maps larger than 4x4
    "winograd": {"forward": 160, "input_grad": 128},    # maps of one 4x4 tile
}
LARGE_MAP_SIDE, LARGE_MAP_MIN_HARMONIC_MEAN = 16, 16    # F(4x4)'s input gradient on maps of 16x16 and more


def winograd_rule(x_shape, w_shape, part):
    """The 'auto' rule for ``part`` on maps larger than one 2x2 tile: 'winograd4' on maps larger than
    4x4, 'winograd' on the others, where 2CO/(C+O) reaches its threshold; else 'im2col'."""
    c, o = x_shape[1], w_shape[0]
    algorithm = "winograd4" if max(x_shape[2:]) > 4 else "winograd"
    threshold = MIN_HARMONIC_MEAN[algorithm][part]
    if algorithm == "winograd4" and part == "input_grad" and min(x_shape[2:]) >= LARGE_MAP_SIDE:
        threshold = LARGE_MAP_MIN_HARMONIC_MEAN
    return algorithm if 2 * c * o >= threshold * (c + o) else "im2col"


def choose_algorithm(x_shape, w_shape, stride, padding, part="forward"):
    """'im2col', 'winograd', 'winograd4' or 'taps' for one layer's ``part`` ('forward' or 'input_grad'):
    the forced algorithm where it applies, else the rule."""
    if part not in ("forward", "input_grad"):
        raise ValueError(f"conv2d: expected part 'forward' or 'input_grad', got {part!r}")
    if not winograd_applies(w_shape, stride, padding) or _algorithm == "im2col":
        return "im2col"
    if _algorithm in WINOGRAD_TRANSFORMS:
        return _algorithm
    if fits_one_tile(x_shape):
        return "taps"
    if _algorithm == "auto":
        return winograd_rule(x_shape, w_shape, part)
    return "im2col"


def weight_matrix(w):
    """Weight (O, C, kh, kw) as the (O, kh*kw*C) matrix that matches im2col's columns.

    Free for a weight in (O, kh, kw, C) memory, as ``nn.Conv2d`` keeps it; a copy otherwise.
    """
    return array_module(w).ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(w.shape[0], -1)


def conv2d_forward(x, w, b=None, stride=1, padding=0):
    """y = conv(x, w) + b on raw arrays.  Returns ``(y, cols)``; keep ``cols`` for the backward."""
    kernels = kernels_for(x)
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(wd, kw, stride, padding)
    cols = kernels.im2col(x, kh, kw, stride, padding)
    y = matmul(cols, weight_matrix(w).T)
    if b is not None:
        add_bias(y, b)
    return to_nchw(y.reshape(n, ho, wo, o)), cols


def add_bias(y, b):
    """y += b in place, for y with its O channels on its last axis (a layer's NHWC output, or its rows);
    a NumPy y in shards of its first axis over the shard threads (``kernels/shards.py``)."""
    if array_module(y) is not np:
        y += b
        return
    shards.over_batch(lambda start, stop: np.add(y[start:stop], b, out=y[start:stop]), len(y), y.size)


def conv2d_backward(dy, x_shape, cols, w, stride=1, padding=0, input_grad="im2col"):
    """Gradients of conv2d w.r.t. its input, weight and bias on raw arrays: ``(dx, dw, db)``, dW from the
    forward's columns ``cols``.  ``input_grad`` is the algorithm for dx (``input_gradient``)."""
    dy_rows = to_nhwc(dy).reshape(-1, w.shape[0])
    dx = input_gradient(dy, x_shape, w, stride, padding, input_grad)
    return dx, weight_grad(dy_rows, cols, w.shape), kernels_for(dy).bias_grad(dy)


def input_gradient(dy, x_shape, w, stride, padding, algorithm):
    """dx by ``algorithm``: 'im2col' (col2im(dY @ W)), or 'winograd' or 'winograd4' (3x3, stride 1,
    padding 1 only); None for the first layer, which has nothing to send the gradient to: dx is None
    and its work skipped."""
    if algorithm is None:
        return None
    if algorithm in WINOGRAD_TRANSFORMS:
        return winograd_input_grad(dy, w, algorithm)
    kh, kw = w.shape[2:]
    dy_rows = to_nhwc(dy).reshape(-1, w.shape[0])
    return kernels_for(dy).col2im(matmul(dy_rows, weight_matrix(w)), x_shape, kh, kw, stride, padding)


def winograd_backward(dy, x_shape, v, w, algorithm, input_grad):
    """``(dx, dw, db)`` after a Winograd forward by ``algorithm``, which kept no columns: dW by its
    transposed transforms from the input's transform ``v`` (``winograd_weight_grad``, no im2col), dx by
    ``input_grad`` (by the same algorithm, where it has an input adjoint: ``winograd_adjoint_gradients``)."""
    if input_grad == algorithm and WINOGRAD_TRANSFORMS[algorithm].input_adjoint is not None:
        return (*winograd_adjoint_gradients(dy, x_shape, v, w, algorithm), kernels_for(dy).bias_grad(dy))
    return (input_gradient(dy, x_shape, w, 1, 1, input_grad), winograd_weight_grad(dy, v, algorithm),
            kernels_for(dy).bias_grad(dy))


# A small weight gradient (a network's first layers: few output channels, a long sum over N*Ho*Wo rows) is
# made as its transpose, cols.T @ dY, then laid out as the weight: OpenBLAS shares that product out better.
# Measured (2-core AVX-512 EPYC, float32, the copy included), dY.T @ cols against it: O=16, K=9 (the
# default run's first layer) 0.53 -> 0.27 ms; O=32, K=144 0.72 -> 0.50 ms; O=64, K=27 (VGG's first layer,
# 64 images at 32x32) 2.88 -> 2.34 ms; O=64, K=288 0.52 -> 0.43 ms; but O=64, K=576 0.94x and O=128,
# K=1152 0.95x.
SMALL_WEIGHT_GRAD = 64 * 288


def weight_grad(dy_rows, cols, w_shape):
    """dW = dY.T @ cols, handed out in the weight's (O, kh, kw, C) memory (and handed over: the weight's
    ``.grad`` keeps this very array); up to SMALL_WEIGHT_GRAD entries as (cols.T @ dY).T."""
    o, c, kh, kw = w_shape
    if o * kh * kw * c <= SMALL_WEIGHT_GRAD:
        dw = workspace.empty((o, kh * kw * c), dy_rows.dtype, like=dy_rows)
        dw[...] = matmul(cols.T, dy_rows).T
    else:
        dw = matmul(dy_rows.T, cols)
    return workspace.hand_over(dw.reshape(o, kh, kw, c).transpose(0, 3, 1, 2))


# ---- Winograd F(2x2, 3x3): 3x3 kernels, stride 1, padding 1 ------------------------------------

def winograd_input_transform(x, algorithm):
    """V (K, P, C): ``algorithm``'s input transform of x, by the kernel set of x's device."""
    return getattr(kernels_for(x), WINOGRAD_TRANSFORMS[algorithm].input_transform)(x)


def winograd_conv3x3(x, w, algorithm, flipped=False, v=None, b=None):
    """conv(x, w) + b (or conv(x, w') with the flipped filters) with stride 1 and padding 1 by
    ``algorithm``, 'winograd' or 'winograd4': input transform V (K, P, C), filter transform U (K, C, O),
    K GEMMs M[k] = V[k] @ U[k], output transform (K = 16 or 36).  ``v``: x's input transform, if made
    already.

    The bias goes in before the output transform: column 1 of A^T is all ones (A^T e_1 = 1) for both
    algorithms, so the output transform A^T M A of a tile sends entry (1, 1) of M to each of its outputs
    with weight 1, and b added to M[(1, 1)] of every tile (``bias_entry``, 1/K of M) adds b to the whole
    output, with no pass of its own over y."""
    transforms = WINOGRAD_TRANSFORMS[algorithm]
    u = transforms.filter_transform(w, flipped=flipped)
    n, _, h, wd = x.shape
    v = winograd_input_transform(x, algorithm) if v is None else v
    m = matmul(v, u)
    if b is not None:
        m[transforms.bias_entry] += b
    return getattr(kernels_for(x), transforms.output_transform)(m, (n, u.shape[2], h, wd))


def winograd_forward(x, w, b=None, algorithm="winograd", v=None):
    """y = conv(x, w) + b for a 3x3 weight, stride 1, padding 1, by Winograd F(2x2, 3x3) ('winograd') or
    F(4x4, 3x3) ('winograd4'), on raw arrays (``v``: x's input transform, if made already)."""
    return winograd_conv3x3(x, w, algorithm, v=v, b=b)


def winograd_input_grad(dy, w, algorithm="winograd"):
    """dx = conv(dy, w') with w'[c, o, u, v] = w[o, c, 2 - u, 2 - v], by Winograd ``algorithm``."""
    return winograd_conv3x3(dy, w, algorithm, flipped=True)


def winograd_weight_grad(dy, v, algorithm):
    """dW for a 3x3, stride-1, padding-1 convolution by Winograd ``algorithm``'s transforms, transposed
    (``kernels/winograd.py``, ``kernels/winograd4.py``):

        dW[o, c] = G^T [sum over tiles p of (A dy_{p,o} A^T) * (B^T x_{p,c} B)] G

    K GEMMs (O, P) @ (P, C) between them (K = 16 or 36), from the input's transform ``v`` (K, P, C).  In
    the weight's (O, kh, kw, C) memory, handed over."""
    transforms = WINOGRAD_TRANSFORMS[algorithm]
    z = getattr(kernels_for(dy), transforms.grad_transform)(dy)           # (K, P, O)
    return workspace.hand_over(transforms.weight_transform(matmul(z.transpose(0, 2, 1), v)))


def winograd_adjoint_gradients(dy, x_shape, v, w, algorithm):
    """dx and dW after a forward by Winograd ``algorithm`` (one with an input adjoint: F(4x4, 3x3)), both
    from the output gradient's transform Z:

        dx = adjoint input transform of M',  M'[k] = Z[k] @ U[k]^T     (P, O) @ (O, C)
        dW = G^T (sum over tiles of Z^T V) G                          (``winograd_weight_grad``)

    dx is the adjoint of the whole forward (``kernels/winograd4.py``): no transform of dy as an input and
    no flipped filters, against conv(dy, w') by the same algorithm.  Measured for F(4x4) per layer (dx and
    dW, batch 64, 2-core EPYC): 64->128 @16 1.30x, 128->128 @16 1.20x, 128->256 @8 1.23x, 256->256 @8
    1.16x, 64->64 @32 1.02x.
    """
    kernels, transforms = kernels_for(dy), WINOGRAD_TRANSFORMS[algorithm]
    z = getattr(kernels, transforms.grad_transform)(dy)                   # (K, P, O)
    u = transforms.filter_transform(w)                                    # (K, C, O)
    dx = getattr(kernels, transforms.input_adjoint)(matmul(z, u.transpose(0, 2, 1)), x_shape)
    return dx, workspace.hand_over(transforms.weight_transform(matmul(z.transpose(0, 2, 1), v)))


# ---- 'taps': maps of one 2x2 tile, 3x3 kernels, stride 1, padding 1 -----------------------------

def tap_block(w_rows, u, px, width, c):
    """Weight row u's taps for output column px: the (O, width*C) view that meets input row qy = py + u - 1.

    ``w_rows`` is the weight as (O, 3, 3*C), tap row u then columns (v, c).
    Input column qx meets output column px through tap v = qx - px + 1, so
    the input row's ``width`` pixels meet the contiguous columns
    v = 1 - px ... width - px of that tap row.
    """
    return w_rows[:, u, (1 - px) * c:(1 - px + width) * c]


def taps_forward(x, w, b=None):
    """y = conv(x, w) + b for an (N, C, H, W) input with H, W <= 2, stride 1 and padding 1.

    y[n, py, px] = sum over input rows qy of  x_row[n, qy] @ tap_block(u = qy - py + 1, px).T,
    x_row[n, qy] being row qy's W pixels of C channels, side by side.
    """
    n, c, h, width = x.shape
    o = w.shape[0]
    rows = to_nhwc(x).reshape(n, h, width * c)
    w_rows = weight_matrix(w).reshape(o, 3, 3 * c)
    y = workspace.empty((n, h, width, o), x.dtype, like=x)
    for py, px in itertools.product(range(h), range(width)):
        products = (matmul(rows[:, qy], tap_block(w_rows, qy - py + 1, px, width, c).T) for qy in range(h))
        y[:, py, px] = sum(products)
    if b is not None:
        add_bias(y, b)
    return to_nchw(y)


def taps_backward(dy, x, w, input_grad=True):
    """``(dx, dw, db)`` of ``taps_forward`` (dx None without ``input_grad``).

    dx row qy = sum over output pixels p of dy[:, p] @ tap_block(u = qy - py + 1, px);
    dW[:, u, v] = dY.T @ X over the pixel pairs (p, q = p + (u - 1, v - 1)) inside the map:
    one GEMM per tap, its rows the batch times those pairs.
    """
    n, c, h, width = x.shape
    o = w.shape[0]
    dy_nhwc, x_nhwc = to_nhwc(dy), to_nhwc(x)
    w_rows = weight_matrix(w).reshape(o, 3, 3 * c)
    dx = None
    if input_grad:
        dx = workspace.empty((n, h, width * c), dy.dtype, like=dy)
        for qy in range(h):
            pixels = itertools.product(range(h), range(width))
            dx[:, qy] = sum(matmul(dy_nhwc[:, py, px], tap_block(w_rows, qy - py + 1, px, width, c))
                            for py, px in pixels)
        dx = to_nchw(dx.reshape(n, h, width, c))
    dw = workspace.zeros((o, 3, 3, c), dy.dtype, like=dy)
    for u, v in itertools.product(range(3), range(3)):
        (out_rows, in_rows), (out_cols, in_cols) = tap_pairs(u - 1, h), tap_pairs(v - 1, width)
        if out_rows.start < out_rows.stop and out_cols.start < out_cols.stop:   # a pixel pair meets through (u, v)
            d = dy_nhwc[:, out_rows, out_cols].reshape(-1, o)
            xs = x_nhwc[:, in_rows, in_cols].reshape(-1, c)
            dw[:, u, v] = matmul(d.T, xs)
    return dx, workspace.hand_over(dw.transpose(0, 3, 1, 2)), kernels_for(dy).bias_grad(dy)


def tap_pairs(offset, size):
    """(output slice, input slice) along one axis of ``size`` pixels: the p with q = p + offset inside it."""
    start, stop = max(0, -offset), size - max(0, offset)
    return slice(start, stop), slice(start + offset, stop + offset)


# Columns larger than this are not kept for the backward but made again from the input there: at
# 224x224 they would hold about 850 MB per VGG-A step (9x the input of each layer), while making them
# again costs one im2col, a few percent of the layer's time.  Smaller ones (every layer at 32x32) are kept.
# The backward that makes them again goes a few images at a time, so that it too holds at most this
# much of columns (and as much of their gradient) at once; so does a Winograd weight gradient with its
# transformed input and output gradient.  Where these two fit at once, a Winograd forward keeps the
# transformed input for the backward instead of x (``keeps_input_transform``): for F(4x4), against making
# it again, 1.04x on whole steps of the default run, VGG-A and VGG-D at width 1 (32x32, batch 64, 2-core
# EPYC).
KEEP_COLUMNS_BYTES = 64 * 2 ** 20


def columns_bytes_per_image(x_shape, w_shape, stride, padding, itemsize):
    _, c, h, wd = x_shape
    _, _, kh, kw = w_shape
    return conv_output_size(h, kh, stride, padding) * conv_output_size(wd, kw, stride, padding) * kh * kw * c * itemsize


def winograd_bytes_per_image(x_shape, w_shape, itemsize, algorithm):
    """What a Winograd weight gradient holds per image: its transformed input V and output gradient Z."""
    _, c, h, wd = x_shape
    tile = WINOGRAD_TRANSFORMS[algorithm].tile
    return (tile + 2) ** 2 * -(-h // tile) * -(-wd // tile) * (c + w_shape[0]) * itemsize


def keeps_input_transform(x_shape, w_shape, itemsize, algorithm):
    """A Winograd forward keeps its input transform V for dW where the backward runs in one piece (V and
    the output gradient's transform within KEEP_COLUMNS_BYTES): its backward then makes no V again."""
    return x_shape[0] * winograd_bytes_per_image(x_shape, w_shape, itemsize, algorithm) <= KEEP_COLUMNS_BYTES


def images_per_chunk(n, bytes_per_image):
    """Images per chunk of a backward that holds at most KEEP_COLUMNS_BYTES at once, in chunks of (about)
    equal size."""
    chunks = -(-n * bytes_per_image // KEEP_COLUMNS_BYTES)
    return max(1, -(-n // chunks))


def backward_in_chunks(backward, dy, x, images_per_chunk, input_grad):
    """``backward(dy, x) -> (dx, dw, db)`` run on chunks of the batch: dx is put together, dW and db summed."""
    n, c, h, w = x.shape
    if images_per_chunk >= n:
        return backward(dy, x)
    dx_nhwc = workspace.empty((n, h, w, c), x.dtype, like=x) if input_grad else None
    dw = db = None
    for start in range(0, n, images_per_chunk):
        part = slice(start, start + images_per_chunk)
        part_dx, part_dw, part_db = backward(dy[part], x[part])
        if input_grad:
            dx_nhwc[part] = to_nhwc(part_dx)
        if dw is None:
            dw, db = part_dw, part_db
        else:
            dw += part_dw
            db += part_db
    return (to_nchw(dx_nhwc) if input_grad else None), dw, db


class Conv2d(Function):
    name = "conv2d"

    def forward(self, x, w, *bias, stride, padding):
        b = bias[0] if bias else None
        self.algorithm = choose_algorithm(x.shape, w.shape, stride, padding)
        self.input_grad = choose_algorithm(x.shape, w.shape, stride, padding, part="input_grad")
        self.x_shape, self.w, self.stride, self.padding = x.shape, w, stride, padding
        # the backward needs x unless the columns (or a Winograd forward's input transform) are kept
        self.x, self.cols, self.v = x, None, None
        if self.algorithm == "taps":
            return taps_forward(x, w, b)
        if self.algorithm in WINOGRAD_TRANSFORMS:
            v = winograd_input_transform(x, self.algorithm)
            if keeps_input_transform(x.shape, w.shape, x.dtype.itemsize, self.algorithm):
                self.x, self.v = None, v
            return winograd_forward(x, w, b, self.algorithm, v)
        y, cols = conv2d_forward(x, w, b, stride, padding)
        if cols.nbytes <= KEEP_COLUMNS_BYTES:
            self.x, self.cols = None, cols
        return y

    def backward(self, grad):
        input_grad = self.input_grad if self.inputs[0].requires_grad else None
        if self.algorithm == "taps":
            dx, dw, db = taps_backward(grad, self.x, self.w, input_grad is not None)
        elif self.v is not None:
            dx, dw, db = winograd_backward(grad, self.x_shape, self.v, self.w, self.algorithm, input_grad)
        elif self.algorithm in WINOGRAD_TRANSFORMS:
            per_image = winograd_bytes_per_image(self.x_shape, self.w.shape, self.x.dtype.itemsize, self.algorithm)
            dx, dw, db = backward_in_chunks(
                lambda dy, x: winograd_backward(dy, x.shape, winograd_input_transform(x, self.algorithm), self.w,
                                                self.algorithm, input_grad),
                grad, self.x, images_per_chunk(len(self.x), per_image), input_grad)
        elif self.cols is not None:
            dx, dw, db = conv2d_backward(grad, self.x_shape, self.cols, self.w, self.stride, self.padding,
                                         input_grad)
        else:
            per_image = columns_bytes_per_image(self.x_shape, self.w.shape, self.stride, self.padding,
                                                self.x.dtype.itemsize)
            dx, dw, db = backward_in_chunks(lambda dy, x: self.backward_from_input(dy, x, input_grad), grad,
                                            self.x, images_per_chunk(len(self.x), per_image), input_grad)
        return (dx, dw, db)[:len(self.inputs)]

    def backward_from_input(self, dy, x, input_grad):
        """``(dx, dw, db)`` for images ``x`` and their output gradient ``dy``, the columns made again."""
        kh, kw = self.w.shape[2:]
        cols = kernels_for(x).im2col(x, kh, kw, self.stride, self.padding)
        return conv2d_backward(dy, x.shape, cols, self.w, self.stride, self.padding, input_grad)


def conv2d(x, w, b=None, stride=1, padding=0):
    """Convolve NCHW ``x`` with weight ``w`` (O, C, kh, kw) and add bias ``b`` (O,)."""
    check_conv_args(x, w, b, stride, padding)
    inputs = (x, w) if b is None else (x, w, b)
    return Conv2d.apply(*inputs, stride=stride, padding=padding)


def check_conv_args(x, w, b, stride, padding):
    check_ndim("conv2d", "an input", x, 4, "(N, C, H, W)")
    check_ndim("conv2d", "a weight", w, 4, "(O, C, kh, kw)")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels but weight expects {w.shape[1]} "
                         f"(input shape {tuple(x.shape)}, weight shape {tuple(w.shape)})")
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise ValueError(f"conv2d: expected a bias of shape ({w.shape[0]},), got {tuple(b.shape)}")
    if not (isinstance(stride, int) and stride >= 1 and isinstance(padding, int) and padding >= 0):
        raise ValueError(f"conv2d: expected an integer stride >= 1 and padding >= 0, "
                         f"got stride={stride!r}, padding={padding!r}")
    padded = (x.shape[2] + 2 * padding, x.shape[3] + 2 * padding)
    if w.shape[2] > padded[0] or w.shape[3] > padded[1]:
        raise ValueError(f"conv2d: kernel {tuple(w.shape[2:])} is larger than the padded input {padded} "
                         f"(input shape {tuple(x.shape)}, padding {padding})")
