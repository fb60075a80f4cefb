"""The CUDA twins on a real GPU agree with their NumPy twins (skipped without a CUDA device).

The same checks as the emulated tests (twin_checks.py), on CuPy arrays: small
random shapes drawn by Hypothesis, then the shapes of VGG's own layers.  Long
float32 sums (cuBLAS products, the bias gradient's atomics, the softmax and
LRN windows) are compared at 1e-4 instead of 1e-5: the GPU adds in another
order, and NVRTC fuses multiply-adds.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twin_checks import (Device, check_bias_grad, check_conv2d, check_dropout, check_im2col_and_col2im,
                         check_lrn, check_max_pool, check_relu, check_sgd_update,
                         check_softmax_cross_entropy, check_winograd, conv_cases, dtypes, pool_cases, seeds,
                         winograd_cases)

from minivgg.kernels import launch


def cuda_device_count():
    """How many CUDA devices CuPy sees (0 without CuPy, a driver or a GPU)."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # ImportError, or CUDARuntimeError without a driver
        return 0


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(cuda_device_count() == 0, reason="no CUDA device")]

SUM_TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-11}
EXAMPLES = settings(max_examples=10, deadline=None)
f32, f64 = np.float32, np.float64


@pytest.fixture(scope="module")
def gpu():
    import cupy
    return Device(cupy, SUM_TOLERANCE)


def test_each_function_is_looked_up_once(gpu):
    source = launch.SOURCES["activation.cu"]
    assert source.gpu_function("relu_forward<float>", 0) is source.gpu_function("relu_forward<float>", 0)


# ---- small random shapes ------------------------------------------------------------

@EXAMPLES
@given(case=conv_cases(), dtype=dtypes, seed=seeds)
def test_im2col_and_col2im_random(gpu, case, dtype, seed):
    check_im2col_and_col2im(gpu, case, dtype, seed)


@EXAMPLES
@given(case=conv_cases(), out_channels=st.integers(1, 5), with_bias=st.booleans(), dtype=dtypes, seed=seeds)
def test_conv2d_random(gpu, case, out_channels, with_bias, dtype, seed):
    check_conv2d(gpu, case, out_channels, with_bias, dtype, seed)


@EXAMPLES
@given(case=pool_cases(), dtype=dtypes, seed=seeds)
def test_max_pool_random(gpu, case, dtype, seed):
    check_max_pool(gpu, case, dtype, seed)


@EXAMPLES
@given(shape=st.tuples(*[st.integers(1, 5)] * 4), as_nhwc_view=st.booleans(), dtype=dtypes, seed=seeds)
def test_relu_random(gpu, shape, as_nhwc_view, dtype, seed):
    check_relu(gpu, shape, as_nhwc_view, dtype, seed)


@EXAMPLES
@given(shape=st.sampled_from([(3, 50), (2, 3, 4, 5)]), p=st.floats(0.0, 0.95), seed=seeds,
       step=st.integers(0, 2**32 - 1), dtype=dtypes)
def test_dropout_random(gpu, shape, p, seed, step, dtype):
    check_dropout(gpu, shape, p, seed, step, 7, 2**32 - 2, dtype)


@EXAMPLES
@given(n=st.integers(1, 5), k=st.integers(1, 1100), dtype=dtypes, seed=seeds)
def test_softmax_cross_entropy_random(gpu, n, k, dtype, seed):
    check_softmax_cross_entropy(gpu, n, k, 3.0, 1.0, dtype, seed)


@EXAMPLES
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 3), st.integers(1, 3)),
       size=st.integers(1, 7), dtype=dtypes, seed=seeds)
def test_lrn_random(gpu, shape, size, dtype, seed):
    check_lrn(gpu, shape, size, 0.5, 0.75, 2.0, dtype, seed)


# ---- VGG's layer shapes -------------------------------------------------------------------

@EXAMPLES
@pytest.mark.parametrize("algorithm", ["winograd", "winograd4"])
@given(case=winograd_cases(), dtype=dtypes, seed=seeds)
def test_winograd_random(gpu, algorithm, case, dtype, seed):
    check_winograd(gpu, case, dtype, seed, algorithm)


@pytest.mark.parametrize("case, dtype", [
    (((2, 128, 56, 56), 256), f32),   # conv3_1
    (((1, 512, 14, 14), 512), f64),   # conv5
    (((2, 64, 7, 9), 32), f32),       # odd sides
])
@pytest.mark.parametrize("algorithm", ["winograd", "winograd4"])
def test_winograd_vgg(gpu, case, dtype, algorithm):
    check_winograd(gpu, case, dtype, 0, algorithm)


@pytest.mark.parametrize("case, dtype", [
    (((2, 64, 224, 224), 3, 3, 1, 1), f32),      # conv1_2
    (((1, 512, 14, 14), 3, 3, 1, 1), f64),       # conv5
])
def test_im2col_and_col2im_vgg(gpu, case, dtype):
    check_im2col_and_col2im(gpu, case, dtype, 0)


@pytest.mark.parametrize("case, out_channels, dtype", [
    (((2, 3, 224, 224), 3, 3, 1, 1), 64, f32),   # conv1_1
    (((2, 64, 112, 112), 3, 3, 1, 1), 128, f32),  # conv2_1
    (((1, 256, 28, 28), 1, 1, 1, 0), 256, f64),   # the 1x1 convolution of configuration C
])
def test_conv2d_vgg(gpu, case, out_channels, dtype):
    check_conv2d(gpu, case, out_channels, True, dtype, 1)


@pytest.mark.parametrize("shape, dtype", [((8, 64, 224, 224), f32), ((4, 512, 14, 14), f64)])
def test_bias_grad_vgg(gpu, shape, dtype):
    check_bias_grad(gpu, shape, dtype, 2)


@pytest.mark.parametrize("case, dtype", [
    (((8, 64, 224, 224), 2, 2, 2), f32),          # pool1
    (((2, 512, 14, 14), 3, 3, 2), f64),           # overlapping windows
])
def test_max_pool_vgg(gpu, case, dtype):
    check_max_pool(gpu, case, dtype, 3)


def test_relu_vgg(gpu):
    check_relu(gpu, (8, 64, 224, 224), True, f32, 4)


@pytest.mark.parametrize("dtype", [f32, f64])
def test_dropout_vgg(gpu, dtype):
    check_dropout(gpu, (256, 4096), 0.5, 2014, 37_000, 6, 1024, dtype)


@pytest.mark.parametrize("dtype", [f32, f64])
def test_softmax_cross_entropy_vgg(gpu, dtype):
    check_softmax_cross_entropy(gpu, 256, 1000, 5.0, 1.0, dtype, 5)


def test_lrn_vgg(gpu):
    check_lrn(gpu, (8, 64, 224, 224), 5, 1e-4, 0.75, 2.0, f32, 6)


@pytest.mark.parametrize("shape, dtype", [((4096, 4096), f32), ((1000, 4096), f64)])
def test_sgd_update_vgg(gpu, shape, dtype):
    check_sgd_update(gpu, shape, 0.01, 0.9, 5e-4, dtype, 7)
