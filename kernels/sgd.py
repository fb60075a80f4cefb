"""The SGD update with momentum and weight decay, in place (the NumPy twin of sgd.cu).

    v <- momentum * v - lr * g - lr * weight_decay * p
    p <- p + v

Both twins update ``param`` and ``velocity`` in place and only read ``grad``.
The CUDA kernel does it in one pass over memory.  NumPy cannot fuse the five
operations, so the NumPy twin walks the arrays in chunks that fit in the CPU
cache: each chunk is read from memory once, its five operations run on the
cached copy, and one small scratch buffer serves every chunk.
"""
import numpy as np

from . import launch
from .layout import flat_memory, is_dense, same_layout, with_layout

CHUNK = 16384  # elements per chunk: param, grad, velocity and scratch stay in a 256 KiB L2 cache


def sgd_factors(param, lr, momentum, weight_decay):
    """``(momentum, -lr, -lr * weight_decay)`` in the parameters' dtype, as both twins use them."""
    t = param.dtype.type
    return t(momentum), t(-lr), t(-lr * weight_decay)


def check_sgd_arrays(param, grad, velocity):
    """Raise unless the three arrays match and param and velocity can be updated in place."""
    for name, array in (("grad", grad), ("velocity", velocity)):
        if array.shape != param.shape or array.dtype != param.dtype:
            raise ValueError(f"sgd_update: {name} has shape {array.shape} and dtype {array.dtype}, "
                             f"but param has shape {param.shape} and dtype {param.dtype}")
    if not is_dense(param) or not same_layout(velocity, param):
        raise ValueError(f"sgd_update: param and velocity are updated in place, so they must be dense "
                         f"with the same strides, got {param.strides} and {velocity.strides}")


def sgd_update(param, grad, velocity, lr, momentum, weight_decay):
    """Update ``param`` and ``velocity`` in place, chunk by chunk; returns None."""
    check_sgd_arrays(param, grad, velocity)
    momentum, neg_lr, neg_lr_decay = sgd_factors(param, lr, momentum, weight_decay)
    p, g, v = (flat_memory(a) for a in (param, with_layout(grad, param), velocity))
    scratch = np.empty(min(CHUNK, p.size), dtype=p.dtype)
    for start in range(0, p.size, CHUNK):
        chunk = slice(start, start + CHUNK)
        pc, vc, s = p[chunk], v[chunk], scratch[:min(CHUNK, p.size - start)]
        vc *= momentum
        vc += np.multiply(g[chunk], neg_lr, out=s)          # momentum * v - lr * g
        vc += np.multiply(pc, neg_lr_decay, out=s)          # ... - lr * weight_decay * p
        pc += vc


def sgd_update_cuda(param, grad, velocity, lr, momentum, weight_decay):
    """sgd_update on sgd.cu, one fused pass; returns None."""
    check_sgd_arrays(param, grad, velocity)
    launch.run_elementwise("sgd_update", param.dtype, param.size,
                           (param, with_layout(grad, param), velocity, *launch.indices(param.size),
                            *sgd_factors(param, lr, momentum, weight_decay)))
