"""The workspace pool reuses a buffer only once nothing else holds it, and keeps to its limit."""
import numpy as np

import minivgg.functional as F
from minivgg import Tensor
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
    monkeypatch.setattr(workspace, "LIMIT_BYTES", workspace.pooled_bytes() + 3 * 8100)
    for length in range(1000, 1010):   # ten shapes of about 8 KB, each released at once
        workspace.take((length,), np.float64)
    assert workspace.pooled_bytes() <= workspace.LIMIT_BYTES


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
