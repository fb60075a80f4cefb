"""The softmax cross-entropy kernels: the NumPy twins of loss.cu, then the CUDA launches.

The maths (log-sum-exp with the row maximum subtracted) is stated in
``minivgg/functions/loss.py``.  The CUDA twin gives each row one block and
reduces its maximum and its sum in shared memory.
"""
import numpy as np

from . import launch
from .layout import array_module


def softmax(z):
    """Row-wise softmax, stable."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy_forward(z, labels):
    """Returns ``(loss, probs)``: the mean loss (0-d array) and the softmax."""
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    sum_e = e.sum(axis=1, keepdims=True)
    log_sum_exp = m[:, 0] + np.log(sum_e[:, 0])
    picked = z[np.arange(z.shape[0]), labels]
    loss = (log_sum_exp - picked).mean()
    return np.asarray(loss, dtype=z.dtype), e / sum_e


def softmax_cross_entropy_backward(probs, labels, dloss=1.0):
    """dz = dloss * (probs - onehot(labels)) / N."""
    n = probs.shape[0]
    dz = probs.copy()
    dz[np.arange(n), labels] -= 1
    dz *= probs.dtype.type(dloss / n)
    return dz


# ---- the CUDA twins (loss.cu) ----------------------------------------------------------

def reduction_block(k):
    """Threads for one row of k values: a power of two, at most launch.BLOCK."""
    threads = 1
    while threads < min(k, launch.BLOCK):
        threads *= 2
    return threads


def softmax_cross_entropy_forward_cuda(z, labels):
    """softmax_cross_entropy_forward on loss.cu: one block per row, reductions in shared memory."""
    xp = array_module(z, labels)
    z = xp.ascontiguousarray(z)
    labels = xp.ascontiguousarray(labels, dtype=np.int64)
    n, k = z.shape
    probs = xp.empty_like(z)
    row_loss = xp.empty(n, dtype=z.dtype)
    threads = reduction_block(k)
    launch.run("softmax_cross_entropy_forward", z.dtype, (n,), (threads,),
               (z, labels, probs, row_loss, *launch.indices(k)), shared_bytes=threads * z.dtype.itemsize)
    return xp.asarray(row_loss.mean(), dtype=z.dtype), probs


def softmax_cross_entropy_backward_cuda(probs, labels, dloss=1.0):
    """softmax_cross_entropy_backward on loss.cu."""
    xp = array_module(probs, labels)
    probs = xp.ascontiguousarray(probs)
    labels = xp.ascontiguousarray(labels, dtype=np.int64)
    n, k = probs.shape
    dz = xp.empty_like(probs)
    launch.run_elementwise("softmax_cross_entropy_backward", probs.dtype, probs.size,
                           (probs, labels, dz, *launch.indices(probs.size, k), probs.dtype.type(float(dloss) / n)))
    return dz
