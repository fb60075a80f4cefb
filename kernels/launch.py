"""Compiling and launching CUDA C kernels, on a GPU or on the CPU emulator.

A ``CudaSource`` is one .cu file and the names of its kernels.  Each kernel
is a template over the element type T, instantiated for float and double
through NVRTC name expressions (``relu_forward<float>``).
``source.launch(kernel, dtype, grid, block, args)`` runs it where its array
arguments live:

* CuPy arrays: on the GPU.  The file is compiled once per process by
  ``cupy.RawModule`` (NVRTC) and each kernel function is looked up once per
  device, not per launch;
* NumPy arrays: on the CPU emulator of ``kernels/emulator/``, the same .cu
  file compiled by g++, one CUDA thread at a time.  Slow, but it is how the
  tests check the CUDA C on a machine without a GPU, and how a learner can
  step through a kernel in a debugger.

The project's own kernels are ``SOURCES``; ``run(kernel, ...)`` finds the
file of one of them, and ``run_elementwise`` launches a grid-stride loop over
n elements.  A user's own .cu file goes through the very same path:
``CudaSource("my_relu.cu", ["my_relu"]).launch("my_relu", ...)``, with
``kernels/`` on the include path so that ``#include "cuda_common.h"`` works.
"""
import hashlib
from pathlib import Path

import numpy as np

from .layout import array_module, is_dense

KERNEL_DIR = Path(__file__).resolve().parent
C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

BLOCK = 256            # threads per block of the one-dimensional kernels
MAX_BLOCKS = 65535     # grid-stride loops cover any size with at most this many blocks


def require_cupy():
    """The cupy module, or a clear ImportError where it is not installed."""
    try:
        import cupy
    except ImportError as error:
        raise ImportError("cupy is not installed; pip install cupy-cuda13x") from error
    return cupy


class CudaSource:
    """One .cu file of templated kernels, compiled on first use for the GPU or the emulator."""

    def __init__(self, path, kernels, include_dirs=()):
        self.path = Path(path).resolve()
        self.kernels = tuple(kernels)
        self.include_dirs = (KERNEL_DIR, self.path.parent, *map(Path, include_dirs))
        self._gpu_module, self._gpu_functions, self._emulated = None, {}, None

    def __repr__(self):
        return f"CudaSource({str(self.path)!r}, {list(self.kernels)})"

    def name_expressions(self):
        """The template instantiations, e.g. ``relu_forward<float>``, ``relu_forward<double>``."""
        return [f"{kernel}<{c_type}>" for kernel in self.kernels for c_type in C_TYPES.values()]

    def nvrtc_options(self):
        """NVRTC options (the architecture is added by the caller).

        CuPy caches compiled modules on disk keyed by the source text and the
        options, not by included headers; the define carries a hash of the
        headers on the include path so that editing one recompiles.
        """
        digest = hashlib.sha256()
        for header in sorted(h for d in self.include_dirs for h in Path(d).glob("*.h")):
            digest.update(header.read_bytes())
        return (*(f"-I{d}" for d in self.include_dirs), f"-DMINIVGG_HEADERS_HASH=0x{digest.hexdigest()[:16]}")

    def nvrtc_compile(self, arch):
        """Compile with NVRTC for ``arch`` ("sm_90", "compute_80"...), no GPU needed.

        ``cupy.RawModule`` asks the CUDA driver which GPU to compile for, which
        fails on a machine without one.  This drives NVRTC itself, with the same
        options and an explicit architecture: the check that CI runs on every
        commit.  Returns {name expression: lowered (mangled) name} and the
        compiler log; raises RuntimeError with the log when compilation fails.
        """
        require_cupy()
        from cupy.cuda import nvrtc
        expressions = self.name_expressions()
        program = nvrtc.createProgram(self.path.read_text(), self.path.name, [], [])
        try:
            for expression in expressions:
                nvrtc.addNameExpression(program, expression)
            try:
                nvrtc.compileProgram(program, [f"--gpu-architecture={arch}", *self.nvrtc_options()])
            except nvrtc.NVRTCError as error:
                raise RuntimeError(f"NVRTC could not compile {self.path.name} for {arch}:\n"
                                   f"{nvrtc.getProgramLog(program)}") from error
            lowered = {e: nvrtc.getLoweredName(program, e) for e in expressions}
            return lowered, nvrtc.getProgramLog(program)
        finally:
            nvrtc.destroyProgram(program)

    def gpu_function(self, expression, device_id):
        """``expression`` on GPU ``device_id``: the module is compiled once, each function looked up once."""
        key = (expression, device_id)
        if key not in self._gpu_functions:
            if self._gpu_module is None:
                self._gpu_module = require_cupy().RawModule(
                    code=self.path.read_text(), options=self.nvrtc_options(),
                    name_expressions=self.name_expressions())
            self._gpu_functions[key] = self._gpu_module.get_function(expression)
        return self._gpu_functions[key]

    def emulated(self):
        """The emulator's build of this file (compiled once, and cached on disk)."""
        if self._emulated is None:
            from .emulator import EmulatedModule
            self._emulated = EmulatedModule(self.path, self.name_expressions(), self.include_dirs)
        return self._emulated

    def launch(self, kernel, dtype, grid, block, args, shared_bytes=0):
        """Run ``kernel<T>`` (T the C type of ``dtype``) on ``grid`` x ``block`` threads.

        ``args`` are the kernel's arguments in order: arrays (passed as pointers;
        each must be dense) and NumPy scalars whose type matches the C parameter
        (``np.int64`` for index_t, ``np.uint32`` for unsigned int, ``T`` for T).
        The arrays decide where it runs: CuPy arrays on the GPU, NumPy arrays on
        the emulator.  A grid with no blocks runs nothing.
        """
        if kernel not in self.kernels:
            raise KeyError(f"launch: {kernel!r} is not a kernel of {self.path.name}; it has {list(self.kernels)}")
        dtype = np.dtype(dtype)
        if dtype not in C_TYPES:
            raise TypeError(f"{kernel}: expected float32 or float64 data, got {dtype}")
        arrays = [a for a in args if not isinstance(a, np.generic)]
        for k, a in enumerate(arrays):
            if not is_dense(a):
                raise ValueError(f"{kernel}: array argument {k} is not one dense block of memory "
                                 f"(shape {a.shape}, strides {a.strides})")
        if 0 in tuple(grid):
            return
        expression = f"{kernel}<{C_TYPES[dtype]}>"
        xp = array_module(*arrays)
        if xp is np:
            self.emulated().launch(expression, grid, block, args, shared_bytes)
        else:
            function = self.gpu_function(expression, xp.cuda.Device().id)
            function(tuple(grid), tuple(block), tuple(args), shared_mem=shared_bytes)


# The project's kernels, by .cu file.
SOURCES = {name: CudaSource(KERNEL_DIR / name, kernels) for name, kernels in {
    "activation.cu": ("relu_forward", "relu_backward"),
    "conv.cu": ("im2col", "col2im", "bias_grad"),
    "dropout.cu": ("dropout_forward", "dropout_backward"),
    "loss.cu": ("softmax_cross_entropy_forward", "softmax_cross_entropy_backward"),
    "lrn.cu": ("lrn_forward", "lrn_backward"),
    "pool.cu": ("max_pool_forward", "max_pool_backward"),
    "sgd.cu": ("sgd_update",),
    "winograd.cu": ("winograd_input_transform", "winograd_output_transform", "winograd_grad_transform"),
    "winograd4.cu": ("winograd4_input_transform", "winograd4_output_transform", "winograd4_grad_transform",
                     "winograd4_input_transform_adjoint"),
}.items()}
SOURCE_OF = {kernel: source for source in SOURCES.values() for kernel in source.kernels}


def run(kernel, dtype, grid, block, args, shared_bytes=0):
    """Launch one of the project's kernels (see ``CudaSource.launch``)."""
    SOURCE_OF[kernel].launch(kernel, dtype, grid, block, args, shared_bytes)


def grid_for(n, block=None):
    """The grid of a grid-stride loop over ``n`` items, ``block`` (default ``BLOCK``) threads per block."""
    return (max(1, min(-(-n // (block or BLOCK)), MAX_BLOCKS)),)


def run_elementwise(kernel, dtype, n, args):
    """Launch one of the project's grid-stride kernels over ``n`` elements, ``BLOCK`` threads per block."""
    run(kernel, dtype, grid_for(n), (BLOCK,), args)


def indices(*values):
    """Python ints as the kernels' index_t (64-bit) arguments."""
    return tuple(np.int64(v) for v in values)
