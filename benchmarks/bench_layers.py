"""The random convolution layers that the kernel benchmarks time, built one way for all of them."""
import numpy as np

from minivgg.functions.conv import conv2d_forward


def nhwc_view(a):
    """``a`` (NCHW) as an NCHW view of NHWC memory, as the kernels hand activations on."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def random_conv_layer(rng, batch, c, o, side, first):
    """``(x, w, b, y, cols, dy)`` of a 3x3, padding-1 convolution C -> O at side x side, float32.

    ``first``: x is a C-contiguous image batch, as at a network's input; otherwise
    it is an NCHW view of NHWC memory, as every later activation is.
    """
    x = rng.standard_normal((batch, c, side, side)).astype(np.float32)
    x = x if first else nhwc_view(x)
    w = (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    y, cols = conv2d_forward(x, w, b, 1, 1)
    dy = nhwc_view(rng.standard_normal(y.shape).astype(np.float32))
    return x, w, b, y, cols, dy
