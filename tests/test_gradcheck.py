"""minivgg.gradcheck: passes on correct gradients, and names the input and element of a wrong one."""
import numpy as np
import pytest

import minivgg.functional as F
from minivgg import GradcheckError, Tensor, gradcheck
from minivgg.autograd import Function


def leaf(array, dtype=np.float64):
    return Tensor(np.array(array, dtype=dtype), requires_grad=True)


class ScaledProduct(Function):
    """y = a * b with a backward that is right, except that it can corrupt one element of db."""
    name = "scaled_product"

    def forward(self, a, b, wrong_element=None):
        self.a, self.b, self.wrong_element = a, b, wrong_element
        return a * b

    def backward(self, grad):
        db = grad * self.a
        if self.wrong_element is not None:
            db[self.wrong_element] += 0.5
        return grad * self.b, db


class ForgetsTheTwo(Function):
    """y = a**2, with the backward a learner might write first: dy * a (the factor 2 forgotten)."""

    def forward(self, a):
        self.a = a
        return a * a

    def backward(self, grad):
        return (grad * self.a,)


def test_passes_on_correct_functions():
    rng = np.random.default_rng(0)
    x, w = leaf(rng.standard_normal((2, 3, 4, 4))), leaf(rng.standard_normal((2, 3, 3, 3)))
    assert gradcheck(lambda x, w: F.conv2d(x, w, padding=1), x, w) is True
    assert gradcheck(lambda a, b: ScaledProduct.apply(a, b), leaf([[1.0, 2.0]]), leaf([[3.0, -1.0]])) is True
    assert gradcheck(lambda a: (a * a).sum(), leaf([1.0, -2.0])) is True  # a scalar output


def test_names_the_input_and_the_element_of_a_wrong_gradient():
    a, b = leaf(np.arange(6.0).reshape(2, 3) + 1), leaf(np.ones((2, 3)))
    with pytest.raises(GradcheckError, match=r"input 1 \(shape \(2, 3\)\): element \(1, 2\)") as error:
        gradcheck(lambda a, b: ScaledProduct.apply(a, b, wrong_element=(1, 2)), a, b)
    assert "analytic gradient" in str(error.value) and "numerical" in str(error.value)


def test_catches_a_forgotten_factor():
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(3,\)\): element \(\d,\)"):
        gradcheck(ForgetsTheTwo.apply, leaf([1.0, 2.0, 3.0]))


def test_raise_error_false_returns_false():
    assert gradcheck(ForgetsTheTwo.apply, leaf([1.0, 2.0]), raise_error=False) is False


def test_is_an_assertion_error():
    assert issubclass(GradcheckError, AssertionError)


def test_constants_and_tensors_without_grad_are_not_checked():
    """The wrong db is never looked at when b does not require a gradient, or is a plain array."""
    a = leaf([[1.0, 2.0]])
    wrong = lambda a, b: ScaledProduct.apply(a, b, wrong_element=(0, 0))  # noqa: E731
    assert gradcheck(wrong, a, Tensor(np.array([[3.0, 4.0]])))
    assert gradcheck(wrong, a, np.array([[3.0, 4.0]]))


def test_float32_inputs_are_checked_in_float64():
    x = leaf(np.random.default_rng(1).standard_normal((2, 3, 3, 3)), dtype=np.float32)
    assert gradcheck(lambda x: F.local_response_norm(x, size=3, alpha=0.5), x)
    assert x.dtype == np.float32 and x.grad is None  # the caller's tensor is left alone
