"""Weight initialisation, in place, from a seeded ``numpy.random.Generator``.

The VGG paper (section 3.1) draws weights from N(0, 0.01**2) with zero
biases, and notes that Glorot & Bengio's initialisation would let the deep
nets train without the warm start from net A.  Glorot's uniform rule keeps
the variance of activations and gradients roughly constant across layers:

    w ~ U(-a, a),   a = sqrt(6 / (fan_in + fan_out))

with fan_in = in_channels * kh * kw and fan_out = out_channels * kh * kw.
"""
import numpy as np

from ..backend import move_array


def fans(shape):
    """(fan_in, fan_out) of a Linear (out, in) or Conv2d (out, in, kh, kw) weight."""
    receptive = int(np.prod(shape[2:], dtype=np.int64))
    return shape[1] * receptive, shape[0] * receptive


def fill(parameter, values):
    """Write ``values`` into ``parameter`` in place: its memory layout is kept."""
    parameter.data[...] = move_array(values.astype(parameter.dtype), parameter.device)


def normal_(parameter, std, rng):
    fill(parameter, rng.normal(0.0, std, size=parameter.shape))


def glorot_uniform_(parameter, rng):
    fan_in, fan_out = fans(parameter.shape)
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    fill(parameter, rng.uniform(-bound, bound, size=parameter.shape))


def zeros_(parameter):
    fill(parameter, np.zeros(parameter.shape))
