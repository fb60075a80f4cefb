"""Composite Hypothesis strategies shared by the operator tests.

Every strategy draws a whole *case* for one operation: consistent shapes,
hyper-parameters and float64 values.  Shapes stay small (batch 1-3, channels
1-4, maps up to about 6x6, including odd sizes and 1x1 maps) because the
gradient checks run two forwards per input element.  Tests cast to float32
themselves where they compare precisions.

``memory_layouts`` / ``in_layout`` give the same logical NCHW array stored in
different memory orders, for the tests of the kernels' NHWC-memory trick.
"""
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

batches = st.integers(1, 3)
channels = st.integers(1, 4)
strides = st.integers(1, 3)
paddings = st.integers(0, 2)
kernel_sizes = st.integers(1, 3)


def values(shape, low=-2.0, high=2.0):
    """float64 arrays of ``shape`` with elements in [low, high] (zeros and repeats included)."""
    return arrays(np.float64, shape, elements=st.floats(low, high, allow_nan=False, allow_infinity=False))


def away_from_zero(shape, margin=1e-3, high=2.0):
    """float64 arrays whose elements satisfy margin < |x| <= high (for ReLU's kink at 0)."""
    magnitude = st.floats(margin * 1.01, high)
    element = st.tuples(st.sampled_from([-1.0, 1.0]), magnitude).map(lambda sm: sm[0] * sm[1])
    return arrays(np.float64, shape, elements=element)


@st.composite
def distinct_values(draw, shape, spacing=0.1):
    """float64 arrays of ``shape`` without ties: a random permutation of evenly spaced values.

    Max-pooling needs this: with a tie the numerical gradient is not defined.
    ``spacing`` is far larger than gradcheck's step, so no step flips a winner.
    """
    size = int(np.prod(shape))
    order = np.array(draw(st.permutations(range(size))), dtype=np.float64)
    return ((order - size / 2) * spacing).reshape(shape)


@st.composite
def nchw_shapes(draw, max_side=5):
    """(N, C, H, W) with N 1-3, C 1-4, H and W 1..max_side (1x1 maps and odd sizes included)."""
    return (draw(batches), draw(channels), draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))


@dataclass
class ConvCase:
    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    stride: int
    padding: int


@st.composite
def conv_cases(draw, bias=st.booleans(), max_side=6):
    """A convolution: NCHW input, (O, C, kh, kw) weight, optional bias, stride 1-3, padding 0-2.

    About one case in six is VGG's fully connected layer written as a
    convolution: a 7x7 kernel with padding 0 on a 7x7 input (a 1x1 output).
    """
    n, c, o = draw(batches), draw(channels), draw(channels)
    if draw(st.integers(0, 5)) == 5:
        kh = kw = h = w = 7
        stride, padding = 1, 0
    else:
        kh, kw = draw(kernel_sizes), draw(kernel_sizes)
        stride, padding = draw(strides), draw(paddings)
        # the padded input must hold one window
        h = draw(st.integers(max(1, kh - 2 * padding), max_side))
        w = draw(st.integers(max(1, kw - 2 * padding), max_side))
    return ConvCase(
        x=draw(values((n, c, h, w))),
        w=draw(values((o, c, kh, kw))),
        b=draw(values((o,))) if draw(bias) else None,
        stride=stride,
        padding=padding,
    )


@dataclass
class PoolCase:
    x: np.ndarray
    kernel_size: int
    stride: int


@st.composite
def pool_cases(draw, max_side=6):
    """Max-pooling with kernel 1-3 and stride 1-3 (stride < kernel: overlapping windows), tie-free input."""
    kernel_size, stride = draw(kernel_sizes), draw(strides)
    shape = (draw(batches), draw(channels), draw(st.integers(kernel_size, max_side)),
             draw(st.integers(kernel_size, max_side)))
    return PoolCase(x=draw(distinct_values(shape)), kernel_size=kernel_size, stride=stride)


@dataclass
class LRNCase:
    x: np.ndarray
    size: int
    alpha: float
    beta: float
    k: float


@st.composite
def lrn_cases(draw):
    """LRN with window size 1-7 (even sizes included) over 1-7 channels, alpha, beta and k drawn.

    alpha reaches 1 so that the normalisation (and its gradient term) is far from negligible.
    """
    size = draw(st.integers(1, 7))
    shape = (draw(batches), draw(st.integers(1, 7)), draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return LRNCase(
        x=draw(values(shape)),
        size=size,
        alpha=draw(st.sampled_from([1e-4, 0.01]) | st.floats(1e-3, 1.0)),
        beta=draw(st.sampled_from([0.75]) | st.floats(0.25, 1.5)),
        k=draw(st.sampled_from([2.0, 1.0]) | st.floats(0.5, 3.0)),
    )


@dataclass
class LinearCase:
    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None


@st.composite
def linear_cases(draw, bias=st.booleans()):
    """x (N, in), w (out, in), optional b (out,): N 1-3, in 1-6, out 1-5."""
    n, fan_in, fan_out = draw(batches), draw(st.integers(1, 6)), draw(st.integers(1, 5))
    return LinearCase(x=draw(values((n, fan_in))), w=draw(values((fan_out, fan_in))),
                      b=draw(values((fan_out,))) if draw(bias) else None)


@dataclass
class LossCase:
    logits: np.ndarray
    labels: np.ndarray


@st.composite
def loss_cases(draw, low=-5.0, high=5.0):
    """Logits (N, K) and integer labels (N,) in [0, K): N 1-4, K 1-6."""
    n, classes = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    labels = np.array(draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)), dtype=np.int64)
    return LossCase(logits=draw(values((n, classes), low, high)), labels=labels)


@dataclass
class DropoutCase:
    x: np.ndarray
    p: float
    seed: int
    step: int
    layer: int
    sample_offset: int


uint32s = st.integers(0, 2 ** 32 - 1)


@st.composite
def dropout_cases(draw):
    """Dropout on NCHW maps or (N, features) rows (N 1-4), p in [0, 0.95], any 32-bit seed/step/layer."""
    n = draw(st.integers(1, 4))
    if draw(st.booleans()):
        shape = (n, draw(channels), draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    else:
        shape = (n, draw(st.integers(1, 12)))
    return DropoutCase(
        x=draw(values(shape)),
        p=draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]) | st.floats(0.0, 0.95)),
        seed=draw(uint32s),
        step=draw(uint32s),
        layer=draw(st.integers(0, 20) | uint32s),
        sample_offset=draw(st.integers(0, 1000) | st.integers(0, 2 ** 32 - 1 - n)),
    )


# --- memory layouts ------------------------------------------------------------------------------

LAYOUTS = ("nchw", "nhwc_view", "chwn_view", "fortran", "strided")
memory_layouts = st.sampled_from(LAYOUTS)


def in_layout(x, layout):
    """The same logical NCHW array ``x``, held in memory in another order.

    nchw: C-contiguous NCHW.  nhwc_view: an NCHW view of NHWC memory (what the
    kernels return).  chwn_view: a view of (C, H, W, N) memory.  fortran:
    F-contiguous.  strided: every other element of a larger array.
    """
    if layout == "nchw":
        return np.ascontiguousarray(x)
    if layout == "nhwc_view":
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if layout == "chwn_view":
        return np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    if layout == "fortran":
        return np.asfortranarray(x)
    if layout == "strided":
        big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
        big[..., ::2] = x
        return big[..., ::2]
    raise ValueError(f"in_layout: unknown layout {layout!r}")
