"""Floor 2: the differentiable operations, used as ``minivgg.functional`` (``F``).

Public layout is NCHW with PyTorch's weight layout, so weights interchange.
Each file pairs a forward kernel with its backward and states the maths.
"""
from .activation import dropout, relu
from .conv import conv2d
from .linear import linear
from .loss import softmax_cross_entropy
from .lrn import local_response_norm
from .pool import max_pool2d
from .shape import flatten

__all__ = ["conv2d", "dropout", "flatten", "linear", "local_response_norm", "max_pool2d", "relu",
           "softmax_cross_entropy"]
