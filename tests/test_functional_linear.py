"""F.linear and F.flatten: forwards against loop-by-loop references, gradients against central
differences; flatten keeps PyTorch's NCHW order whatever the memory layout."""
import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import minivgg.functional as F
from functional_helpers import forward_backward
from minivgg import Tensor, gradcheck
from strategies import in_layout, linear_cases, memory_layouts, nchw_shapes, values


def linear_reference(x, w, b):
    """y[n, o] = b[o] + sum_i x[n, i] * w[o, i]."""
    n, fan_in = x.shape
    y = np.zeros((n, w.shape[0]))
    for ni, o in itertools.product(range(n), range(w.shape[0])):
        y[ni, o] = (0.0 if b is None else b[o]) + sum(x[ni, i] * w[o, i] for i in range(fan_in))
    return y


def inputs(case):
    return [case.x, case.w] + ([] if case.b is None else [case.b])


def linear(x, w, *b):
    return F.linear(x, w, b[0] if b else None)


@given(linear_cases())
def test_linear_forward_matches_reference(case):
    y = linear(*map(Tensor, inputs(case))).data
    np.testing.assert_allclose(y, linear_reference(case.x, case.w, case.b), rtol=1e-12, atol=1e-12)


@given(linear_cases())
def test_linear_gradients_match_central_differences(case):
    assert gradcheck(linear, *[Tensor(a, requires_grad=True) for a in inputs(case)])


@given(linear_cases())
def test_linear_float32_stays_float32(case):
    y = linear(*[Tensor(a.astype(np.float32)) for a in inputs(case)])
    assert y.dtype == np.float32


def flatten_reference(x):
    """out[n, (c*H + h)*W + w] = x[n, c, h, w]."""
    n, c, h, w = x.shape
    out = np.empty((n, c * h * w))
    for ni, ci, hi, wi in itertools.product(range(n), range(c), range(h), range(w)):
        out[ni, (ci * h + hi) * w + wi] = x[ni, ci, hi, wi]
    return out


@given(nchw_shapes().flatmap(values), memory_layouts)
def test_flatten_forward_matches_reference_in_every_layout(x, layout):
    np.testing.assert_array_equal(F.flatten(Tensor(in_layout(x, layout))).data, flatten_reference(x))


@given(nchw_shapes().flatmap(values))
def test_flatten_gradients_match_central_differences(x):
    assert gradcheck(F.flatten, Tensor(x, requires_grad=True))


@given(nchw_shapes().flatmap(values), memory_layouts)
def test_flatten_then_linear_backward_in_every_layout(x, layout):
    w = np.random.default_rng(1).standard_normal((3, int(np.prod(x.shape[1:]))))

    def flat_linear(x, w):
        return F.linear(F.flatten(x), w)

    reference_y, reference_grads = forward_backward(flat_linear, [x, w])
    y, grads = forward_backward(flat_linear, [in_layout(x, layout), w])
    np.testing.assert_allclose(y, reference_y, rtol=1e-13, atol=1e-13)
    for grad, reference in zip(grads, reference_grads):
        np.testing.assert_allclose(grad, reference, rtol=1e-13, atol=1e-13)


def test_flatten_of_an_empty_batch_keeps_the_feature_width():
    x = Tensor(np.zeros((0, 3, 2, 5), np.float32), requires_grad=True)
    y = F.flatten(x)
    assert y.shape == (0, 30) and y.dtype == np.float32
    y.backward(np.zeros((0, 30), np.float32))
    assert x.grad.shape == (0, 3, 2, 5)


@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 40), st.booleans(), st.integers(0, 2 ** 32 - 1))
def test_a_forward_without_backward_gives_the_recorded_forwards_values(n, fan_in, fan_out, bias, seed):
    """Evaluation with at least 8 outputs per row of x computes y.T = w @ x.T
    (``minivgg/functions/linear.py``): the same sums, as another product; its output is then the
    transposed view of that product."""
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((n, fan_in)), rng.standard_normal((fan_out, fan_in)), rng.standard_normal(fan_out)
    arrays = [x, w] + ([b] if bias else [])
    evaluated = linear(*map(Tensor, arrays)).data
    recorded = linear(Tensor(x, requires_grad=True), *map(Tensor, arrays[1:])).data
    np.testing.assert_allclose(evaluated, recorded, rtol=1e-12, atol=1e-12)
    transposed = fan_out >= 8 * n
    assert (evaluated.T if transposed else evaluated).flags.c_contiguous and recorded.flags.c_contiguous
