"""Softmax cross-entropy over integer labels, differentiable.

    loss = (1/N) sum_n [ log sum_k exp(z[n, k]) - z[n, t_n] ]
    dz   = (softmax(z) - onehot(t)) / N

computed stably by subtracting each row's maximum before exp (log-sum-exp).
"""
from ..autograd import Function, Tensor
from ..backend import get_array_module
from ._dispatch import check_ndim, kernels_for


class SoftmaxCrossEntropy(Function):
    name = "softmax_cross_entropy"

    def forward(self, logits, labels):
        self.kernels, self.labels = kernels_for(logits), labels
        loss, self.probs = self.kernels.softmax_cross_entropy_forward(logits, labels)
        return loss

    def backward(self, grad):
        return (self.kernels.softmax_cross_entropy_backward(self.probs, self.labels, grad),)


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of the softmax of ``logits`` (N, K) against integer ``labels`` (N,)."""
    check_ndim("softmax_cross_entropy", "logits", logits, 2, "(N, classes)")
    labels = labels.data if isinstance(labels, Tensor) else labels
    xp = get_array_module(logits.data if isinstance(logits, Tensor) else logits)
    labels = xp.asarray(labels)
    n, classes = logits.shape
    if labels.dtype.kind not in "iu":
        raise TypeError(f"softmax_cross_entropy: expected integer labels, got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"softmax_cross_entropy: expected labels of shape ({n},) for logits of shape "
                         f"{tuple(logits.shape)}, got {tuple(labels.shape)}")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise ValueError(f"softmax_cross_entropy: labels must lie in [0, {classes}), "
                         f"got values from {int(labels.min())} to {int(labels.max())}")
    return SoftmaxCrossEntropy.apply(logits, labels=labels)
