"""minivgg: a from-scratch deep-learning engine that reproduces the VGG paper.

Floors, from the bottom: ``backend`` (NumPy or CuPy), ``kernels``
(hand-written, arrays in and out), ``autograd`` and ``functional`` (the
differentiable operations), then layers, models, training and evaluation.

``import minivgg`` loads only the floors up to the layers; the upper ones
(``minivgg.models``, ``.data``, ``.optim``, ``.train``, ``.evaluate``, ...)
are imported the first time they are used, so a low floor still imports
without the ones above it.
"""
import importlib

from . import functional, nn
from .autograd import Function, Tensor, no_grad
from .gradcheck import GradcheckError, gradcheck
from .summary import summary

LAZY_MODULES = ("data", "evaluate", "kernels", "metrics", "models", "optim", "parallel", "train")

__all__ = ["Function", "GradcheckError", "Tensor", "functional", "gradcheck", "nn", "no_grad", "summary",
           *LAZY_MODULES]
__version__ = "0.1.0"


def __getattr__(name):
    """Import an upper floor on first use: ``minivgg.models.vgg("A")`` works after ``import minivgg``."""
    if name in LAZY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'minivgg' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(LAZY_MODULES))
