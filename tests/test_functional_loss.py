"""F.softmax_cross_entropy: forward against the definition, gradients against central differences,
float32 against float64, and stability for large logits."""
import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import minivgg.functional as F
from functional_helpers import assert_float32_close, float32_pair
from minivgg import Tensor, gradcheck
from strategies import loss_cases


def softmax_cross_entropy_reference(logits, labels):
    """(1/N) sum_n -log( exp(z[n, t_n]) / sum_k exp(z[n, k]) ), with math.exp and math.log."""
    total = 0.0
    for row, label in zip(logits.tolist(), labels.tolist()):
        total += -math.log(math.exp(row[label]) / sum(math.exp(z) for z in row))
    return total / len(labels)


@given(loss_cases())
def test_forward_matches_reference(case):
    loss = F.softmax_cross_entropy(Tensor(case.logits), case.labels)
    assert loss.shape == () and loss.dtype == np.float64
    np.testing.assert_allclose(loss.item(), softmax_cross_entropy_reference(case.logits, case.labels),
                               rtol=1e-12, atol=1e-13)


@given(loss_cases(), st.sampled_from([1.0, 2.5, -0.5]))
def test_gradients_match_central_differences(case, weight):
    """``weight`` != 1 makes the loss's backward receive an upstream gradient other than 1."""
    assert gradcheck(lambda z: F.softmax_cross_entropy(z, case.labels) * weight,
                     Tensor(case.logits, requires_grad=True))


@given(loss_cases())
def test_gradient_is_softmax_minus_onehot_over_n(case):
    z = Tensor(case.logits, requires_grad=True)
    F.softmax_cross_entropy(z, case.labels).backward()
    n, classes = case.logits.shape
    expected = np.zeros((n, classes))
    for i in range(n):
        row = [math.exp(v) for v in case.logits[i]]
        for j in range(classes):
            expected[i, j] = (row[j] / sum(row) - (j == case.labels[i])) / n
    np.testing.assert_allclose(z.grad, expected, rtol=1e-12, atol=1e-14)


@given(loss_cases())
def test_float32_forward_agrees_with_float64(case):
    (z32,), (z64,) = float32_pair(case.logits)
    loss32 = F.softmax_cross_entropy(Tensor(z32), case.labels).data
    loss64 = F.softmax_cross_entropy(Tensor(z64), case.labels).data
    # the loss is a difference of terms as large as the logits: rounding is relative to them
    assert_float32_close(loss32, loss64, scale=max(1.0, np.abs(z64).max()))


@given(loss_cases(), st.sampled_from([1e3, -1e3, 1e5]))
def test_large_logits_do_not_overflow(case, shift):
    """Softmax is shift-invariant; the stable log-sum-exp keeps exp() from overflowing."""
    shifted = F.softmax_cross_entropy(Tensor(case.logits + shift), case.labels).item()
    assert math.isfinite(shifted)
    np.testing.assert_allclose(shifted, softmax_cross_entropy_reference(case.logits, case.labels),
                               rtol=1e-9, atol=1e-9 * abs(shift))


def test_labels_may_be_a_tensor_or_a_list_of_ints():
    z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    expected = softmax_cross_entropy_reference(z, np.array([2, 0]))
    for labels in (np.array([2, 0]), [2, 0], Tensor(np.array([2, 0])), np.array([2, 0], dtype=np.uint8)):
        np.testing.assert_allclose(F.softmax_cross_entropy(Tensor(z), labels).item(), expected, rtol=1e-14)
