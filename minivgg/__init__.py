"""minivgg: a from-scratch deep-learning engine that reproduces the VGG paper.

Floors, from the bottom: ``backend`` (NumPy or CuPy), ``kernels``
(hand-written, arrays in and out), ``autograd`` and ``functional`` (the
differentiable operations), then layers, models, training and evaluation.
The README's table "What is inside" places every module on its floor.

Every name below is imported on first use, so that ``import minivgg.backend``
or ``import minivgg.kernels`` loads nothing from the floors above them.
"""
import importlib
import os
import sys

__version__ = "0.1.0"

# After each matrix product OpenBLAS's worker threads spin for up to 2**28 cycles (about 0.1 s) before they
# sleep, and so hold the cores over which kernels/shards.py spreads NumPy's copies and element-wise work.
# Asked to sleep at once (2**4 cycles), they leave those cores free: on the 2-core machine the default run's
# training step is about 12% faster and VGG-A width 1's about 10% (benchmarks/results/vs_pytorch.md).
# OpenBLAS reads the setting when NumPy loads it, so it takes effect only where minivgg is imported before
# NumPy (as examples/train_vgg_a.py, evaluate_vgg.py and benchmarks/vs_pytorch.py do); a value already in the
# environment is kept.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

# name -> (module, attribute or None for the module itself)
_EXPORTS = {
    "Tensor": ("minivgg.autograd", "Tensor"),
    "Function": ("minivgg.autograd", "Function"),
    "no_grad": ("minivgg.autograd", "no_grad"),
    "GradcheckError": ("minivgg.gradcheck", "GradcheckError"),
    "gradcheck": ("minivgg.gradcheck", "gradcheck"),
    "summary": ("minivgg.summary", "summary"),
    **{name: (f"minivgg.{name}", None) for name in (
        "backend", "kernels", "functional", "nn", "optim", "models", "data", "train", "evaluate", "parallel")},
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'minivgg' has no attribute {name!r}")
    module_name, attribute = _EXPORTS[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value   # the next lookup is a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
