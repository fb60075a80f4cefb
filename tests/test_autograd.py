"""The autograd engine: graphs with shared nodes, broadcasting, the tensor ops, no_grad, freeing,
accumulation, dtypes and very deep graphs."""
import operator
import weakref

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import minivgg.functional as F
from minivgg import Tensor, gradcheck, no_grad
from strategies import away_from_zero, values


def leaf(array):
    return Tensor(np.array(array, dtype=np.float64), requires_grad=True)


# --- graphs in which a tensor is used more than once ------------------------------------------------

@given(values((3, 2)))
def test_tensor_used_twice_in_a_product(a):
    x = leaf(a)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * a, rtol=1e-15)


@given(values((4,)))
def test_tensor_used_twice_in_a_sum(a):
    x = leaf(a)
    (x + x).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full(4, 2.0))


@given(values((2, 3)))
def test_diamond_graph_sums_both_paths(a):
    """x -> h -> (u, v) -> u * v: h gets the gradient of both branches before passing it on."""
    x = leaf(a)
    h = x * 3.0
    u, v = h + 1.0, h * h
    (u * v).sum().backward()
    # d/dx [(3x + 1) * 9x^2] = 3 * 9x^2 + (3x + 1) * 18x
    np.testing.assert_allclose(x.grad, 27 * a ** 2 + (3 * a + 1) * 18 * a, rtol=1e-12, atol=1e-12)


@given(values((2, 2)))
def test_diamond_graph_matches_central_differences(a):
    def f(x):
        h = (x * 2.0).exp()
        return (h * h + h / (h + 1.0)).sum()
    assert gradcheck(f, leaf(a * 0.5))


# --- the arithmetic ops, with broadcasting ---------------------------------------------------------

BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}


@given(st.sampled_from(sorted(BINARY)), mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
       st.data())
def test_broadcasting_binary_ops_match_central_differences(name, shapes, data):
    a_shape, b_shape = shapes.input_shapes
    a = data.draw(values(a_shape), label="a")
    b = data.draw(away_from_zero(b_shape, margin=0.5) if name == "div" else values(b_shape), label="b")
    x, y = leaf(a), leaf(b)
    out = BINARY[name](x, y)
    assert out.shape == shapes.result_shape
    np.testing.assert_allclose(out.data, BINARY[name](a, b), rtol=1e-15)
    assert gradcheck(BINARY[name], x, y)
    # a gradient has the shape of its tensor, however it was broadcast
    (BINARY[name](x, y) * 1.0).sum().backward()
    assert x.grad.shape == a_shape and y.grad.shape == b_shape


def test_broadcast_add_and_mul_gradients_by_hand():
    a = leaf(np.arange(6.0).reshape(2, 3))
    b = leaf([10.0, 20.0, 30.0])
    ((a + b) * b).sum().backward()
    # d/da = b (broadcast over rows); d/db = sum over rows of (a + 2b)
    np.testing.assert_array_equal(a.grad, np.tile([10.0, 20.0, 30.0], (2, 1)))
    np.testing.assert_array_equal(b.grad, (np.arange(6.0).reshape(2, 3) + 2 * np.array([10.0, 20.0, 30.0])).sum(0))


@given(values((2, 3)), st.floats(-2.0, 2.0))
def test_scalar_on_either_side(a, c):
    for f in (lambda x: c + x, lambda x: x + c, lambda x: c - x, lambda x: x - c, lambda x: c * x,
              lambda x: x * c, lambda x: -x, lambda x: x / 1.5, lambda x: 2.0 / (x * x + 1.0)):
        assert gradcheck(f, leaf(a))


@given(values((2, 3)), away_from_zero((2, 3), margin=0.5))
def test_numpy_arrays_and_scalars_on_the_left_are_recorded(a, b):
    """NumPy must defer to the Tensor's reflected operators rather than build an object array."""
    x = leaf(b)
    for f in (lambda x: a + x, lambda x: a - x, lambda x: a * x, lambda x: a / x, lambda x: np.float64(2.0) * x,
              lambda x: a.T @ x):
        y = f(x)
        assert isinstance(y, Tensor) and y.requires_grad and y.dtype == np.float64
        np.testing.assert_allclose(y.data, f(b), rtol=1e-15)
        assert gradcheck(f, x)


@given(away_from_zero((2, 3), margin=0.2), st.sampled_from([2, 3, 0.5, -1.0]))
def test_pow_exp_log(a, exponent):
    assert gradcheck(lambda x: (x * x + 0.5) ** exponent, leaf(a))
    assert gradcheck(lambda x: x.exp(), leaf(a))
    assert gradcheck(lambda x: (x * x).log(), leaf(a))


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.data())
def test_matmul(m, k, n, data):
    a, b = data.draw(values((m, k)), label="a"), data.draw(values((k, n)), label="b")
    x, y = leaf(a), leaf(b)
    np.testing.assert_allclose((x @ y).data, a @ b, rtol=1e-14, atol=1e-14)
    assert gradcheck(operator.matmul, x, y)
    assert gradcheck(lambda y: a @ y, y)  # an array on the left


@given(values((2, 3, 4)), st.sampled_from([None, 0, 1, 2, -1, (0, 2), (1, -1)]), st.booleans())
def test_sum_and_mean_with_axis(a, axis, keepdims):
    x = leaf(a)
    np.testing.assert_allclose(x.sum(axis, keepdims).data, a.sum(axis=axis, keepdims=keepdims), rtol=1e-14)
    np.testing.assert_allclose(x.mean(axis, keepdims).data, a.mean(axis=axis, keepdims=keepdims), rtol=1e-14)
    assert gradcheck(lambda x: x.sum(axis, keepdims), x)
    assert gradcheck(lambda x: x.mean(axis, keepdims), x)
    x.mean(axis, keepdims).sum().backward()
    count = a.size / np.mean(a, axis=axis, keepdims=keepdims).size
    np.testing.assert_allclose(x.grad, np.full(a.shape, 1.0 / count), rtol=1e-15)


@given(values((2, 3, 4)))
def test_reshape_transpose_and_getitem(a):
    x = leaf(a)
    assert gradcheck(lambda x: x.reshape(4, 6), x)
    assert gradcheck(lambda x: x.reshape((3, -1)) * 2.0, x)
    assert gradcheck(lambda x: x.transpose(2, 0, 1), x)
    assert gradcheck(lambda x: x.T, x)
    assert gradcheck(lambda x: x[1], x)
    assert gradcheck(lambda x: x[:, 1:, ::2], x)
    assert gradcheck(lambda x: x[..., [0, 0, 3]], x)  # a repeated index: gradients add up
    np.testing.assert_array_equal(x.transpose(2, 0, 1).data, a.transpose(2, 0, 1))
    np.testing.assert_array_equal(x[:, 1:, ::2].data, a[:, 1:, ::2])


def test_getitem_with_a_repeated_index_accumulates():
    x = leaf([1.0, 2.0, 3.0])
    x[[0, 0, 2]].sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 1.0])


# --- recording, freeing, accumulation --------------------------------------------------------------

def test_no_grad_records_nothing():
    x = leaf(np.ones((2, 3)))
    w = leaf(np.ones((1, 3, 1, 1)))
    with no_grad():
        ys = [x * 2.0, x + x, x.sum(), x @ x.T, x.reshape(3, 2), x[0], F.relu(x), F.linear(x, x),
              F.conv2d(x.reshape(2, 3, 1, 1), w)]
    for y in ys:
        assert y.creator is None
        assert not y.requires_grad
    y = x * 2.0  # recording is back on after the block
    assert y.requires_grad and y.creator is not None


def test_no_grad_restores_recording_after_an_exception():
    x = leaf([1.0])
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            raise ZeroDivisionError
    assert (x * 2.0).requires_grad


def test_constants_are_not_recorded():
    y = Tensor(np.ones(3)) * 2.0
    assert y.creator is None and not y.requires_grad


def test_the_graph_does_not_keep_an_intermediate_result_alive():
    """ReLU saves its output, not its input: once the code drops the input, its array is freed."""
    x = Tensor(np.array([-1.0, 2.0, 3.0]), requires_grad=True)
    hidden = x * 3.0
    freed = weakref.ref(hidden.data)
    loss = F.relu(hidden).sum()
    del hidden
    assert freed() is None
    loss.backward()
    np.testing.assert_array_equal(x.grad, [0.0, 3.0, 3.0])


def test_second_backward_on_a_freed_graph_raises():
    x = leaf([1.0, 2.0])
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="already freed.*recompute the forward"):
        loss.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])  # the failed call changed nothing


def test_backward_through_a_subgraph_freed_by_another_loss_raises():
    """Two losses sharing h: after the first backward, the second cannot silently skip x."""
    x = leaf([1.0, 2.0])
    h = x * 3.0
    first, second = h.sum(), (h * h).sum()
    first.backward()
    with pytest.raises(RuntimeError, match="already freed"):
        second.backward()


def test_gradients_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).sum().backward()
    (x * 10.0).sum().backward()  # a new graph on the same leaf
    np.testing.assert_array_equal(x.grad, 2 * np.array([1.0, 2.0, 3.0]) + 10.0)
    x.grad = None
    x.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones(3))


def test_leaf_gradients_are_independent_writable_arrays():
    """Add passes one array to both inputs and Sum a read-only broadcast view: leaves get their own copy,
    so an optimiser may update one .grad in place without touching another."""
    a, b = leaf(np.ones(3)), leaf(np.ones(3))
    (a + b).sum().backward()
    assert a.grad is not b.grad and not np.shares_memory(a.grad, b.grad)
    assert a.grad.flags.writeable
    a.grad *= 0.0
    np.testing.assert_array_equal(b.grad, np.ones(3))


def test_backward_needs_a_gradient_for_a_non_scalar():
    y = leaf(np.ones((2, 2))) * 2.0
    with pytest.raises(ValueError, match=r"backward: a gradient is needed .* shape \(2, 2\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"gradient shape \(3,\) does not match tensor shape \(2, 2\)"):
        y.backward(np.ones(3))


def test_backward_on_a_constant_raises():
    with pytest.raises(RuntimeError, match="does not require a gradient"):
        Tensor(np.ones(())).backward()


def test_only_float_tensors_require_gradients():
    with pytest.raises(TypeError, match="only floating-point tensors.*int64"):
        Tensor(np.arange(3), requires_grad=True)


def test_inputs_that_do_not_require_gradients_get_none():
    x, c = leaf([1.0, 2.0]), Tensor(np.array([3.0, 4.0]))
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


# --- dtypes, depth ---------------------------------------------------------------------------------

def test_float32_stays_float32_through_every_op():
    rng = np.random.default_rng(0)

    def f32(*shape):
        return Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)

    x, w, b = f32(2, 3, 5, 5), f32(4, 3, 3, 3), f32(4)
    lin_w, lin_b = f32(3, 16), f32(3)
    h = F.conv2d(x, w, b, stride=1, padding=1)
    h = F.local_response_norm(F.relu(h), size=3)
    h = F.max_pool2d(h, 2, 2)
    h = F.dropout(h, p=0.5, seed=1)
    h = F.flatten(h)
    logits = F.linear(h, lin_w, lin_b)
    z = (logits * 2.0 + 1.0 - 0.5) / 3.0
    z = z ** 2 + z.exp() * 1e-3 + (z * z + 1.0).log() - z
    z = (z @ z.T).sum(axis=1).reshape(2, 1).transpose(1, 0)[0].mean() + logits.sum()
    loss = F.softmax_cross_entropy(logits, np.array([0, 2])) + z * 1e-3
    for tensor in (h, logits, z, loss):
        assert tensor.dtype == np.float32, tensor
    loss.backward()
    for tensor in (x, w, b, lin_w, lin_b):
        assert tensor.grad.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scalars_take_the_tensor_dtype(dtype):
    x = Tensor(np.ones(2, dtype=dtype), requires_grad=True)
    for y in (x * 2.0, 2.0 * x, x / np.float64(3.0), x + 1, x - np.float32(1.0), x ** 2.0, 1.0 / x):
        assert y.dtype == dtype


def test_deep_chain_does_not_hit_the_recursion_limit():
    x = leaf([1.0])
    y = x
    for _ in range(5000):
        y = y + 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0])
    np.testing.assert_array_equal(y.data, [5001.0])


def test_deep_chain_of_products_and_wide_fan_out():
    x = leaf([1.0])
    y = x
    for _ in range(3000):
        y = y * 1.0 + x * 0.0  # every step also reuses x: x has 6000 uses
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0])


def test_repr_shows_shape_dtype_and_device_and_the_values_of_small_tensors():
    big = Tensor(np.zeros((64, 3, 3, 3), np.float32), requires_grad=True)
    assert repr(big) == "Tensor(shape=(64, 3, 3, 3), dtype=float32, device='cpu', requires_grad=True)"
    assert repr(Tensor(np.array([1.5, -2.0]))) == "Tensor([ 1.5, -2. ], shape=(2,), dtype=float64, device='cpu')"
    assert repr(Tensor(np.float32(0.25))) == "Tensor(0.25, shape=(), dtype=float32, device='cpu')"
