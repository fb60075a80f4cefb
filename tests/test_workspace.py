"""The workspace pool reuses a buffer only once nothing else holds it, and keeps to its limit."""
import numpy as np
import pytest

import minivgg.functional as F
from minivgg import Tensor
from minivgg.functions import conv as conv_module
from minivgg.kernels import workspace


def test_a_buffer_is_reused_once_released_and_never_while_held():
    shape = (3, 5, 7)
    first = workspace.take(shape, np.float32)
    address = first.ctypes.data
    held = workspace.take(shape, np.float32)
    assert held.ctypes.data != address, "a held buffer is not handed out twice"
    del first
    assert workspace.take(shape, np.float32).ctypes.data == address, "a released buffer is reused"
    view = held[1:]
    held_address = held.ctypes.data
    del held
    assert workspace.take(shape, np.float32).ctypes.data != held_address, "a live view holds its buffer"
    assert view.base is not None


def test_empty_like_keeps_the_memory_order():
    nchw_view_of_nhwc = np.zeros((2, 4, 5, 3)).transpose(0, 3, 1, 2)
    out = workspace.empty_like(nchw_view_of_nhwc)
    assert out.shape == nchw_view_of_nhwc.shape and out.strides == nchw_view_of_nhwc.strides


def test_free_buffers_beyond_the_limit_are_dropped(monkeypatch):
    monkeypatch.setattr(workspace, "LIMIT_BYTES", workspace.pooled_bytes() + 3 * 2 ** 16)
    for power in range(10, 20):   # ten sizes, each in a size class of its own, each released at once
        workspace.take((2 ** power,), np.uint8)
    assert workspace.pooled_bytes() <= workspace.LIMIT_BYTES


def test_size_classes_are_at_most_a_quarter_larger_than_the_request():
    for nbytes in [1, 64, 65, 1000, 4096, 4097, 5120, 5121, 123_456_789]:
        size = workspace.size_class(nbytes)
        assert nbytes <= size and (size <= 64 or size <= 1.25 * nbytes)


def test_a_released_buffer_serves_another_shape_of_about_its_size():
    first = workspace.take((64, 100), np.float32)          # 25,600 bytes: the 28,672-byte class
    address = first.ctypes.data
    del first
    other = workspace.take((7, 1000), np.float32)          # 28,000 bytes: the same class
    assert other.ctypes.data == address and other.shape == (7, 1000) and other.dtype == np.float32


def test_steps_that_reuse_buffers_give_the_same_result_as_the_first():
    """Two identical forward/backward passes: the second runs on reused buffers and must agree bit for bit."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 12, 12)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    results = []
    for _ in range(3):
        xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
        y = F.max_pool2d(F.relu(F.conv2d(xt, wt, padding=1)))
        (y * y).sum().backward()
        results.append((y.data.copy(), xt.grad.copy(), wt.grad.copy()))
    for later in results[1:]:
        for got, want in zip(later, results[0]):
            assert np.array_equal(got, want)


def test_a_handed_over_buffer_is_kept_once_and_any_other_view_is_copied():
    made = workspace.take((6, 4), np.float32)
    made[...] = 1.5
    assert workspace.own_or_copy(made) is not made, "a pooled view is copied unless handed over"
    workspace.hand_over(made)
    assert workspace.own_or_copy(made) is made, "handed over: kept as it is"
    second = workspace.own_or_copy(made)
    assert second is not made and np.array_equal(second, made), "only once: a second receiver gets a copy"
    owned = np.ones(3)
    assert workspace.own_or_copy(owned) is owned


def test_weight_gradients_are_the_gemm_outputs_themselves_and_shared_ones_are_copied():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    w = Tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    fc = Tensor(rng.standard_normal((5, 4 * 36)).astype(np.float32), requires_grad=True)
    F.linear(F.conv2d(x, w, padding=1).reshape(2, -1), fc).sum().backward()
    for leaf in (w, fc):
        assert not leaf.grad.flags.owndata, "the pooled GEMM output is kept, not copied"
    expected = F.conv2d(x, Tensor(w.data), padding=1).data.reshape(2, -1).T @ np.ones((2, 5), np.float32)
    np.testing.assert_allclose(fc.grad, expected.T, rtol=1e-5)
    a, b = Tensor(np.ones(3), requires_grad=True), Tensor(np.ones(3), requires_grad=True)
    shared = workspace.hand_over(workspace.take((3,), np.float64))
    shared[...] = 2.0
    a._accumulate(shared)
    b._accumulate(shared)
    assert a.grad is shared and b.grad is not shared, "two leaves never share one gradient array"


def test_kernels_shared_between_threads_give_one_threads_result_bit_for_bit(monkeypatch):
    """Every sharded NumPy twin (padding, im2col, col2im, Winograd, ReLU, pooling) at any size."""
    from minivgg.kernels import shards
    if shards._pool is None:
        pytest.skip("one CPU (or MINIVGG_THREADS=1): there are no shard threads")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    w1 = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((64, 16, 3, 3)).astype(np.float32)
    results = []
    for threads, min_elements in ((1, 1 << 62), (2, 1)):
        monkeypatch.setattr(shards, "THREADS", threads)
        monkeypatch.setattr(shards, "MIN_ELEMENTS", min_elements)
        xt, t1, t2 = (Tensor(a, requires_grad=True) for a in (x, w1, w2))
        hidden = F.max_pool2d(F.relu(F.conv2d(xt, t1, padding=1)))
        with conv_module.use_algorithm("winograd"):
            y = F.relu(F.conv2d(hidden, t2, padding=1))
        (y * y).sum().backward()
        results.append([a.copy() for a in (y.data, xt.grad, t1.grad, t2.grad)])
    for sharded, single in zip(*results):
        assert np.array_equal(sharded, single)
