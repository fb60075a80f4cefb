"""ReLU and dropout, differentiable.

ReLU:     y = max(x, 0),                 dx = dy * [y > 0]
Dropout:  y = x * mask / (1 - p),        dx = dy * mask / (1 - p)

Inverted dropout keeps each element with probability 1 - p and scales the
kept ones by 1 / (1 - p), so the expected output equals the input and the
network needs no change at test time.  The mask is a pure function of
(seed, step, layer, global sample index, element index): see
``kernels/dropout.py``.  ``sample_offset`` is the global index of this
batch's first sample, so a shard of a split batch draws the same coins as
the whole batch would.
"""
import numbers

from ..autograd import Function, as_tensor
from ..kernels import kernels_for


class ReLU(Function):
    name = "relu"

    def forward(self, x):
        self.kernels = kernels_for(x)
        self.y = self.kernels.relu_forward(x)
        return self.y

    def backward(self, grad):
        return (self.kernels.relu_backward(grad, self.y),)


class Dropout(Function):
    name = "dropout"

    def forward(self, x, p, seed, step, layer, sample_offset):
        self.kernels, self.p = kernels_for(x), p
        y, self.mask = self.kernels.dropout_forward(x, p, seed, step, layer, sample_offset)
        return y

    def backward(self, grad):
        return (self.kernels.dropout_backward(grad, self.mask, self.p),)


def relu(x):
    """max(x, 0), element-wise."""
    return ReLU.apply(x)


def dropout(x, p=0.5, training=True, seed=0, step=0, layer=0, sample_offset=0):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p); identity when not training."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: expected 0 <= p < 1, got p={p}")
    for key, value in (("seed", seed), ("step", step), ("layer", layer), ("sample_offset", sample_offset)):
        if not (isinstance(value, numbers.Integral) and 0 <= value < 2 ** 32):
            raise ValueError(f"dropout: expected {key} to be an integer in [0, 2**32), got {value!r}")
    if not training or p == 0.0:
        return as_tensor(x)
    if as_tensor(x).ndim == 0:  # one sample of one element: the kernels count samples along axis 0
        return dropout(as_tensor(x).reshape(1), p, training, seed, step, layer, sample_offset).reshape(())
    return Dropout.apply(x, p=p, seed=seed, step=step, layer=layer, sample_offset=sample_offset)
