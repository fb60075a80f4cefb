"""The SGD update with momentum and weight decay, in place (the NumPy twin of sgd.cu).

    v <- momentum * v - lr * g - lr * weight_decay * p
    p <- p + v

Both twins update ``param`` and ``velocity`` in place and only read ``grad``.
The CUDA kernel does it in one pass over memory.  NumPy cannot fuse the five
operations, so the NumPy twin walks the arrays in chunks that fit in the CPU
cache: each chunk is read from memory once, its five operations run on the
cached copy, and one small scratch buffer per thread serves every chunk.  A
large parameter is split between the shard threads (``kernels/shards.py``):
each walks its own range of chunks, which are the same chunks, updated alike.
"""
import numpy as np

from . import launch, shards
from .layout import flat_memory, is_dense, same_layout, with_layout

# Elements per chunk: param, grad, velocity and scratch, 1 MiB in float32, stay in a core's L2 cache.  And
# the size from which the threads share a parameter: below 16 chunks each thread's share is too short to
# pay for its start.  Measured (2 cores, AVX-512 EPYC, 1 MiB L2 each; float32, medians of 25): one thread
# against two at 2^18 elements 0.84x, 2^20 1.30x, 2^22 1.52x, 2^24 (VGG's 4096x4096 FC weight) 1.48x;
# chunks of 16384 were 1.04-1.10x slower than 65536 in one thread, and in two threads they lost their gain.
CHUNK = 65536
SHARED_FROM = 16 * CHUNK


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
    chunks = -(-p.size // CHUNK)

    def update_chunks(first, stop):
        scratch = np.empty(min(CHUNK, p.size), dtype=p.dtype)
        for start in range(first * CHUNK, min(stop * CHUNK, p.size), CHUNK):
            chunk = slice(start, start + CHUNK)
            pc, vc, s = p[chunk], v[chunk], scratch[:min(CHUNK, p.size - start)]
            vc *= momentum
            vc += np.multiply(g[chunk], neg_lr, out=s)          # momentum * v - lr * g
            vc += np.multiply(pc, neg_lr_decay, out=s)          # ... - lr * weight_decay * p
            pc += vc
    if p.size >= SHARED_FROM:
        shards.over_batch(update_chunks, chunks, p.size)
    else:
        update_chunks(0, chunks)


def sgd_update_cuda(param, grad, velocity, lr, momentum, weight_decay):
    """sgd_update on sgd.cu, one fused pass; returns None."""
    check_sgd_arrays(param, grad, velocity)
    launch.run_elementwise("sgd_update", param.dtype, param.size,
                           (param, with_layout(grad, param), velocity, *launch.indices(param.size),
                            *sgd_factors(param, lr, momentum, weight_decay)))
