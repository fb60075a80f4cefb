"""Kernel sets: the named kernels one device provides, and the one place ops get them.

A ``KernelSet`` holds one function for every name in ``NAMES``.  Three sets
come with minivgg:

* ``NUMPY``: the NumPy twins (``kernels/<op>.py``), the CPU's default;
* ``CUDA``: the CUDA twins (``kernels/<op>.cu``, launched from the same
  .py files), the GPU's default;
* ``EMULATED``: the same CUDA twins bound to the CPU: given NumPy arrays they
  run the CUDA C on the emulator, one thread at a time.

Every differentiable op and the optimiser call ``kernels_for(array)`` and use
what it returns; nothing imports a set directly.  So swapping a kernel needs
no monkeypatching::

    from minivgg import kernels

    with kernels.override(im2col=my_im2col):       # one kernel, for a block
        loss = model(x) ...                        # every conv uses my_im2col
    with kernels.use(kernels.EMULATED):            # a whole set, for a block
        ...
    kernels.set_default(kernels.NUMPY.replace(im2col=my_im2col))   # for the process

The active sets are process-wide (threads included), so that a data-parallel
replica thread sees the same kernels as the thread that set them.
"""
import contextlib

import numpy as np

from . import activation, conv, dropout, loss, lrn, pool, sgd, winograd, winograd4

NAMES = (
    "im2col", "col2im", "bias_grad",
    "winograd_input_transform", "winograd_output_transform", "winograd_grad_transform",
    "winograd4_input_transform", "winograd4_output_transform", "winograd4_grad_transform",
    "winograd4_input_transform_adjoint",
    "max_pool_forward", "max_pool_values", "max_pool_backward",
    "relu_forward", "relu_backward",
    "dropout_forward", "dropout_backward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
    "lrn_forward", "lrn_backward",
    "sgd_update",
)
DEVICES = ("cpu", "cuda")


class KernelSet:
    """One function per name of ``NAMES``, for arrays on ``device`` ('cpu' or 'cuda')."""

    def __init__(self, name, device, **functions):
        if device not in DEVICES:
            raise ValueError(f"KernelSet {name!r}: expected device 'cpu' or 'cuda', got {device!r}")
        missing, unknown = sorted(set(NAMES) - set(functions)), sorted(set(functions) - set(NAMES))
        if missing or unknown:
            raise ValueError(f"KernelSet {name!r}: every set provides exactly {list(NAMES)}; "
                             f"missing {missing}, unknown {unknown}")
        for kernel, function in functions.items():
            if not callable(function):
                raise TypeError(f"KernelSet {name!r}: kernel {kernel!r} must be callable, got {function!r}")
        self.name, self.device, self.functions = name, device, dict(functions)

    def __getattr__(self, kernel):
        try:
            return self.__dict__["functions"][kernel]
        except KeyError:
            raise AttributeError(f"kernel set {self.__dict__.get('name')!r} has no kernel {kernel!r}; "
                                 f"the kernels are {list(NAMES)}") from None

    def __repr__(self):
        return f"<KernelSet {self.name!r} for {self.device}>"

    def replace(self, name=None, **functions):
        """A new set: this one with some kernels replaced (unknown names are refused)."""
        unknown = sorted(set(functions) - set(NAMES))
        if unknown:
            raise ValueError(f"KernelSet.replace: unknown kernel(s) {unknown}; the kernels are {list(NAMES)}")
        label = name or f"{self.name} with {', '.join(sorted(functions))}"
        return KernelSet(label, self.device, **{**self.functions, **functions})

    def on(self, device, name=None):
        """The same functions, bound to ``device`` (how the CUDA twins run on NumPy arrays)."""
        return KernelSet(name or f"{self.name} on {device}", device, **self.functions)


def twins(suffix=""):
    """Every kernel of NAMES, looked up as ``<name><suffix>`` in the op files."""
    files = (activation, conv, dropout, loss, lrn, pool, sgd, winograd, winograd4)
    return {name: next(getattr(f, name + suffix) for f in files if hasattr(f, name + suffix)) for name in NAMES}


NUMPY = KernelSet("numpy", "cpu", **twins())
CUDA = KernelSet("cuda", "cuda", **twins("_cuda"))
EMULATED = CUDA.on("cpu", name="cuda-emulated")

_active = {"cpu": NUMPY, "cuda": CUDA}


def device_kind(array):
    """'cpu' for a NumPy array, 'cuda' for anything else (a CuPy array)."""
    return "cpu" if isinstance(array, (np.ndarray, np.generic)) else "cuda"


def kernels_for(array):
    """The active kernel set for ``array``'s device: what every op calls."""
    return _active[device_kind(array)]


def active(device="cpu"):
    """The kernel set now active for ``device`` ('cpu' or 'cuda')."""
    return _active[device]


def set_default(kernel_set):
    """Make ``kernel_set`` the active set of its device for the rest of the process."""
    if not isinstance(kernel_set, KernelSet):
        raise TypeError(f"set_default: expected a KernelSet, got {type(kernel_set).__name__}")
    _active[kernel_set.device] = kernel_set


@contextlib.contextmanager
def use(kernel_set):
    """Within this block, ``kernel_set`` is the active set of its device."""
    previous = _active[kernel_set.device] if isinstance(kernel_set, KernelSet) else None
    set_default(kernel_set)
    try:
        yield kernel_set
    finally:
        _active[kernel_set.device] = previous


def override(device="cpu", **functions):
    """Within this block, replace some kernels of ``device``'s active set: ``override(im2col=mine)``."""
    return use(active(device).replace(**functions))
