"""Softmax cross-entropy over integer labels, differentiable.

For logits z of shape (N, K) and labels t in {0..K-1},

    loss = (1/N) sum_n [ logsumexp(z_n) - z_n[t_n] ]
    logsumexp(z) = m + log sum_k exp(z_k - m),   m = max_k z_k

Subtracting the row maximum m keeps every exp() <= 1, so nothing overflows.
The gradient is the softmax minus the one-hot label, over N:

    dz[n, k] = (softmax(z_n)[k] - [k == t_n]) / N
"""
import numpy as np

from ..autograd import Function, Tensor
from ..backend import device_of, get_array_module, move_array
from ..kernels import kernels_for
from .checks import check_ndim


class SoftmaxCrossEntropy(Function):
    name = "softmax_cross_entropy"

    def forward(self, logits, labels):
        self.kernels, self.labels = kernels_for(logits), labels
        loss, self.probs = self.kernels.softmax_cross_entropy_forward(logits, labels)
        return loss

    def backward(self, grad):
        # ``grad`` (0-d) multiplies on its own device: passing it as the kernel's dloss would read it
        # back to the host on a GPU.  Exact for loss.backward(), where it is 1.
        return (self.kernels.softmax_cross_entropy_backward(self.probs, self.labels) * grad,)


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of the softmax of ``logits`` (N, K) against integer ``labels`` (N,).

    ``labels`` may be on the host (they are copied to the logits' device) or
    on the logits' device.
    """
    check_ndim("softmax_cross_entropy", "logits", logits, 2, "(N, classes)")
    labels = labels.data if isinstance(labels, Tensor) else labels
    labels = labels_for(logits.data if isinstance(logits, Tensor) else logits, labels)
    return SoftmaxCrossEntropy.apply(logits, labels=labels)


def labels_for(logits, labels):
    """``labels`` checked against the (N, K) array ``logits`` and put on its device.

    Labels on the host are checked there, before the copy, so that a training
    step on the GPU reads nothing back for them; labels already on the device
    cost one read (their smallest and largest value).
    """
    if get_array_module(labels) is np:
        labels = np.asarray(labels)
    n, classes = logits.shape
    if labels.dtype.kind not in "iu":
        raise TypeError(f"softmax_cross_entropy: expected integer labels, got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"softmax_cross_entropy: expected labels of shape ({n},) for logits of shape "
                         f"{tuple(logits.shape)}, got {tuple(labels.shape)}")
    where, labels_where = device_of(logits), device_of(labels)
    if labels_where not in ("cpu", where):
        raise TypeError(f"softmax_cross_entropy: the logits are on {where} but the labels on {labels_where}")
    if n == 0:
        raise ValueError(f"softmax_cross_entropy: the mean loss of an empty batch is undefined; expected at least "
                         f"one sample, got logits of shape {tuple(logits.shape)}")
    xp = get_array_module(labels)
    low, high = move_array(xp.stack([labels.min(), labels.max()]), "cpu").tolist()
    if low < 0 or high >= classes:
        raise ValueError(f"softmax_cross_entropy: labels must lie in [0, {classes}), "
                         f"got values from {low} to {high}")
    return move_array(labels, where)
