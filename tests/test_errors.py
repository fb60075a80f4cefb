"""Bad input to minivgg.functional: a ValueError or TypeError that names the function and what it got."""
import re

import numpy as np
import pytest

import minivgg.functional as F
from minivgg import Tensor


def t(*shape, dtype=np.float64):
    return Tensor(np.zeros(shape, dtype=dtype))


def shape_text(shape):
    return re.escape(str(tuple(shape)))


# --- wrong number of dimensions ----------------------------------------------------------------------

@pytest.mark.parametrize("call, name, shape", [
    (lambda: F.conv2d(t(3, 5, 5), t(2, 3, 3, 3)), "conv2d", (3, 5, 5)),
    (lambda: F.conv2d(t(1, 3, 5, 5), t(3, 3, 3)), "conv2d", (3, 3, 3)),
    (lambda: F.max_pool2d(t(2, 4, 4)), "max_pool2d", (2, 4, 4)),
    (lambda: F.local_response_norm(t(2, 3)), "local_response_norm", (2, 3)),
    (lambda: F.linear(t(2, 3, 4), t(5, 4)), "linear", (2, 3, 4)),
    (lambda: F.linear(t(2, 4), t(5, 4, 1)), "linear", (5, 4, 1)),
    (lambda: F.softmax_cross_entropy(t(5), np.zeros(5, dtype=int)), "softmax_cross_entropy", (5,)),
    (lambda: F.flatten(t(5)), "flatten", (5,)),
])
def test_wrong_ndim_names_the_function_and_the_shape(call, name, shape):
    with pytest.raises(ValueError, match=rf"^{name}: expected .* dimensions .*got shape {shape_text(shape)}"):
        call()


# --- convolution ---------------------------------------------------------------------------------------

def test_conv2d_channel_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"^conv2d: input has 3 channels but weight expects 1 "
                                         r"\(input shape \(2, 3, 5, 5\), weight shape \(64, 1, 3, 3\)\)"):
        F.conv2d(t(2, 3, 5, 5), t(64, 1, 3, 3))


@pytest.mark.parametrize("x_shape, w_shape, padding", [
    ((1, 1, 2, 2), (1, 1, 3, 3), 0),
    ((1, 1, 1, 5), (1, 1, 5, 5), 1),  # 1 + 2*1 = 3 rows < 5
    ((1, 2, 5, 5), (1, 2, 7, 7), 0),  # FC-as-conv on a map too small
])
def test_conv2d_kernel_larger_than_the_padded_input(x_shape, w_shape, padding):
    with pytest.raises(ValueError, match=rf"^conv2d: kernel {shape_text(w_shape[2:])} is larger than the padded "
                                         rf"input .*input shape {shape_text(x_shape)}, padding {padding}"):
        F.conv2d(t(*x_shape), t(*w_shape), padding=padding)


@pytest.mark.parametrize("b_shape", [(3,), (4, 1), (1,), ()])
def test_conv2d_bad_bias_shape(b_shape):
    with pytest.raises(ValueError, match=rf"^conv2d: expected a bias of shape \(4,\), got {shape_text(b_shape)}"):
        F.conv2d(t(1, 2, 5, 5), t(4, 2, 3, 3), t(*b_shape))


@pytest.mark.parametrize("stride, padding", [(0, 0), (1, -1), (1.0, 0), (2, 0.5)])
def test_conv2d_bad_stride_or_padding(stride, padding):
    with pytest.raises(ValueError, match=r"^conv2d: expected an integer stride >= 1 and padding >= 0, got stride="):
        F.conv2d(t(1, 2, 5, 5), t(4, 2, 3, 3), stride=stride, padding=padding)


# --- mixed dtypes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("w_as", [Tensor, np.asarray], ids=["tensor", "ndarray"])
def test_conv2d_float32_input_with_float64_weight(w_as):
    """Whether the weight is a Tensor or a plain array, nothing is converted silently."""
    with pytest.raises(TypeError, match=r"^conv2d: all inputs must have the same dtype, got \['float32', 'float64'\]"):
        F.conv2d(t(1, 2, 5, 5, dtype=np.float32), w_as(np.zeros((4, 2, 3, 3))))


def test_conv2d_float64_bias_with_float32_input_and_weight():
    with pytest.raises(TypeError, match=r"^conv2d: all inputs must have the same dtype"):
        F.conv2d(t(1, 2, 5, 5, dtype=np.float32), t(4, 2, 3, 3, dtype=np.float32), t(4))


def test_linear_mixed_dtypes():
    with pytest.raises(TypeError, match=r"^linear: all inputs must have the same dtype, got \['float32', 'float64'\]"):
        F.linear(t(2, 3), t(4, 3, dtype=np.float32))


def test_arithmetic_mixed_dtypes():
    with pytest.raises(TypeError, match=r"all inputs must have the same dtype, got \['float32', 'float64'\]"):
        Tensor(np.ones(3, dtype=np.float32), requires_grad=True) * np.ones(3)


# --- linear --------------------------------------------------------------------------------------------

def test_linear_feature_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"^linear: input has 512 features but weight expects 4096 "
                                         r"\(input shape \(8, 512\), weight shape \(10, 4096\)\)"):
        F.linear(t(8, 512), t(10, 4096))


def test_linear_bad_bias_shape():
    with pytest.raises(ValueError, match=r"^linear: expected a bias of shape \(10,\), got \(5,\)"):
        F.linear(t(8, 3), t(10, 3), t(5))


# --- softmax cross-entropy -----------------------------------------------------------------------------

@pytest.mark.parametrize("labels", [np.array([0.0, 1.0]), np.array([True, False]), ["a", "b"]])
def test_loss_labels_that_are_not_integers(labels):
    with pytest.raises(TypeError, match=r"^softmax_cross_entropy: expected integer labels, got dtype"):
        F.softmax_cross_entropy(t(2, 3), labels)


@pytest.mark.parametrize("labels, low, high", [([0, 3], 0, 3), ([-1, 2], -1, 2), ([7, 7], 7, 7)])
def test_loss_labels_out_of_range(labels, low, high):
    with pytest.raises(ValueError, match=rf"^softmax_cross_entropy: labels must lie in \[0, 3\), "
                                         rf"got values from {low} to {high}"):
        F.softmax_cross_entropy(t(2, 3), np.array(labels))


def test_loss_labels_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"^softmax_cross_entropy: expected labels of shape \(2,\) for logits of "
                                         r"shape \(2, 3\), got \(3,\)"):
        F.softmax_cross_entropy(t(2, 3), np.array([0, 1, 2]))


# --- pooling, LRN, dropout -----------------------------------------------------------------------------

def test_max_pool_kernel_larger_than_the_input():
    with pytest.raises(ValueError, match=r"^max_pool2d: kernel_size 3 is larger than the input's \(2, 5\) "
                                         r"spatial size \(input shape \(1, 4, 2, 5\)\)"):
        F.max_pool2d(t(1, 4, 2, 5), 3)


@pytest.mark.parametrize("kernel_size, stride", [(0, 1), (2, 0), (2.0, 2)])
def test_max_pool_bad_kernel_or_stride(kernel_size, stride):
    with pytest.raises(ValueError, match=r"^max_pool2d: expected integers kernel_size >= 1 and stride >= 1"):
        F.max_pool2d(t(1, 1, 4, 4), kernel_size, stride)


@pytest.mark.parametrize("options, message", [
    (dict(size=0), r"expected an integer size >= 1, got 0"),
    (dict(size=2.5), r"expected an integer size >= 1, got 2.5"),
    (dict(k=0.0), r"expected k > 0 and alpha >= 0, got k=0.0"),
    (dict(alpha=-1.0), r"expected k > 0 and alpha >= 0, got k=2.0, alpha=-1.0"),
])
def test_lrn_bad_parameters(options, message):
    with pytest.raises(ValueError, match=rf"^local_response_norm: {message}"):
        F.local_response_norm(t(1, 3, 2, 2), **options)


@pytest.mark.parametrize("p", [1.0, 1.5, -0.1, float("nan")])
def test_dropout_bad_p(p):
    with pytest.raises(ValueError, match=rf"^dropout: expected 0 <= p < 1, got p={p}"):
        F.dropout(t(2, 3), p=p)


@pytest.mark.parametrize("key, value", [("seed", -1), ("step", 2 ** 32), ("layer", 1.5), ("sample_offset", "0")])
def test_dropout_bad_counters(key, value):
    with pytest.raises(ValueError, match=rf"^dropout: expected {key} to be an integer in \[0, 2\*\*32\), "
                                         rf"got {re.escape(repr(value))}"):
        F.dropout(t(2, 3), **{key: value})
