"""The emulator itself: it runs CUDA semantics faithfully and catches barrier bugs."""
import sys

import numpy as np
import pytest

from minivgg import kernels
from minivgg.kernels import launch, loss
from minivgg.kernels.emulator import EmulatedModule, EmulatorError, build


def emulated(tmp_path, source, *expressions):
    """Compile ``source`` (a .cu text that may include cuda_common.h) for the emulator."""
    path = tmp_path / "test_kernel.cu"
    path.write_text(source)
    return EmulatedModule(path, expressions)   # cuda_common.h is found by default


def run_softmax(module, z, labels):
    """Launch the softmax forward of ``module`` as kernels/loss.py does; returns probs."""
    n, k = z.shape
    threads = loss.reduction_block(k)
    probs, row_loss = np.empty_like(z), np.empty(n)
    module.launch("softmax_cross_entropy_forward<double>", (n,), (threads,),
                  (z, labels, probs, row_loss, np.int64(k)), shared_bytes=threads * 8)
    return probs


def test_a_missing_barrier_gives_a_wrong_answer(tmp_path):
    """The planted bug: loss.cu's block reduction without its __syncthreads()."""
    source = (launch.KERNEL_DIR / "loss.cu").read_text()
    assert "__syncthreads();" in source
    z = np.random.default_rng(0).standard_normal((3, 40))
    labels = np.array([0, 5, 39])
    expected = loss.softmax_cross_entropy_forward(z, labels)[1]

    intact = emulated(tmp_path, source, "softmax_cross_entropy_forward<double>")
    np.testing.assert_allclose(run_softmax(intact, z, labels), expected, rtol=1e-12)

    broken = emulated(tmp_path, source.replace("__syncthreads();", ""),
                      "softmax_cross_entropy_forward<double>")
    probs = run_softmax(broken, z, labels)
    assert not np.allclose(probs, expected, equal_nan=False)


BLOCK_SUM = """
#include "cuda_common.h"
// out[blockIdx.x] = sum of x over the block's threads; SYNC is __syncthreads() or nothing.
template <typename T>
__global__ void block_sum(const T* x, T* out)
{
    DYNAMIC_SHARED(T, buf);
    buf[threadIdx.x] = x[grid_thread_index()];
    SYNC
    if (threadIdx.x == 0) {
        T total = T(0);
        for (unsigned int t = 0; t < blockDim.x; ++t)
            total += buf[t];
        out[blockIdx.x] = total;
    }
}
"""


@pytest.mark.parametrize("sync, correct", [("__syncthreads();", True), ("", False)])
def test_the_schedule_is_deterministic_and_exposes_missing_barriers(tmp_path, sync, correct):
    module = emulated(tmp_path, BLOCK_SUM.replace("SYNC", sync), "block_sum<double>")
    x = np.arange(1.0, 33.0)
    for _ in range(3):
        out = np.zeros(2)
        module.launch("block_sum<double>", (2,), (16,), (x, out), shared_bytes=16 * 8)
        assert np.array_equal(out, [x[:16].sum(), x[16:].sum()]) == correct


def test_a_barrier_that_some_threads_never_reach_raises(tmp_path):
    module = emulated(tmp_path, """
        template <typename T>
        __global__ void early_exit(T* out)
        {
            if (threadIdx.x == 3)
                return;
            __syncthreads();
            out[threadIdx.x] = T(1);
        }""", "early_exit<float>")
    with pytest.raises(EmulatorError, match=r"thread \(3,0,0\) of block \(0,0,0\) returned while other "
                                            r"threads wait at __syncthreads\(\)"):
        module.launch("early_exit<float>", (2,), (8,), (np.zeros(8, np.float32),))


def test_threads_waiting_at_different_barriers_raise(tmp_path):
    module = emulated(tmp_path, """
        template <typename T>
        __global__ void split(T* out)
        {
            if (threadIdx.x % 2)
                __syncthreads();
            else
                __syncthreads();
            out[threadIdx.x] = T(1);
        }""", "split<double>")
    with pytest.raises(EmulatorError, match="waits at __syncthreads"):
        module.launch("split<double>", (1,), (4,), (np.zeros(4),))


def test_built_in_indices_of_a_three_dimensional_launch(tmp_path):
    module = emulated(tmp_path, """
        template <typename T>
        __global__ void where(T* out)
        {
            unsigned int block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
            unsigned int thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
            unsigned int threads = blockDim.x * blockDim.y * blockDim.z;
            out[block * threads + thread] = T(block * 1000 + thread);
            atomicAdd(&out[gridDim.x * gridDim.y * gridDim.z * threads], T(1));
        }""", "where<double>")
    grid, block = (2, 3, 2), (4, 2, 3)
    out = np.zeros(12 * 24 + 1)
    module.launch("where<double>", grid, block, (out,))
    expected = [b * 1000 + t for b in range(12) for t in range(24)]
    assert np.array_equal(out[:-1], expected)
    assert out[-1] == 12 * 24


def test_launch_limits_are_enforced(tmp_path):
    module = emulated(tmp_path, "template <typename T> __global__ void nothing(T* x) {}",
                      "nothing<float>")
    x = np.zeros(1, np.float32)
    with pytest.raises(EmulatorError, match="limit is 1024"):
        module.launch("nothing<float>", (1,), (1025,), (x,))
    with pytest.raises(EmulatorError, match="shared memory"):
        module.launch("nothing<float>", (1,), (1,), (x,), shared_bytes=48 * 1024 + 1)
    with pytest.raises(TypeError, match="NumPy scalar"):
        module.launch("nothing<float>", (1,), (1,), (3,))
    with pytest.raises(KeyError, match="nothing<double>"):
        module.launch("nothing<double>", (1,), (1,), (x,))


def test_a_compile_error_shows_the_compiler_message(tmp_path):
    with pytest.raises(EmulatorError, match="undeclared_name"):
        emulated(tmp_path, "template <typename T> __global__ void bad(T* x) { undeclared_name; }",
                 "bad<float>")


def test_compiled_libraries_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIVGG_CACHE_DIR", str(tmp_path / "cache"))
    source = launch.SOURCES["activation.cu"]
    first = build(source.path, source.name_expressions())
    assert first.parent == tmp_path / "cache" / "emulator"
    mtime = first.stat().st_mtime_ns
    assert build(source.path, source.name_expressions()) == first
    assert first.stat().st_mtime_ns == mtime


def test_launch_rejects_arrays_with_gaps():
    x = np.zeros((4, 6))[:, ::2]
    with pytest.raises(ValueError, match="not one dense block"):
        launch.run("relu_forward", x.dtype, (1,), (32,), (x, x, np.int64(x.size)))


def test_launch_rejects_other_dtypes():
    x = np.zeros(4, dtype=np.int32)
    with pytest.raises(TypeError, match="relu_forward: expected float32 or float64 data, got int32"):
        kernels.CUDA.relu_forward(x)


def test_asking_for_the_gpu_without_cupy_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)   # makes `import cupy` fail
    with pytest.raises(ImportError, match="cupy is not installed; pip install cupy-cuda13x"):
        launch.require_cupy()
    with pytest.raises(ImportError, match="cupy is not installed"):
        launch.CudaSource(launch.KERNEL_DIR / "activation.cu", ["relu_forward"]).gpu_function("relu_forward<float>", 0)
