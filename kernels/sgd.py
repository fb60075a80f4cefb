"""SGD with momentum and weight decay (the NumPy twin of sgd.cu).

The paper trains with mini-batch gradient descent, momentum 0.9 and an L2
penalty (weight decay) of 5e-4.  One step, for a parameter p with gradient g
and velocity v:

    v = momentum * v - lr * (g + weight_decay * p)
    p = p + v

Both arrays are updated in place.  The CUDA twin does it in one pass with one
thread per element; here the same arithmetic runs over blocks of
``BLOCK_ELEMENTS`` elements with one small scratch buffer, so no full-size
temporary array is ever allocated (a 102-million-weight fc6 layer would need
400 MB for each).
"""
import numpy as np

BLOCK_ELEMENTS = 1 << 16


def check_sgd_arrays(param, grad, velocity):
    """Raise unless the three arrays share shape and dtype and are C-contiguous."""
    for name, array in (("grad", grad), ("velocity", velocity)):
        if array.shape != param.shape or array.dtype != param.dtype:
            raise ValueError(
                f"sgd_update: {name} has shape {array.shape} and dtype {array.dtype}, "
                f"but param has shape {param.shape} and dtype {param.dtype}")
    for name, array in (("param", param), ("grad", grad), ("velocity", velocity)):
        if not array.flags.c_contiguous:
            raise ValueError(f"sgd_update: {name} must be C-contiguous (strides {array.strides})")


def sgd_update(param, grad, velocity, lr, momentum, weight_decay):
    """One SGD step on ``param`` and ``velocity``, in place; returns None."""
    check_sgd_arrays(param, grad, velocity)
    p, g, v = param.reshape(-1), grad.reshape(-1), velocity.reshape(-1)
    scratch = np.empty(min(p.size, BLOCK_ELEMENTS), dtype=p.dtype)
    lr, momentum, weight_decay = (p.dtype.type(s) for s in (lr, momentum, weight_decay))
    for start in range(0, p.size, BLOCK_ELEMENTS):
        block = slice(start, start + BLOCK_ELEMENTS)
        pb, gb, vb = p[block], g[block], v[block]
        step = scratch[:pb.size]
        np.multiply(pb, weight_decay, out=step)   # wd * p
        np.add(step, gb, out=step)                # g + wd * p
        np.multiply(step, lr, out=step)           # lr * (g + wd * p)
        np.multiply(vb, momentum, out=vb)         # momentum * v
        np.subtract(vb, step, out=vb)             # v = momentum * v - lr * (g + wd * p)
        np.add(pb, vb, out=pb)                    # p += v
