"""Softmax cross-entropy over integer labels (the NumPy twin of loss.cu).

For logits z of shape (N, K) and labels t in {0..K-1},

    loss = (1/N) sum_n [ logsumexp(z_n) - z_n[t_n] ]
    logsumexp(z) = m + log sum_k exp(z_k - m),   m = max_k z_k

Subtracting the row maximum m keeps every exp() <= 1, so nothing overflows.
The gradient is the softmax minus the one-hot label, over N:

    dz[n, k] = (softmax(z_n)[k] - [k == t_n]) / N
"""
import numpy as np


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
