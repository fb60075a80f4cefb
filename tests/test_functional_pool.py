"""F.max_pool2d: forward against a loop-by-loop reference, gradients against central differences
(tie-free inputs), float32 against float64, and every memory layout."""
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minivgg.functional as F
from functional_helpers import assert_float32_close, float32_pair, forward_backward
from minivgg import Tensor, gradcheck
from strategies import distinct_values, in_layout, memory_layouts, pool_cases


def max_pool2d_reference(x, kernel_size, stride):
    """y[n, c, i, j] = max over u, v < k of x[n, c, s*i + u, s*j + v], one output element at a time."""
    n, c, h, w = x.shape
    ho = (h - kernel_size) // stride + 1
    wo = (w - kernel_size) // stride + 1
    y = np.zeros((n, c, ho, wo))
    for ni, ci, i, j in itertools.product(range(n), range(c), range(ho), range(wo)):
        y[ni, ci, i, j] = max(x[ni, ci, stride * i + u, stride * j + v]
                              for u in range(kernel_size) for v in range(kernel_size))
    return y


def max_pool_input_grad_reference(x, kernel_size, stride, dy):
    """dx: each dy[n, c, i, j] added to the one input that won window (i, j) (windows may overlap)."""
    dx = np.zeros_like(x)
    n, c, ho, wo = dy.shape
    for ni, ci, i, j in itertools.product(range(n), range(c), range(ho), range(wo)):
        window = [(stride * i + u, stride * j + v) for u in range(kernel_size) for v in range(kernel_size)]
        row, col = max(window, key=lambda rc: x[ni, ci, rc[0], rc[1]])
        dx[ni, ci, row, col] += dy[ni, ci, i, j]
    return dx


def pool(case):
    return lambda x: F.max_pool2d(x, case.kernel_size, case.stride)


@given(pool_cases())
def test_forward_matches_reference(case):
    y = pool(case)(Tensor(case.x))
    np.testing.assert_array_equal(y.data, max_pool2d_reference(case.x, case.kernel_size, case.stride))


@given(pool_cases())
def test_backward_routes_each_gradient_to_its_window_winner(case):
    y, (dx,) = forward_backward(pool(case), [case.x])
    dy = np.random.default_rng(0).standard_normal(y.shape)  # the gradient forward_backward sent back
    expected = max_pool_input_grad_reference(case.x, case.kernel_size, case.stride, dy)
    np.testing.assert_allclose(dx, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("side", [(4, 6), (5, 6), (4, 5)])
def test_2x2_windows_that_tile_the_input_and_ones_that_leave_a_row_route_alike(side):
    """Tiling windows write each input once (no zero fill); a leftover row or column must still get 0."""
    rng = np.random.default_rng(1)
    x = rng.permutation(2 * 3 * side[0] * side[1]).reshape(2, 3, *side).astype(np.float64)   # no ties
    y, (dx,) = forward_backward(lambda t: F.max_pool2d(t, 2, 2), [x])
    dy = np.random.default_rng(0).standard_normal(y.shape)
    np.testing.assert_array_equal(dx, max_pool_input_grad_reference(x, 2, 2, dy))


@given(pool_cases())
def test_gradients_match_central_differences(case):
    assert gradcheck(pool(case), Tensor(case.x, requires_grad=True))


@given(pool_cases())
def test_float32_forward_agrees_with_float64(case):
    (x32,), (x64,) = float32_pair(case.x)
    assert_float32_close(pool(case)(Tensor(x32)).data, pool(case)(Tensor(x64)).data)


@given(pool_cases(), memory_layouts)
def test_every_memory_layout_gives_the_same_result(case, layout):
    reference_y, (reference_dx,) = forward_backward(pool(case), [case.x])
    y, (dx,) = forward_backward(pool(case), [in_layout(case.x, layout)])
    np.testing.assert_array_equal(y, reference_y)
    np.testing.assert_array_equal(dx, reference_dx)
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous  # an NCHW view of NHWC memory


even_maps = st.tuples(st.integers(1, 3), st.integers(1, 3)).flatmap(
    lambda half: distinct_values((2, 3, 2 * half[0], 2 * half[1])))


@given(even_maps)
def test_vgg_pool_halves_the_map(x):
    """The VGG configuration: kernel 2, stride 2 (the default stride is the kernel size)."""
    y = F.max_pool2d(Tensor(x), 2)
    assert y.shape == (x.shape[0], x.shape[1], x.shape[2] // 2, x.shape[3] // 2)
    np.testing.assert_array_equal(y.data, max_pool2d_reference(x, 2, 2))
