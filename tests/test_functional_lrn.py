"""F.local_response_norm: forward against a loop-by-loop reference (window sizes 1-7, even ones
included), gradients against central differences, float32 against float64, every memory layout."""
import itertools

import numpy as np
from hypothesis import given

import minivgg.functional as F
from functional_helpers import assert_float32_close, float32_pair, forward_backward
from minivgg import Tensor, gradcheck
from strategies import in_layout, lrn_cases, memory_layouts


def lrn_reference(x, size, alpha, beta, k):
    """y[n, c, h, w] = x[n, c, h, w] / (k + alpha * sum_{c'} x[n, c', h, w]**2)**beta, the sum over the
    channels c - size//2 .. c + (size-1)//2 that exist (size 5: c-2..c+2; size 4: c-2..c+1)."""
    n, channels, height, width = x.shape
    y = np.empty_like(x)
    for ni, c, h, w in itertools.product(range(n), range(channels), range(height), range(width)):
        first, last = max(0, c - size // 2), min(channels - 1, c + (size - 1) // 2)
        energy = sum(x[ni, cc, h, w] ** 2 for cc in range(first, last + 1))
        y[ni, c, h, w] = x[ni, c, h, w] / (k + alpha * energy) ** beta
    return y


def lrn(case):
    return lambda x: F.local_response_norm(x, size=case.size, alpha=case.alpha, beta=case.beta, k=case.k)


@given(lrn_cases())
def test_forward_matches_reference(case):
    y = lrn(case)(Tensor(case.x)).data
    np.testing.assert_allclose(y, lrn_reference(case.x, case.size, case.alpha, case.beta, case.k),
                               rtol=1e-12, atol=1e-14)


@given(lrn_cases())
def test_gradients_match_central_differences(case):
    assert gradcheck(lrn(case), Tensor(case.x, requires_grad=True))


@given(lrn_cases())
def test_float32_forward_agrees_with_float64(case):
    (x32,), (x64,) = float32_pair(case.x)
    assert_float32_close(lrn(case)(Tensor(x32)).data, lrn(case)(Tensor(x64)).data)


@given(lrn_cases(), memory_layouts)
def test_every_memory_layout_gives_the_same_result(case, layout):
    reference_y, (reference_dx,) = forward_backward(lrn(case), [case.x])
    y, (dx,) = forward_backward(lrn(case), [in_layout(case.x, layout)])
    np.testing.assert_allclose(y, reference_y, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dx, reference_dx, rtol=1e-12, atol=1e-14)


def test_krizhevsky_settings_on_a_known_value():
    """k=2, n=5, alpha=1e-4, beta=0.75 (the paper's A-LRN): one channel of 3s -> 3 / (2 + 9e-4)**0.75."""
    x = np.full((1, 1, 1, 1), 3.0)
    y = F.local_response_norm(Tensor(x)).data
    np.testing.assert_allclose(y, 3.0 / (2.0 + 1e-4 * 9.0) ** 0.75, rtol=1e-15)
