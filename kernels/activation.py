"""The ReLU kernels: the NumPy twins of activation.cu, then the CUDA launches.

The maths is stated in ``minivgg/functions/activation.py``.  Element-wise
kernels keep the memory layout of their input (``out`` arrays are allocated
with ``np.empty_like``, which copies the strides' order, or with
``empty_with_layout``), so an NCHW view of NHWC memory stays one.
"""
import numpy as np

from . import launch, shards, workspace
from .layout import check_same_dtype, dense, empty_with_layout, with_layout


def relu_forward(x):
    """y = max(x, 0)."""
    y = workspace.empty_like(x)
    shards.over_batch(lambda start, stop: np.maximum(x[start:stop], 0, out=y[start:stop]), len(x), x.size)
    return y


def relu_backward(dy, y):
    """dx = dy where the output was positive, else 0.

    The mask and dx are laid out in memory like y (NHWC memory behind an NCHW
    view, inside a network): a ufunc whose output walks memory in another
    order than its inputs runs about ten times slower.
    """
    dx, positive = workspace.empty_like(y, dy.dtype), workspace.empty_like(y, bool)

    def mask(start, stop):
        np.multiply(dy[start:stop], np.greater(y[start:stop], 0, out=positive[start:stop]), out=dx[start:stop])
    shards.over_batch(mask, len(y), y.size)
    return dx


# ---- the CUDA twins (activation.cu) --------------------------------------------------

def relu_forward_cuda(x):
    """relu_forward on activation.cu, in the memory layout of ``x``."""
    x = dense(x)
    y = empty_with_layout(x)
    launch.run_elementwise("relu_forward", x.dtype, x.size, (x, y, *launch.indices(x.size)))
    return y


def relu_backward_cuda(dy, y):
    """relu_backward on activation.cu."""
    check_same_dtype("relu_backward", dy, y)
    y = dense(y)
    dy = with_layout(dy, y)
    dx = empty_with_layout(y)
    launch.run_elementwise("relu_backward", y.dtype, y.size, (dy, y, dx, *launch.indices(y.size)))
    return dx
