"""Floor 0: which array library holds the data, and on which device.

Arrays are NumPy on the CPU and CuPy on the GPU.  Every floor above asks this
module, never ``import cupy`` itself, so that a machine without CuPy runs all
of minivgg's CPU path.
"""
import numpy as np


def cupy_or_none():
    """Return the ``cupy`` module, or None where it is not installed."""
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def get_array_module(*arrays):
    """``numpy`` or ``cupy``: the library that owns ``arrays``."""
    cupy = cupy_or_none()
    if cupy is not None:
        return cupy.get_array_module(*arrays)
    return np


def parse_device(device):
    """Normalise a device name to ``("cpu", None)`` or ``("cuda", index)``."""
    if not isinstance(device, str):
        raise TypeError(f"device: expected a string such as 'cpu' or 'cuda:0', got {device!r}")
    name, colon, index = device.partition(":")
    if name == "cpu" and not colon:
        return "cpu", None
    if name == "cuda":
        if not colon:
            return "cuda", 0
        if index.isdecimal():
            return "cuda", int(index)
    raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:<index>', got {device!r}")


def device_of(array):
    """The device name ('cpu' or 'cuda:i') on which ``array`` lives."""
    if isinstance(array, np.ndarray) or np.isscalar(array):
        return "cpu"
    return f"cuda:{array.device.id}"


def require_cupy(what):
    """The ``cupy`` module, or a clear error saying how to install it."""
    cupy = cupy_or_none()
    if cupy is None:
        raise RuntimeError(f"{what}: the 'cuda' device needs CuPy, which is not installed; "
                           "install it with: pip install cupy-cuda13x")
    return cupy


def move_array(array, device):
    """``array`` on ``device``: a NumPy array for 'cpu', a CuPy array for 'cuda[:i]'."""
    kind, index = parse_device(device)
    if kind == "cpu":
        return array.get() if hasattr(array, "get") else np.asarray(array)
    cupy = require_cupy(f"to({device!r})")
    check_device_index(cupy, device, index)
    with cupy.cuda.Device(index):
        return keep_memory_order(array, cupy.asarray)


def keep_memory_order(array, convert):
    """``convert(array)`` with the axes in the same memory order (an NCHW view of NHWC memory stays one)."""
    array = array if hasattr(array, "strides") else np.asarray(array)
    order = sorted(range(array.ndim), key=lambda axis: array.strides[axis], reverse=True)
    dense = convert(array.transpose(order))
    return dense.transpose(np.argsort(order).tolist())


def check_device_index(cupy, device, index):
    """Raise a clear error unless CUDA device ``index`` exists and the driver can reach it."""
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except RuntimeError as error:  # CUDARuntimeError: no driver, a driver too old for CuPy's CUDA...
        count, reason = 0, f" ({error})"
    else:
        reason = ""
    if count == 0:
        raise RuntimeError(f"to({device!r}): CuPy is installed but finds no usable CUDA device{reason}; "
                           "this needs an NVIDIA GPU with its driver (check nvidia-smi), or use device 'cpu'")
    if index >= count:
        raise ValueError(f"to({device!r}): no such device; this machine has {count} CUDA device(s), "
                         f"'cuda:0' to 'cuda:{count - 1}'")
