"""Floor 2: what an operation accepts, checked where arrays enter the autograd.

Every ``Function.apply`` passes its inputs through here: numbers become
arrays of the tensors' dtype and device, and inputs that disagree in device
or dtype are refused with the operation's name, never converted silently.
"""
import numpy as np

from .backend import device_of, get_array_module


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
    """All array inputs of one operation share a device and a dtype: nothing is converted silently."""
    devices = {device_of(a) for a in arrays}
    if len(devices) > 1:
        raise TypeError(f"{name}: all inputs must be on the same device, got {sorted(devices)}")
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) > 1:
        raise TypeError(f"{name}: all inputs must have the same dtype, got {sorted(map(str, dtypes))}")
