"""Floor 1: the hand-written kernels, arrays in and arrays out.

Each ``kernels/<op>.py`` holds the NumPy twin of ``kernels/<op>.cu`` and,
below it, the few lines that launch the CUDA twin: the same algorithm under
the same names.  Nothing here knows about autograd; ``minivgg/functions/``
states each op's maths and pairs its forward with its backward.

The kernels of one device form a kernel set (``sets.py``); ops get theirs
from ``kernels_for(array)``, and a user swaps kernels with ``override``,
``use`` or ``set_default``.  ``launch.py`` compiles and launches CUDA C (the
project's and a user's own .cu files alike); ``layout.py`` moves between the
public NCHW layout and the NHWC memory the kernels work in.
"""
from .launch import CudaSource
from .sets import CUDA, EMULATED, NAMES, NUMPY, KernelSet, active, kernels_for, override, set_default, use

__all__ = ["CUDA", "CudaSource", "EMULATED", "KernelSet", "NAMES", "NUMPY", "active", "kernels_for",
           "override", "set_default", "use"]
