"""The dropout kernels, with a stateless, counter-based mask: the NumPy twins of dropout.cu.

The maths, y = x * mask / (1 - p), is stated in ``minivgg/functions/activation.py``.
The mask is not drawn from a random-number *generator* with a hidden state.
Each element's coin is a pure function of five integers,

    h = hash(seed, step, layer, sample, element)      (32-bit unsigned)
    keep  <=>  (h >> 8) >= round(p * 2**24)

where ``sample`` is the sample's index in the *whole* batch and ``element`` is
the element's index inside that sample (NCHW order).  So the same sample gets
the same mask whether the batch runs on one device or is split across four,
and the CUDA twin, evaluating the same formula with ``unsigned int``
arithmetic, produces the same mask bit for bit.

The hash chains a well-mixing 32-bit finaliser (xor-shift-multiply, the
constants of Chris Wellons' "lowbias32"): every input bit flips about half of
the output bits.
"""
import numpy as np

from . import launch
from .layout import array_module

MIX_1 = np.uint32(0x7FEB352D)
MIX_2 = np.uint32(0x846CA68B)


def mix32(h):
    """A bijective 32-bit mixing function on uint32 arrays (wraps modulo 2**32)."""
    h = h ^ (h >> np.uint32(16))
    h = h * MIX_1
    h = h ^ (h >> np.uint32(15))
    h = h * MIX_2
    return h ^ (h >> np.uint32(16))


def dropout_hash(seed, step, layer, sample, element):
    """hash(seed, step, layer, sample, element) as uint32; arguments broadcast."""
    with np.errstate(over="ignore"):  # NumPy *scalar* arithmetic warns when it wraps modulo 2**32
        h = mix32(np.uint32(seed))
        for key in (step, layer, sample, element):
            h = mix32(h ^ np.asarray(key, dtype=np.uint32))
    return h


def keep_threshold(p):
    """The integer that ``h >> 8`` must reach for an element to be kept."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: expected 0 <= p < 1, got p={p}")
    return np.uint32(round(p * 2 ** 24))


def dropout_mask(shape, p, seed, step, layer, sample_offset=0):
    """The boolean keep-mask for a batch of ``shape`` (N, ...)."""
    n = shape[0]
    per_sample = int(np.prod(shape[1:], dtype=np.int64))
    sample = np.arange(sample_offset, sample_offset + n, dtype=np.uint32)[:, None]
    element = np.arange(per_sample, dtype=np.uint32)[None, :]
    h = dropout_hash(seed, step, layer, sample, element)
    return ((h >> np.uint32(8)) >= keep_threshold(p)).reshape(shape)


def dropout_forward(x, p, seed, step, layer, sample_offset=0):
    """Returns ``(y, mask)`` with y = x * mask / (1 - p)."""
    mask = dropout_mask(x.shape, p, seed, step, layer, sample_offset)
    scale = x.dtype.type(1.0 / (1.0 - p))
    return x * mask * scale, mask


def dropout_backward(dy, mask, p):
    """dx = dy * mask / (1 - p)."""
    return dy * mask * dy.dtype.type(1.0 / (1.0 - p))


# ---- the CUDA twins (dropout.cu) -----------------------------------------------------

def dropout_forward_cuda(x, p, seed, step, layer, sample_offset=0):
    """dropout_forward on dropout.cu: each thread hashes its own element's coin."""
    xp = array_module(x)
    threshold = keep_threshold(p)
    x = xp.ascontiguousarray(x)      # the hash numbers elements in NCHW (C) order
    y = xp.empty_like(x)
    mask = xp.empty(x.shape, dtype=bool)
    per_sample = x.size // x.shape[0] if x.shape[0] else 1
    scale = x.dtype.type(1.0 / (1.0 - p))
    launch.run_elementwise("dropout_forward", x.dtype, x.size,
                           (x, y, mask, *launch.indices(x.size, per_sample),
                            np.uint32(seed), np.uint32(step), np.uint32(layer), np.uint32(sample_offset),
                            threshold, scale))
    return y, mask


def dropout_backward_cuda(dy, mask, p):
    """dropout_backward on dropout.cu."""
    xp = array_module(dy, mask)
    dy, mask = xp.ascontiguousarray(dy), xp.ascontiguousarray(mask, dtype=bool)
    dx = xp.empty_like(dy)
    launch.run_elementwise("dropout_backward", dy.dtype, dy.size,
                           (dy, mask, dx, *launch.indices(dy.size), dy.dtype.type(1.0 / (1.0 - p))))
    return dx
