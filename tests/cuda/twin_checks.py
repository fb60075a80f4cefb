"""One check per CUDA twin, run on the emulator (NumPy arrays) or on a GPU (CuPy arrays).

Each ``check_*`` function builds inputs with NumPy, runs the NumPy twin
(``kernels.NUMPY``) on them, moves them to a ``Device``, runs the CUDA twin
(``kernels.CUDA``) there and compares:
relative error (max |a - b| over max |b|) at most 1e-12 in float64 and 1e-5
in float32; masks and argmax indices exactly equal.  On a GPU, results that
come out of long sums (cuBLAS products, atomics) use the looser ``sum_tolerance``
because the GPU adds in another order.
"""
import numpy as np
from hypothesis import strategies as st

from minivgg import kernels
from minivgg.functions.conv import (WINOGRAD_TRANSFORMS, conv2d_backward, conv2d_forward, winograd_weight_grad,
                                    winograd_forward, winograd_input_grad, winograd_input_transform)

numpy_twin, cuda_twin = kernels.NUMPY, kernels.CUDA

TOLERANCE = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


class Device:
    """Where the CUDA twins run: ``numpy`` (the emulator) or ``cupy`` (a GPU)."""

    def __init__(self, xp, sum_tolerance=TOLERANCE):
        self.xp, self.sum_tolerance = xp, sum_tolerance

    def put(self, a):
        """``a`` on the device, with the same memory order of axes."""
        if self.xp is np:
            return a
        slowest_first = sorted(range(a.ndim), key=lambda axis: a.strides[axis], reverse=True)
        on_device = self.xp.asarray(np.ascontiguousarray(a.transpose(slowest_first)))
        return on_device.transpose(np.argsort(slowest_first).tolist())

    def get(self, a):
        """``a`` as a NumPy array."""
        return a if self.xp is np else self.xp.asnumpy(a)

    def kernels(self):
        """A block in which ops on this device's arrays run the CUDA twins."""
        return kernels.use(kernels.EMULATED if self.xp is np else kernels.CUDA)


EMULATOR = Device(np)


def assert_close(device, actual, expected, sums=False):
    """Same shape and dtype, and relative error within tolerance (``sums``: a long reduction)."""
    actual, expected = np.asarray(device.get(actual)), np.asarray(expected)
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    if expected.size == 0:
        return
    tolerance = (device.sum_tolerance if sums else TOLERANCE)[expected.dtype]
    scale = max(float(np.abs(expected).max()), np.finfo(expected.dtype).tiny)
    error = float(np.abs(actual.astype(np.float64) - expected).max()) / scale
    assert error <= tolerance, f"relative error {error:.3g} > {tolerance:g}"


def random(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def nhwc_view(x):
    """The NCHW view of NHWC memory that the kernels pass between layers."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


# ---- strategies -------------------------------------------------------------------

dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2**32 - 1)


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
def winograd_cases(draw):
    """(x shape, out channels) of a 3x3, stride-1, padding-1 convolution: sides 1 to 9, odd and even,
    multiples of 2 and 4 and neither."""
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    return shape, draw(st.integers(1, 4))


@st.composite
def pool_cases(draw):
    """(x shape, kh, kw, stride) without padding; stride may be below the window."""
    kh, kw, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)),
             draw(st.integers(kh, 7)), draw(st.integers(kw, 7)))
    return shape, kh, kw, stride


# ---- the checks ----------------------------------------------------------------------

def check_im2col_and_col2im(device, case, dtype, seed):
    shape, kh, kw, stride, padding = case
    rng = np.random.default_rng(seed)
    x = random(rng, shape, dtype)
    cols = numpy_twin.im2col(x, kh, kw, stride, padding)
    assert_close(device, cuda_twin.im2col(device.put(x), kh, kw, stride, padding), cols)
    dcols = random(rng, cols.shape, dtype)
    assert_close(device, cuda_twin.col2im(device.put(dcols), shape, kh, kw, stride, padding),
                 numpy_twin.col2im(dcols, shape, kh, kw, stride, padding))


def check_conv2d(device, case, out_channels, with_bias, dtype, seed):
    shape, kh, kw, stride, padding = case
    rng = np.random.default_rng(seed)
    x = nhwc_view(random(rng, shape, dtype))
    w = random(rng, (out_channels, shape[1], kh, kw), dtype)
    b = random(rng, out_channels, dtype) if with_bias else None
    y_ref, cols_ref = conv2d_forward(x, w, b, stride, padding)
    dy = random(rng, y_ref.shape, dtype)
    expected_grads = conv2d_backward(dy, shape, cols_ref, w, stride, padding)
    with device.kernels():
        y, cols = conv2d_forward(device.put(x), device.put(w), None if b is None else device.put(b),
                                 stride, padding)
        got = conv2d_backward(device.put(dy), shape, cols, device.put(w), stride, padding)
    assert_close(device, y, y_ref, sums=True)
    assert_close(device, cols, cols_ref)
    for actual, expected in zip(got, expected_grads):
        assert_close(device, actual, expected, sums=True)


def check_winograd(device, case, dtype, seed, algorithm="winograd"):
    """The two transforms of ``algorithm`` ('winograd' or 'winograd4') alone, then forward and dx through them
    (and for 'winograd4' its output gradient's transform and the weight gradient through it).

    F(2x2, 3x3)'s twins make the same additions in the same order; F(4x4, 3x3)'s
    NumPy twin sums through one GEMM with the Kronecker product, its CUDA twin
    one axis at a time, so they agree to rounding (TOLERANCE) and not bit for bit.
    """
    shape, out_channels = case
    n, c, h, w = shape
    transforms = WINOGRAD_TRANSFORMS[algorithm]
    input_transform, output_transform = transforms.input_transform, transforms.output_transform
    rng = np.random.default_rng(seed)
    x = nhwc_view(random(rng, shape, dtype))
    v = getattr(numpy_twin, input_transform)(x)
    assert_close(device, getattr(cuda_twin, input_transform)(device.put(x)), v)
    m = random(rng, (v.shape[0], v.shape[1], out_channels), dtype)
    y_shape = (n, out_channels, h, w)
    assert_close(device, getattr(cuda_twin, output_transform)(device.put(m), y_shape),
                 getattr(numpy_twin, output_transform)(m, y_shape))
    weight, bias = random(rng, (out_channels, c, 3, 3), dtype), random(rng, out_channels, dtype)
    dy = nhwc_view(random(rng, y_shape, dtype))
    y_ref, dx_ref = winograd_forward(x, weight, bias, algorithm), winograd_input_grad(dy, weight, algorithm)
    with device.kernels():
        y = winograd_forward(device.put(x), device.put(weight), device.put(bias), algorithm)
        dx = winograd_input_grad(device.put(dy), device.put(weight), algorithm)
    assert_close(device, y, y_ref, sums=True)
    assert_close(device, dx, dx_ref, sums=True)
    # the weight gradient: the output gradient's transform, then through it
    grad_transform = transforms.grad_transform
    assert_close(device, getattr(cuda_twin, grad_transform)(device.put(dy)), getattr(numpy_twin, grad_transform)(dy))
    dw_ref = winograd_weight_grad(dy, v, algorithm)
    with device.kernels():
        dw = winograd_weight_grad(device.put(dy), winograd_input_transform(device.put(x), algorithm), algorithm)
    assert_close(device, dw, dw_ref, sums=True)
    if algorithm == "winograd4":   # its input gradient by the adjoint of the forward
        m_in = random(rng, (v.shape[0], v.shape[1], c), dtype)
        assert_close(device, cuda_twin.winograd4_input_transform_adjoint(device.put(m_in), x.shape),
                     numpy_twin.winograd4_input_transform_adjoint(m_in, x.shape), sums=True)


def check_bias_grad(device, shape, dtype, seed):
    dy = nhwc_view(random(np.random.default_rng(seed), shape, dtype))
    assert_close(device, cuda_twin.bias_grad(device.put(dy)), numpy_twin.bias_grad(dy), sums=True)


def check_max_pool(device, case, dtype, seed):
    """Values from {-1, 0, 1} make ties common: both twins must pick the first maximum."""
    shape, kh, kw, stride = case
    rng = np.random.default_rng(seed)
    x = nhwc_view(rng.integers(-1, 2, shape).astype(dtype))
    y, argmax = cuda_twin.max_pool_forward(device.put(x), kh, kw, stride)
    y_ref, argmax_ref = numpy_twin.max_pool_forward(x, kh, kw, stride)
    assert_close(device, y, y_ref)
    assert argmax.dtype == np.int32 and np.array_equal(device.get(argmax), argmax_ref)
    assert_close(device, cuda_twin.max_pool_values(device.put(x), kh, kw, stride), y_ref)
    assert np.array_equal(numpy_twin.max_pool_values(x, kh, kw, stride), y_ref)
    dy = random(rng, y_ref.shape, dtype)
    assert_close(device, cuda_twin.max_pool_backward(device.put(dy), argmax, shape, kh, kw, stride),
                 numpy_twin.max_pool_backward(dy, argmax_ref, shape, kh, kw, stride))


def check_relu(device, shape, as_nhwc_view, dtype, seed):
    rng = np.random.default_rng(seed)
    x, dy = random(rng, shape, dtype), random(rng, shape, dtype)
    if as_nhwc_view:
        x = nhwc_view(x)
    y = cuda_twin.relu_forward(device.put(x))
    assert_close(device, y, numpy_twin.relu_forward(x))
    assert y.strides == device.put(x).strides, "the output keeps the memory layout of the input"
    assert_close(device, cuda_twin.relu_backward(device.put(dy), y),
                 numpy_twin.relu_backward(dy, numpy_twin.relu_forward(x)))


def check_dropout(device, shape, p, seed, step, layer, sample_offset, dtype):
    x = random(np.random.default_rng(seed), shape, dtype)
    y, mask = cuda_twin.dropout_forward(device.put(x), p, seed, step, layer, sample_offset)
    y_ref, mask_ref = numpy_twin.dropout_forward(x, p, seed, step, layer, sample_offset)
    assert mask.dtype == np.bool_ and np.array_equal(device.get(mask), mask_ref)
    assert_close(device, y, y_ref)
    assert_close(device, cuda_twin.dropout_backward(device.put(x), mask, p),
                 numpy_twin.dropout_backward(x, mask_ref, p))


def check_softmax_cross_entropy(device, n, k, spread, dloss, dtype, seed):
    rng = np.random.default_rng(seed)
    z = (random(rng, (n, k), dtype) * spread).astype(dtype)
    labels = rng.integers(0, k, n)
    loss_value, probs = cuda_twin.softmax_cross_entropy_forward(device.put(z), device.put(labels))
    loss_ref, probs_ref = numpy_twin.softmax_cross_entropy_forward(z, labels)
    assert loss_value.shape == ()
    assert_close(device, loss_value, loss_ref, sums=True)
    assert_close(device, probs, probs_ref, sums=True)
    assert_close(device, cuda_twin.softmax_cross_entropy_backward(probs, device.put(labels), dloss),
                 numpy_twin.softmax_cross_entropy_backward(probs_ref, labels, dloss), sums=True)


def check_lrn(device, shape, size, alpha, beta, k, dtype, seed):
    rng = np.random.default_rng(seed)
    x, dy = nhwc_view(random(rng, shape, dtype)), random(rng, shape, dtype)
    y, d = cuda_twin.lrn_forward(device.put(x), size, alpha, beta, k)
    y_ref, d_ref = numpy_twin.lrn_forward(x, size, alpha, beta, k)
    assert_close(device, y, y_ref)
    assert_close(device, d, d_ref)
    assert_close(device, cuda_twin.lrn_backward(device.put(dy), device.put(x), d, size, alpha, beta),
                 numpy_twin.lrn_backward(dy, x, d_ref, size, alpha, beta))


def check_sgd_update(device, shape, lr, momentum, weight_decay, dtype, seed):
    rng = np.random.default_rng(seed)
    param, grad, velocity = (random(rng, shape, dtype) for _ in range(3))
    on_device = [device.put(a.copy()) for a in (param, grad, velocity)]
    assert cuda_twin.sgd_update(*on_device, lr, momentum, weight_decay) is None
    on_host = [a.copy() for a in (param, grad, velocity)]
    assert numpy_twin.sgd_update(*on_host, lr, momentum, weight_decay) is None
    assert_close(device, on_device[2], on_host[2])
    assert_close(device, on_device[0], on_host[0])
    for twin in (device.get(on_device[1]), on_host[1]):
        assert np.array_equal(twin, grad), "both twins only read grad"
