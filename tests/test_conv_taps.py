"""'taps', the convolution of maps of one 2x2 tile, against the reference algorithm, im2col + GEMM.

Float64: forward, input gradient, weight and bias gradients within 1e-10 of
im2col, relative to the largest entry.  Float32: 'taps' makes the same
products as im2col without its zero ones, summed in another order, so its
rounding is of im2col's size; the bound is the one that test_winograd.py
derives for Winograd (2e-6 of the largest sum of magnitudes), which covers it.
"""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import minivgg.functional as F
from minivgg import Tensor, gradcheck
from minivgg.functions import conv as conv_module
from minivgg.functions.conv import choose_algorithm, taps_backward, taps_forward, use_algorithm

FLOAT64_RTOL = 1e-10
FLOAT32_RTOL = 2e-6


@st.composite
def one_tile_layers(draw, max_channels=7):
    """(x NCHW view of NHWC memory, w (O, C, 3, 3) in (O, 3, 3, C) memory, b, dy), maps 1x1 to 2x2, float64."""
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, max_channels)), draw(st.integers(1, max_channels))
    h, w = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    x = np.ascontiguousarray(rng.standard_normal((n, h, w, c))).transpose(0, 3, 1, 2)
    weight = np.ascontiguousarray(rng.standard_normal((o, 3, 3, c))).transpose(0, 3, 1, 2)
    dy = np.ascontiguousarray(rng.standard_normal((n, h, w, o))).transpose(0, 3, 1, 2)
    return x, weight, rng.standard_normal(o), dy


def conv_and_grads(algorithm, x, w, b, dy, input_grad=True):
    """y and the gradients through F.conv2d with ``algorithm`` forced."""
    with use_algorithm(algorithm):
        assert choose_algorithm(x.shape, w.shape, 1, 1) == algorithm
        tensors = [Tensor(x, requires_grad=input_grad), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)]
        y = F.conv2d(*tensors, padding=1)
        y.backward(dy)
    return [y.data] + [t.grad for t in tensors if t.requires_grad]


def relative_error(got, want, scale=None):
    scale = np.abs(want).max() if scale is None else scale
    return float(np.abs(np.asarray(got, np.float64) - want).max() / max(scale, 1e-300))


@given(one_tile_layers(), st.booleans())
def test_float64_forward_and_every_gradient_match_im2col(layer, input_grad):
    got, want = (conv_and_grads(a, *layer, input_grad=input_grad) for a in ("taps", "im2col"))
    assert len(got) == len(want) == (4 if input_grad else 3)
    for g, w in zip(got, want):
        assert g.shape == w.shape and relative_error(g, w) <= FLOAT64_RTOL


@given(one_tile_layers())
def test_outputs_and_input_gradients_are_nchw_views_of_nhwc_memory(layer):
    x, w, b, dy = layer
    y = taps_forward(x, w, b)
    dx, dw, db = taps_backward(dy, x, w)
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous and dx.transpose(0, 2, 3, 1).flags.c_contiguous
    assert dw.transpose(0, 2, 3, 1).flags.c_contiguous, "dW in the weight's (O, kh, kw, C) memory"
    assert taps_backward(dy, x, w, input_grad=False)[0] is None


@given(one_tile_layers(max_channels=4))
def test_float32_matches_float64_im2col_within_the_rounding_bound(layer):
    x, w, b, dy = (a.astype(np.float32) for a in layer)
    want = conv_and_grads("im2col", *(a.astype(np.float64) for a in (x, w, b, dy)))
    got = conv_and_grads("taps", x, w, b, dy)
    sums = conv_and_grads("im2col", *(np.abs(a).astype(np.float64) for a in (x, w, b, dy)))  # sums of magnitudes
    for g, wt, scale in zip(got, want, sums):
        assert g.dtype == np.float32 and relative_error(g, wt, np.abs(scale).max()) <= FLOAT32_RTOL


@given(one_tile_layers(max_channels=3))
def test_gradients_through_conv2d_with_taps_match_central_differences(layer):
    x, w, b, _ = layer
    x, w = np.ascontiguousarray(x), np.ascontiguousarray(w)   # gradcheck perturbs through a flat view: C order
    with use_algorithm("taps"):
        assert gradcheck(lambda *t: F.conv2d(*t, padding=1), *(Tensor(a, requires_grad=True) for a in (x, w, b)))


def test_a_2x2_map_makes_16_products_a_1x1_map_one(monkeypatch):
    """What 'taps' saves: one product per (output pixel, input pixel) pair, none with the zero padding."""
    calls = []

    def counting(a, b):
        calls.append((a.shape, b.shape))
        return a @ b
    monkeypatch.setattr(conv_module, "matmul", counting)
    w = np.ones((4, 3, 3, 3))
    taps_forward(np.ones((2, 3, 2, 2)), w)
    assert calls == [((2, 6), (6, 4))] * 8   # 4 outputs x 2 input rows, each row 2 pixels side by side
    calls.clear()
    taps_forward(np.ones((2, 3, 1, 1)), w)
    assert calls == [((2, 3), (3, 4))]
