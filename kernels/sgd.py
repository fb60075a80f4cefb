"""The SGD update with momentum and weight decay, in place (the NumPy twin of sgd.cu).

    v <- momentum * v - lr * (g + weight_decay * p)
    p <- p + v

NumPy cannot fuse these into one pass as the CUDA kernel does, but with
``out=`` arguments it allocates nothing: the gradient, which is spent once
the step is taken, serves as scratch space and is overwritten.
"""
import numpy as np


def sgd_update(param, grad, velocity, lr, momentum, weight_decay):
    """Update ``param`` and ``velocity`` in place (``grad`` is used as scratch)."""
    dtype = param.dtype.type
    velocity *= dtype(momentum)
    grad *= dtype(-lr)
    velocity += grad                                       # momentum * v - lr * g
    np.multiply(param, dtype(-lr * weight_decay), out=grad)
    velocity += grad                                       # ... - lr * weight_decay * p
    param += velocity
