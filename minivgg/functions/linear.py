"""Fully connected layer, differentiable.

    y = x @ w.T + b,     x (N, in), w (out, in), b (out,)
    dx = dy @ w,   dw = dy.T @ x,   db = sum of dy over n

Pure GEMMs: NumPy hands them to BLAS, CuPy to cuBLAS; on NumPy their
outputs go to reused workspaces (``kernels/workspace.py``).

A forward that no backward follows (evaluation), with at least 8 times as
many outputs as rows of x, computes the transposed product, y.T = w @ x.T,
and hands out its transposed view: the same products, and OpenBLAS shares a
product of many weight rows and few batch rows out better over its threads.
BLAS may add each dot product up in another order then, so the result
equals a training forward's to float rounding, not always bit for bit
(with OpenBLAS's AVX-512 kernels VGG-A's output differed by 3e-6 of its
size in float32, the next layer meeting a transposed input; with its AVX2
kernels, not at all).
Measured on the 2-core AVX-512 EPYC (float32): (64, 4096) @ (4096, 4096)
8.4 -> 6.6 ms, (64, 512) @ (512, 4096) 1.00 -> 0.69 ms, (64, 1024) @
(1024, 1024) 0.51 -> 0.36 ms, (8, 4096) @ (4096, 4096) 5.0 -> 3.0 ms; VGG-A
width 1's forward 1.047x; but 0.95-1.04x at 1 to 2 outputs per row, and
0.77x at (64, 4096) @ (4096, 10).  A training step keeps x @ w.T: its
backward and dropout then meet a transposed layout, and the default run's
step was 0.97-0.99x with it.
"""
from ..autograd import Function
from ..kernels import workspace
from ..kernels.workspace import matmul
from .checks import check_ndim


class Linear(Function):
    name = "linear"

    def forward(self, x, w, *bias):
        self.x, self.w = x, w
        transposed = not self.recorded and w.shape[0] >= 8 * x.shape[0]
        y = matmul(w, x.T).T if transposed else matmul(x, w.T)
        if bias:
            y += bias[0]
        return y

    def backward(self, grad):
        grads = (matmul(grad, self.w), workspace.hand_over(matmul(grad.T, self.x)), grad.sum(axis=0))
        return grads[:len(self.inputs)]


def linear(x, w, b=None):
    """x @ w.T + b for x (N, in), w (out, in), b (out,)."""
    check_ndim("linear", "an input", x, 2, "(N, in_features)")
    check_ndim("linear", "a weight", w, 2, "(out_features, in_features)")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"linear: input has {x.shape[1]} features but weight expects {w.shape[1]} "
                         f"(input shape {tuple(x.shape)}, weight shape {tuple(w.shape)})")
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise ValueError(f"linear: expected a bias of shape ({w.shape[0]},), got {tuple(b.shape)}")
    return Linear.apply(*((x, w) if b is None else (x, w, b)))
