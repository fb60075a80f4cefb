"""The marks of tests that need a CUDA device: ``gpu``, and skipped with 'no CUDA device' where CuPy sees none."""
import pytest


def cuda_device_count():
    """How many CUDA devices CuPy sees (0 without CuPy, a driver or a GPU)."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # ImportError, or CUDARuntimeError without a driver
        return 0


SKIP_WITHOUT_GPU = pytest.mark.skipif(cuda_device_count() == 0, reason="no CUDA device")
GPU_MARKS = [pytest.mark.gpu, SKIP_WITHOUT_GPU]  # for a module: pytestmark = GPU_MARKS


def gpu_test(function):
    """Decorator for one test that needs a CUDA device."""
    return pytest.mark.gpu(SKIP_WITHOUT_GPU(function))
