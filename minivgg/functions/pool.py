"""Max-pooling, differentiable.

    y[n, c, i, j] = max over (u, v) of x[n, c, s*i + u, s*j + v]

for a (kh, kw) window and stride s, with no padding.  The backward sends each
output gradient to the one input that won the max (the first, on a tie):

    dx[n, c, s*i + u*, s*j + v*] += dy[n, c, i, j],   (u*, v*) = argmax

``+=`` because overlapping windows (stride < kernel) can pick the same input.
The forward kernel returns the winner's position inside its window
(u*kw + v), so that the backward needs no search; a forward that no backward
follows (evaluation) asks for the maxima alone.
"""
from ..autograd import Function
from ..kernels import kernels_for
from .checks import check_ndim


class MaxPool2d(Function):
    name = "max_pool2d"

    def forward(self, x, kernel_size, stride):
        self.kernels = kernels_for(x)
        self.x_shape, self.kernel_size, self.stride = x.shape, kernel_size, stride
        if not self.recorded:      # no backward follows: the winners' positions are not needed
            return self.kernels.max_pool_values(x, kernel_size, kernel_size, stride)
        y, self.argmax = self.kernels.max_pool_forward(x, kernel_size, kernel_size, stride)
        return y

    def backward(self, grad):
        k = self.kernel_size
        return (self.kernels.max_pool_backward(grad, self.argmax, self.x_shape, k, k, self.stride),)


def max_pool2d(x, kernel_size=2, stride=None):
    """Max over ``kernel_size`` x ``kernel_size`` windows, ``stride`` apart (default: the kernel size)."""
    stride = kernel_size if stride is None else stride
    check_ndim("max_pool2d", "an input", x, 4, "(N, C, H, W)")
    if not (isinstance(kernel_size, int) and kernel_size >= 1 and isinstance(stride, int) and stride >= 1):
        raise ValueError(f"max_pool2d: expected integers kernel_size >= 1 and stride >= 1, "
                         f"got kernel_size={kernel_size!r}, stride={stride!r}")
    if kernel_size > min(x.shape[2:]):
        raise ValueError(f"max_pool2d: kernel_size {kernel_size} is larger than the input's "
                         f"{tuple(x.shape[2:])} spatial size (input shape {tuple(x.shape)})")
    return MaxPool2d.apply(x, kernel_size=kernel_size, stride=stride)
