"""Moving between the public NCHW layout and the NHWC memory the kernels use."""
import numpy as np


def to_nhwc(x):
    """A C-contiguous NHWC array holding NCHW ``x``.

    Free (no copy) when ``x`` is already an NCHW view of NHWC memory, which is
    what every kernel returns.
    """
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def to_nchw(x_nhwc):
    """The NCHW view of NHWC ``x_nhwc`` (no copy)."""
    return x_nhwc.transpose(0, 3, 1, 2)
