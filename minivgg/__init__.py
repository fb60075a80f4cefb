"""minivgg: a from-scratch deep-learning engine that reproduces the VGG paper.

Floors, from the bottom: ``backend`` (NumPy or CuPy), ``kernels``
(hand-written, arrays in and out), ``autograd`` and ``functional`` (the
differentiable operations), then layers, models, training and evaluation.
"""
from . import functional, nn
from .autograd import Tensor, no_grad
from .gradcheck import GradcheckError, gradcheck
from .summary import summary

__all__ = ["GradcheckError", "Tensor", "functional", "gradcheck", "nn", "no_grad", "summary"]
__version__ = "0.1.0"
