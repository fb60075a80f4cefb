"""Small helpers shared by the tests of ``minivgg.functional`` (not strategies: plain functions)."""
import numpy as np

from minivgg import Tensor


def forward_backward(fn, arrays, seed=0):
    """Run ``fn`` on tensors made from ``arrays`` and backpropagate a fixed random gradient.

    Returns ``(y, grads)`` as NumPy arrays: the output and the gradient of
    sum(y * r) for every input (r drawn from ``seed``, in y's dtype).
    """
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    y = fn(*tensors)
    r = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    y.backward(r)
    return y.data, [t.grad for t in tensors]


def float32_pair(*arrays):
    """Each array rounded to float32, and that same value widened back to float64.

    Comparing a float32 forward with the float64 forward of the *rounded*
    inputs measures only the arithmetic's rounding, not the inputs'.
    """
    low = [None if a is None else a.astype(np.float32) for a in arrays]
    high = [None if a is None else a.astype(np.float64) for a in low]
    return low, high


def assert_float32_close(y32, y64, scale=None, rtol=1e-5):
    """float32 result within rtol of the float64 one, relative to each element or to ``scale``.

    ``scale`` (default: the largest |y64|) covers elements that are small
    because of cancellation, whose own relative error is not meaningful.
    """
    assert y32.dtype == np.float32, f"expected a float32 result, got {y32.dtype}"
    scale = np.abs(y64).max(initial=0.0) if scale is None else scale
    np.testing.assert_allclose(y32.astype(np.float64), y64, rtol=rtol, atol=rtol * scale)
