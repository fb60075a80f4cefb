"""Floor 3: the layers of a VGG network, each a thin Module around one function of ``F``.

Every layer also knows, without running, the shape it outputs and the
forward FLOPs it costs (a multiply-add counts as two), which is what
``minivgg.summary`` prints.
"""
import numbers

import numpy as np

from .. import functional as F
from .init import glorot_uniform_
from .module import Module, Parameter


class Conv2d(Module):
    """A 2-d convolution; weight (out, in, k, k), PyTorch's layout.

    The weight's memory is (out, k, k, in), the order of im2col's columns, and
    ``weight`` is the (out, in, k, k) view of it: the convolution's GEMMs read
    it and its gradient comes out in it, so neither is copied at every step.
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=0, bias=True,
                 rng=None, dtype=np.float32, initialise=True):
        super().__init__()
        self.stride, self.padding = stride, padding
        weight = np.zeros((out_channels, kernel_size, kernel_size, in_channels), dtype)
        self.weight = Parameter(weight.transpose(0, 3, 1, 2))
        self.bias = Parameter(np.zeros(out_channels, dtype)) if bias else None
        if initialise:
            glorot_uniform_(self.weight, rng or np.random.default_rng())

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def output_shape(self, shape):
        n, _, h, w = shape
        k = self.weight.shape[2]
        return (n, self.weight.shape[0], (h + 2 * self.padding - k) // self.stride + 1,
                (w + 2 * self.padding - k) // self.stride + 1)

    def flops(self, shape):
        n, out, h, w = self.output_shape(shape)
        return 2 * n * h * w * int(np.prod(self.weight.shape))

    def __repr__(self):
        o, i, k, _ = self.weight.shape
        return f"Conv2d({i}, {o}, kernel_size={k}, stride={self.stride}, padding={self.padding})"


class Linear(Module):
    """y = x @ weight.T + bias; weight (out, in), PyTorch's layout."""

    def __init__(self, in_features, out_features, bias=True, rng=None, dtype=np.float32, initialise=True):
        super().__init__()
        self.weight = Parameter(np.zeros((out_features, in_features), dtype))
        self.bias = Parameter(np.zeros(out_features, dtype)) if bias else None
        if initialise:
            glorot_uniform_(self.weight, rng or np.random.default_rng())

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def output_shape(self, shape):
        return (shape[0], self.weight.shape[0])

    def flops(self, shape):
        return 2 * shape[0] * int(np.prod(self.weight.shape))

    def __repr__(self):
        return f"Linear({self.weight.shape[1]}, {self.weight.shape[0]})"


class ShapePreserving(Module):
    """A layer without parameters whose output has its input's shape."""

    def output_shape(self, shape):
        return tuple(shape)

    def flops(self, shape):
        return 0


class ReLU(ShapePreserving):
    def forward(self, x):
        return F.relu(x)


class Dropout(ShapePreserving):
    """Inverted dropout whose mask is a hash of (seed, step, layer, sample, element).

    ``layer`` tells the dropout layers of one network apart.  The trainer
    sets ``seed``, ``step`` and ``sample_offset`` (the global index of the
    batch's first sample) through ``set_dropout_state``.
    """

    def __init__(self, p=0.5, layer=0):
        super().__init__()
        self.p, self.layer = p, layer
        self.seed, self.step, self.sample_offset = 0, 0, 0

    def forward(self, x):
        return F.dropout(x, self.p, self.training, self.seed, self.step, self.layer, self.sample_offset)

    def __repr__(self):
        return f"Dropout(p={self.p}, layer={self.layer})"


def set_dropout_state(model, seed=None, step=None, sample_offset=None):
    """Set the randomness keys of every Dropout layer in ``model`` (None leaves a key as it is)."""
    for module in model.modules():
        if isinstance(module, Dropout):
            for key, value in (("seed", seed), ("step", step), ("sample_offset", sample_offset)):
                if value is not None:
                    setattr(module, key, int(value))


class LocalResponseNorm(ShapePreserving):
    """Krizhevsky et al.'s normalisation across channels (net A-LRN)."""

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def flops(self, shape):
        return 2 * (self.size + 3) * int(np.prod(shape))

    def __repr__(self):
        return f"LocalResponseNorm(size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k})"


class MaxPool2d(Module):
    def __init__(self, kernel_size=2, stride=None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride or kernel_size

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def output_shape(self, shape):
        n, c, h, w = shape
        k, s = self.kernel_size, self.stride
        return (n, c, (h - k) // s + 1, (w - k) // s + 1)

    def flops(self, shape):
        return 0

    def __repr__(self):
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride})"


class Flatten(Module):
    def forward(self, x):
        return F.flatten(x)

    def output_shape(self, shape):
        return (shape[0], int(np.prod(shape[1:])))

    def flops(self, shape):
        return 0


class Sequential(Module):
    """Layers applied one after the other; children are named '0', '1', ..."""

    def __init__(self, *layers):
        super().__init__()
        for index, layer in enumerate(layers):
            setattr(self, str(index), layer)

    def __iter__(self):
        return iter(self._modules.values())

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, index):
        """The layer at ``index`` (negative counts from the end), or a new Sequential of a slice's layers."""
        if isinstance(index, slice):
            return Sequential(*list(self._modules.values())[index])
        return self._modules[self._name_at(index)]

    def __setitem__(self, index, layer):
        """Replace the layer at ``index``; the new one takes the old one's name and place."""
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential: a layer must be a Module, got {type(layer).__name__}")
        setattr(self, self._name_at(index), layer)

    def _name_at(self, index):
        names = list(self._modules)
        if not isinstance(index, numbers.Integral) or not -len(names) <= index < len(names):
            raise IndexError(f"Sequential: expected an integer index in {-len(names)}..{len(names) - 1} "
                             f"or a slice, got {index!r}")
        return names[index]

    def forward(self, x):
        for layer in self:
            x = layer(x)
        return x

    def output_shape(self, shape):
        for layer in self:
            shape = layer.output_shape(shape)
        return shape

    def flops(self, shape):
        total = 0
        for layer in self:
            total += layer.flops(shape)
            shape = layer.output_shape(shape)
        return total
