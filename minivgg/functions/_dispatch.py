"""Which kernel set runs an op: the NumPy twins for NumPy arrays, the CUDA twins for CuPy arrays."""
import numpy as np


def kernels_for(array):
    """The module of kernels (``minivgg.kernels.cpu`` or ``.cuda``) for ``array``'s device."""
    if isinstance(array, np.ndarray):
        from minivgg.kernels import cpu
        return cpu
    from minivgg.kernels import cuda
    return cuda


def check_ndim(name, what, array, ndim, layout):
    """Raise a ValueError unless ``array`` has ``ndim`` axes."""
    if array.ndim != ndim:
        raise ValueError(f"{name}: expected {what} of {ndim} dimensions {layout}, got shape {tuple(array.shape)}")
