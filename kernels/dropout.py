"""Dropout with a stateless, counter-based mask (the NumPy twin of dropout.cu).

Inverted dropout keeps each element with probability 1 - p and scales the
kept ones by 1 / (1 - p), so the expected output equals the input and the
network needs no change at test time:

    y = x * mask / (1 - p),     mask in {0, 1}

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
