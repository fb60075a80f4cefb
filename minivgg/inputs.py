"""Floor 2: what an operation accepts, checked where arrays enter the autograd.

The contract: a ``Tensor`` holds numbers (bool, integer or floating point;
never objects, strings or ragged lists), and a differentiable operation
takes float32 or float64 arrays only (an integer image must be cast first:
a uint8 convolution would wrap around).  Every ``Function.apply`` passes its
inputs through here: numbers become arrays of the tensors' dtype and device,
and inputs that break the contract or disagree in device or dtype are
refused with the operation's name, never converted silently.
"""
import reprlib

import numpy as np

from .backend import device_of, get_array_module

DIFFERENTIABLE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def numeric_array(data, dtype=None):
    """``data`` as an array of booleans, integers or floating-point numbers (a Tensor's data); nothing else."""
    try:
        array = get_array_module(data).asarray(data, dtype=dtype)
    except (TypeError, ValueError) as error:  # ragged lists, an unknown dtype, values that are not numbers
        raise TypeError(f"Tensor: cannot make a numeric array of {reprlib.repr(data)}: {error}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"Tensor: expected numbers (bool, integer or floating point), got dtype {array.dtype} "
                        f"from {reprlib.repr(data)}")
    return array


def constant_array(value, like):
    """A non-tensor input of an operation as an array, beside the array ``like`` (or None).

    Numbers take the dtype of the tensors beside them (``x * 2.0`` stays
    float32); a floating-point array keeps its own dtype and device, so that
    ``check_inputs`` reports a mismatch instead of converting it silently.
    """
    if like is None:
        return np.asarray(value)
    if getattr(value, "ndim", 0) > 0 and value.dtype.kind == "f":
        return value
    return get_array_module(like).asarray(value, dtype=like.dtype)



def check_inputs(name, arrays):
    """All array inputs of one operation are float32 or float64 and share a device and a dtype."""
    for array in arrays:
        if array.dtype not in DIFFERENTIABLE_DTYPES:
            raise TypeError(f"{name}: expected float32 or float64 inputs, got dtype {array.dtype} "
                            f"(shape {tuple(array.shape)}); cast with .astype(np.float32) first")
    devices = {device_of(a) for a in arrays}
    if len(devices) > 1:
        raise TypeError(f"{name}: all inputs must be on the same device, got {sorted(devices)}")
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) > 1:
        raise TypeError(f"{name}: all inputs must have the same dtype, got {sorted(map(str, dtypes))}")


def check_broadcast(name, a, b):
    """Raise a ValueError naming the operation unless the shapes of ``a`` and ``b`` broadcast together."""
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{name}: shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast together "
                         f"(each trailing dimension must be equal, or 1 in one of them)") from None


def initial_gradient(tensor, grad):
    """The gradient that ``tensor.backward(grad)`` starts from: ``grad`` as an array, or 1 for one element."""
    if grad is None and tensor.size != 1:
        raise ValueError(f"backward: a gradient is needed for a non-scalar tensor of shape {tensor.shape}")
    xp = get_array_module(tensor.data)
    grad = xp.ones_like(tensor.data) if grad is None else xp.asarray(grad, dtype=tensor.dtype)
    if grad.shape != tensor.shape:
        raise ValueError(f"backward: gradient shape {grad.shape} does not match tensor shape {tensor.shape}")
    if not tensor.requires_grad:
        raise RuntimeError("backward: this tensor does not require a gradient and was not made by an "
                           "operation that does")
    return grad
