"""Each CUDA twin, run on the CPU emulator, agrees with its NumPy twin.

The CUDA functions of minivgg.kernels.cuda take NumPy arrays here, so the
very same launch code and .cu source run through kernels/emulator.  Shapes
are tiny and blocks have 64 threads, so that a shape spans several blocks and
the whole file runs in seconds.  Agreement: relative error (max |a - b| over
max |b|) at most 1e-12 in float64 and 1e-5 in float32; masks and argmax
indices exactly equal.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minivgg.kernels import activation, conv, cuda, dropout, loss, lrn, pool, sgd

TOLERANCE = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
EXAMPLES = settings(max_examples=15)

dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2**32 - 1)
uint32s = st.integers(0, 2**32 - 1)


@pytest.fixture(autouse=True, scope="module")
def small_blocks():
    """64-thread blocks: tiny shapes still span several blocks."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cuda, "BLOCK", 64)
        yield


def assert_close(actual, expected):
    """Same shape and dtype, and relative error within the dtype's tolerance."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    if expected.size == 0:
        return
    scale = max(float(np.abs(expected).max()), np.finfo(expected.dtype).tiny)
    error = float(np.abs(actual.astype(np.float64) - expected).max()) / scale
    assert error <= TOLERANCE[expected.dtype], f"relative error {error:.3g}"


def random(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def nhwc_view(x):
    """The NCHW view of NHWC memory that the kernels pass between layers."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@st.composite
def conv_cases(draw):
    """(x shape, kh, kw, stride, padding) with at least one output pixel."""
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding, stride = draw(st.integers(0, 2)), draw(st.integers(1, 3))
    h = draw(st.integers(max(1, kh - 2 * padding), 7))
    w = draw(st.integers(max(1, kw - 2 * padding), 7))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 4)), h, w)
    return shape, kh, kw, stride, padding


@st.composite
def pool_cases(draw):
    """(x shape, kh, kw, stride) without padding; stride may be below the window."""
    kh, kw, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)),
             draw(st.integers(kh, 7)), draw(st.integers(kw, 7)))
    return shape, kh, kw, stride


# ---- convolution ---------------------------------------------------------------

@EXAMPLES
@given(conv_cases(), dtypes, seeds)
def test_im2col_and_col2im(case, dtype, seed):
    shape, kh, kw, stride, padding = case
    rng = np.random.default_rng(seed)
    x = random(rng, shape, dtype)
    cols = conv.im2col(x, kh, kw, stride, padding)
    assert_close(cuda.im2col(x, kh, kw, stride, padding), cols)
    dcols = random(rng, cols.shape, dtype)
    assert_close(cuda.col2im(dcols, shape, kh, kw, stride, padding),
                 conv.col2im(dcols, shape, kh, kw, stride, padding))


@EXAMPLES
@given(conv_cases(), st.integers(1, 5), st.booleans(), dtypes, seeds)
def test_conv2d_forward_and_backward(case, out_channels, with_bias, dtype, seed):
    shape, kh, kw, stride, padding = case
    rng = np.random.default_rng(seed)
    x = nhwc_view(random(rng, shape, dtype))
    w = random(rng, (out_channels, shape[1], kh, kw), dtype)
    b = random(rng, out_channels, dtype) if with_bias else None
    y, cols = cuda.conv2d_forward(x, w, b, stride, padding)
    y_ref, cols_ref = conv.conv2d_forward(x, w, b, stride, padding)
    assert_close(y, y_ref)
    assert_close(cols, cols_ref)
    dy = random(rng, y.shape, dtype)
    for got, expected in zip(cuda.conv2d_backward(dy, shape, cols, w, stride, padding),
                             conv.conv2d_backward(dy, shape, cols_ref, w, stride, padding)):
        assert_close(got, expected)


@EXAMPLES
@given(st.tuples(st.integers(1, 3), st.integers(1, 70), st.integers(1, 5), st.integers(1, 5)),
       dtypes, seeds)
def test_bias_grad(shape, dtype, seed):
    dy = random(np.random.default_rng(seed), shape, dtype)
    assert_close(cuda.bias_grad(dy), conv.bias_grad(dy))


# ---- max-pooling -----------------------------------------------------------------

@EXAMPLES
@given(pool_cases(), dtypes, seeds)
def test_max_pool_with_ties(case, dtype, seed):
    """Values from {-1, 0, 1} make ties common: both twins must pick the first maximum."""
    shape, kh, kw, stride = case
    rng = np.random.default_rng(seed)
    x = nhwc_view(rng.integers(-1, 2, shape).astype(dtype))
    y, argmax = cuda.max_pool_forward(x, kh, kw, stride)
    y_ref, argmax_ref = pool.max_pool_forward(x, kh, kw, stride)
    assert_close(y, y_ref)
    assert argmax.dtype == np.int32 and np.array_equal(argmax, argmax_ref)
    dy = random(rng, y.shape, dtype)
    assert_close(cuda.max_pool_backward(dy, argmax, shape, kh, kw, stride),
                 pool.max_pool_backward(dy, argmax_ref, shape, kh, kw, stride))


# ---- ReLU ------------------------------------------------------------------------------

@EXAMPLES
@given(st.tuples(*[st.integers(1, 4)] * 4), st.booleans(), dtypes, seeds)
def test_relu(shape, as_nhwc_view, dtype, seed):
    rng = np.random.default_rng(seed)
    x, dy = random(rng, shape, dtype), random(rng, shape, dtype)
    if as_nhwc_view:
        x = nhwc_view(x)
    y = cuda.relu_forward(x)
    assert_close(y, activation.relu_forward(x))
    assert y.strides == x.strides, "the output keeps the memory layout of the input"
    assert_close(cuda.relu_backward(dy, y), activation.relu_backward(dy, y))


# ---- dropout -------------------------------------------------------------------------

@EXAMPLES
@given(st.sampled_from([(3, 50), (2, 3, 4, 5), (1, 7)]), st.floats(0.0, 0.95),
       seeds, uint32s, uint32s, st.integers(0, 2**32 - 8), dtypes)
def test_dropout_masks_are_identical(shape, p, seed, step, layer, sample_offset, dtype):
    x = random(np.random.default_rng(seed), shape, dtype)
    y, mask = cuda.dropout_forward(x, p, seed, step, layer, sample_offset)
    y_ref, mask_ref = dropout.dropout_forward(x, p, seed, step, layer, sample_offset)
    assert mask.dtype == np.bool_ and np.array_equal(mask, mask_ref)
    assert_close(y, y_ref)
    assert_close(cuda.dropout_backward(x, mask, p), dropout.dropout_backward(x, mask_ref, p))


# ---- softmax cross-entropy -----------------------------------------------------------

@EXAMPLES
@given(st.integers(1, 5), st.integers(1, 150), st.floats(0.1, 10.0), st.floats(-3.0, 3.0), dtypes, seeds)
def test_softmax_cross_entropy(n, k, spread, dloss, dtype, seed):
    """k up to 150 with 64-thread blocks: each thread reduces several columns."""
    rng = np.random.default_rng(seed)
    z = (random(rng, (n, k), dtype) * spread).astype(dtype)
    labels = rng.integers(0, k, n)
    loss_value, probs = cuda.softmax_cross_entropy_forward(z, labels)
    loss_ref, probs_ref = loss.softmax_cross_entropy_forward(z, labels)
    assert loss_value.shape == ()
    assert_close(loss_value, loss_ref)
    assert_close(probs, probs_ref)
    assert_close(cuda.softmax_cross_entropy_backward(probs, labels, dloss),
                 loss.softmax_cross_entropy_backward(probs_ref, labels, dloss))


# ---- LRN -------------------------------------------------------------------------------

@EXAMPLES
@given(st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 3), st.integers(1, 3)),
       st.integers(1, 7), st.floats(1e-4, 1.0), st.floats(0.25, 1.5), st.floats(0.5, 3.0), dtypes, seeds)
def test_lrn(shape, size, alpha, beta, k, dtype, seed):
    rng = np.random.default_rng(seed)
    x, dy = nhwc_view(random(rng, shape, dtype)), random(rng, shape, dtype)
    y, d = cuda.lrn_forward(x, size, alpha, beta, k)
    y_ref, d_ref = lrn.lrn_forward(x, size, alpha, beta, k)
    assert_close(y, y_ref)
    assert_close(d, d_ref)
    assert_close(cuda.lrn_backward(dy, x, d, size, alpha, beta),
                 lrn.lrn_backward(dy, x, d_ref, size, alpha, beta))


# ---- SGD -------------------------------------------------------------------------------

@EXAMPLES
@given(st.tuples(st.integers(1, 40), st.integers(1, 9)), st.floats(1e-4, 1.0), st.floats(0.0, 0.99),
       st.floats(0.0, 1e-2), dtypes, seeds)
def test_sgd_update(shape, lr, momentum, weight_decay, dtype, seed):
    rng = np.random.default_rng(seed)
    param, grad, velocity = (random(rng, shape, dtype) for _ in range(3))
    param_ref, velocity_ref, grad_ref = param.copy(), velocity.copy(), grad.copy()
    grad_before = grad.copy()
    assert cuda.sgd_update(param, grad, velocity, lr, momentum, weight_decay) is None
    sgd.sgd_update(param_ref, grad_ref, velocity_ref, lr, momentum, weight_decay)
    assert_close(velocity, velocity_ref)
    assert_close(param, param_ref)
    assert np.array_equal(grad, grad_before), "the CUDA twin leaves grad alone"


def test_sgd_update_rejects_mismatched_arrays():
    param = np.zeros((3, 4))
    with pytest.raises(ValueError, match="sgd_update: grad has shape"):
        cuda.sgd_update(param, np.zeros((4, 3)), np.zeros((3, 4)), 0.1, 0.9, 0.0)
    with pytest.raises(ValueError, match="same strides"):
        cuda.sgd_update(param, np.zeros((3, 4)), np.zeros((4, 3)).T, 0.1, 0.9, 0.0)
