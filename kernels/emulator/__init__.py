"""Run CUDA C kernels on the CPU: the same .cu source, compiled by g++.

``EmulatedModule(path, name_expressions)`` plays the part of
``cupy.RawModule(code, name_expressions=...)``: it compiles the .cu file at
``path`` together with ``cuda_emu.h`` (which defines threadIdx, __syncthreads
and the rest; read it first) into a shared library, and
``module.launch("relu_forward<float>", grid, block, args)`` runs that kernel
on NumPy arrays, one block at a time, one CUDA thread at a time.

For every name expression the library exports one C function,

    int emu_launch_<i>(const unsigned int dims[6], size_t shared_bytes, void** args)

where ``args[k]`` points to the k-th kernel argument, as in the CUDA driver's
cuLaunchKernel.  Compiled libraries are cached on disk, keyed by a hash of
everything that went into them, so a second process starts at once.

To step through a kernel, build without optimisation and run under gdb:

    MINIVGG_EMULATOR_DEBUG=1 gdb --args "$(python -c 'import sys; print(sys.executable)')" my_script.py
    (gdb) set breakpoint pending on
    (gdb) break activation.cu:10        # stops in each CUDA thread in turn
    (gdb) run
    (gdb) print threadIdx
"""
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
KERNEL_DIR = HERE.parent   # cuda_common.h: found by default, as NVRTC finds it
CXX_FLAGS = ("-std=c++17", "-shared", "-fPIC",
             # no fused multiply-add: round each operation the way NumPy does
             "-ffp-contract=off")

# The scheduler in cuda_emu.h keeps its state in globals: one launch at a time.
_launch_lock = threading.Lock()


class EmulatorError(RuntimeError):
    """A kernel misbehaved under the emulator (for example a barrier that not all threads reach)."""


def cache_dir():
    """Where compiled kernels are kept: $MINIVGG_CACHE_DIR, else ~/.cache/minivgg."""
    root = os.environ.get("MINIVGG_CACHE_DIR") or Path.home() / ".cache" / "minivgg"
    path = Path(root) / "emulator"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        path = Path(tempfile.gettempdir()) / f"minivgg-emulator-{os.getuid()}"
        path.mkdir(parents=True, exist_ok=True)
    return path


def compiler():
    """The C++ compiler: $CXX, else g++."""
    name = os.environ.get("CXX", "g++")
    if shutil.which(name) is None:
        raise EmulatorError(
            f"the CUDA emulator needs a C++17 compiler but {name!r} was not found; "
            "install g++ (apt-get install g++) or set CXX")
    return name


def compiler_flags():
    """g++ flags: optimised, or with MINIVGG_EMULATOR_DEBUG=1 unoptimised with debug
    information, so that gdb can step through a kernel line by line."""
    if os.environ.get("MINIVGG_EMULATOR_DEBUG") == "1":
        return (*CXX_FLAGS, "-O0", "-g")
    return (*CXX_FLAGS, "-O2")


def wrapper_source(source_path, name_expressions):
    """The C++ translation unit: the header, the .cu file, one exported launcher per kernel."""
    lines = ['#include "cuda_emu.h"', f'#include "{Path(source_path).name}"', ""]
    for i, expression in enumerate(name_expressions):
        lines.append(
            f'extern "C" int emu_launch_{i}(const unsigned int* dims, size_t shared_bytes, '
            f'void** args) {{ return cuda_emu::launch({expression}, dims, shared_bytes, args); }}')
    return "\n".join(lines) + "\n"


def build(source_path, name_expressions, include_dirs=()):
    """Compile (or find in the cache) the library for ``source_path``; returns its path."""
    source_path = Path(source_path).resolve()
    include_dirs = [HERE, KERNEL_DIR, source_path.parent, *map(Path, include_dirs)]
    wrapper = wrapper_source(source_path, name_expressions)
    digest = hashlib.sha256(wrapper.encode())
    flags = compiler_flags()
    digest.update(" ".join(flags).encode())
    for path in [source_path, *sorted(p for d in include_dirs for p in Path(d).glob("*.h"))]:
        digest.update(path.read_bytes())
    library = cache_dir() / f"{source_path.stem}-{digest.hexdigest()[:20]}.so"
    if library.exists():
        return library
    partial = library.with_name(f"{library.stem}.{os.getpid()}.tmp")
    with tempfile.TemporaryDirectory() as work:
        cpp = Path(work) / "wrapper.cpp"
        cpp.write_text(wrapper)
        command = [compiler(), *flags, *(f"-I{d}" for d in include_dirs),
                   str(cpp), "-o", str(partial)]
        result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise EmulatorError(f"g++ could not compile {source_path.name}:\n{result.stderr}")
    os.replace(partial, library)   # atomic: no process ever loads a half-written library
    return library


def argument_pointers(args):
    """``(void** array, keep_alive)`` for kernel arguments given as NumPy arrays and scalars.

    An array is passed as its data pointer, a scalar as its value; each is
    first stored in a 0-d NumPy array whose address goes into the list.
    """
    holders = []
    for k, arg in enumerate(args):
        if isinstance(arg, np.ndarray):
            holders.append(np.array(arg.ctypes.data, dtype=np.uintp))
        elif isinstance(arg, np.generic):
            holders.append(np.array(arg))
        else:
            raise TypeError(
                f"kernel argument {k}: expected a NumPy array or a NumPy scalar such as "
                f"np.int64(3) (so that its C type is explicit), got {type(arg).__name__}")
    pointers = (ctypes.c_void_p * max(len(holders), 1))(*(h.ctypes.data for h in holders))
    return pointers, holders


class EmulatedModule:
    """The kernels of one .cu file, compiled for the CPU (the emulator's cupy.RawModule)."""

    def __init__(self, source_path, name_expressions, include_dirs=()):
        self.name_expressions = list(name_expressions)
        self.library = ctypes.CDLL(str(build(source_path, self.name_expressions, include_dirs)))
        self.library.cuda_emu_last_error.restype = ctypes.c_char_p

    def function(self, expression):
        """The exported launcher of one name expression."""
        if expression not in self.name_expressions:
            raise KeyError(f"{expression!r} is not one of this module's kernels: "
                           f"{self.name_expressions}")
        launcher = getattr(self.library, f"emu_launch_{self.name_expressions.index(expression)}")
        launcher.restype = ctypes.c_int
        launcher.argtypes = (ctypes.POINTER(ctypes.c_uint), ctypes.c_size_t,
                             ctypes.POINTER(ctypes.c_void_p))
        return launcher

    def launch(self, expression, grid, block, args, shared_bytes=0):
        """Run kernel ``expression`` on ``grid`` x ``block`` threads; raise EmulatorError on a fault."""
        dims = (ctypes.c_uint * 6)(*pad3(grid), *pad3(block))
        pointers, holders = argument_pointers(args)   # holders must outlive the call
        with _launch_lock:
            status = self.function(expression)(dims, shared_bytes, pointers)
            message = self.library.cuda_emu_last_error().decode()
        if status != 0:
            raise EmulatorError(f"{expression}: {message}")


def pad3(dims):
    """A grid or block shape as three numbers (x, y, z), missing ones set to 1."""
    dims = tuple(int(d) for d in dims)
    if not 1 <= len(dims) <= 3:
        raise ValueError(f"a grid or block has 1 to 3 dimensions, got {dims}")
    return dims + (1,) * (3 - len(dims))
