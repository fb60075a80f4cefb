"""Each CUDA twin, run on the CPU emulator, agrees with its NumPy twin.

The CUDA twins (``minivgg.kernels.CUDA``) take NumPy arrays here, so the
very same launch code and .cu source run through kernels/emulator.  Shapes
are tiny and blocks have 64 threads, so that a shape spans several blocks and
the whole file runs in seconds.  The checks themselves are in twin_checks.py,
shared with the GPU tests.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twin_checks import (EMULATOR, check_bias_grad, check_conv2d, check_dropout, check_im2col_and_col2im,
                         check_lrn, check_max_pool, check_relu, check_sgd_update,
                         check_softmax_cross_entropy, check_winograd, conv_cases, dtypes, pool_cases, seeds,
                         winograd_cases)

from minivgg import kernels
from minivgg.kernels import launch

EXAMPLES = settings(max_examples=15)
uint32s = st.integers(0, 2**32 - 1)


@pytest.fixture(autouse=True, scope="module")
def small_blocks():
    """64-thread blocks: tiny shapes still span several blocks."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(launch, "BLOCK", 64)
        yield


@EXAMPLES
@given(conv_cases(), dtypes, seeds)
def test_im2col_and_col2im(case, dtype, seed):
    check_im2col_and_col2im(EMULATOR, case, dtype, seed)


@EXAMPLES
@given(conv_cases(), st.integers(1, 5), st.booleans(), dtypes, seeds)
def test_conv2d_forward_and_backward(case, out_channels, with_bias, dtype, seed):
    check_conv2d(EMULATOR, case, out_channels, with_bias, dtype, seed)


@EXAMPLES
@pytest.mark.parametrize("algorithm", ["winograd", "winograd4"])
@given(case=winograd_cases(), dtype=dtypes, seed=seeds)
def test_winograd_transforms_forward_and_input_gradient(algorithm, case, dtype, seed):
    check_winograd(EMULATOR, case, dtype, seed, algorithm)


@EXAMPLES
@given(st.tuples(st.integers(1, 3), st.integers(1, 70), st.integers(1, 5), st.integers(1, 5)), dtypes, seeds)
def test_bias_grad(shape, dtype, seed):
    check_bias_grad(EMULATOR, shape, dtype, seed)


@EXAMPLES
@given(pool_cases(), dtypes, seeds)
def test_max_pool_with_ties(case, dtype, seed):
    check_max_pool(EMULATOR, case, dtype, seed)


@EXAMPLES
@given(st.tuples(*[st.integers(1, 4)] * 4), st.booleans(), dtypes, seeds)
def test_relu(shape, as_nhwc_view, dtype, seed):
    check_relu(EMULATOR, shape, as_nhwc_view, dtype, seed)


@EXAMPLES
@given(st.sampled_from([(3, 50), (2, 3, 4, 5), (1, 7)]), st.floats(0.0, 0.95),
       seeds, uint32s, uint32s, st.integers(0, 2**32 - 8), dtypes)
def test_dropout_masks_are_identical(shape, p, seed, step, layer, sample_offset, dtype):
    check_dropout(EMULATOR, shape, p, seed, step, layer, sample_offset, dtype)


@EXAMPLES
@given(st.integers(1, 5), st.integers(1, 150), st.floats(0.1, 10.0), st.floats(-3.0, 3.0), dtypes, seeds)
def test_softmax_cross_entropy(n, k, spread, dloss, dtype, seed):
    """k up to 150 with 64-thread blocks: each thread reduces several columns."""
    check_softmax_cross_entropy(EMULATOR, n, k, spread, dloss, dtype, seed)


@EXAMPLES
@given(st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 3), st.integers(1, 3)),
       st.integers(1, 7), st.floats(1e-4, 1.0), st.floats(0.25, 1.5), st.floats(0.5, 3.0), dtypes, seeds)
def test_lrn(shape, size, alpha, beta, k, dtype, seed):
    check_lrn(EMULATOR, shape, size, alpha, beta, k, dtype, seed)


@EXAMPLES
@given(st.tuples(st.integers(1, 40), st.integers(1, 9)), st.floats(1e-4, 1.0), st.floats(0.0, 0.99),
       st.floats(0.0, 1e-2), dtypes, seeds)
def test_sgd_update(shape, lr, momentum, weight_decay, dtype, seed):
    check_sgd_update(EMULATOR, shape, lr, momentum, weight_decay, dtype, seed)


def test_sgd_update_rejects_mismatched_arrays():
    param = np.zeros((3, 4))
    with pytest.raises(ValueError, match="sgd_update: grad has shape"):
        kernels.CUDA.sgd_update(param, np.zeros((4, 3)), np.zeros((3, 4)), 0.1, 0.9, 0.0)
    with pytest.raises(ValueError, match="same strides"):
        kernels.CUDA.sgd_update(param, np.zeros((3, 4)), np.zeros((4, 3)).T, 0.1, 0.9, 0.0)
