"""2-d convolution, differentiable.

    y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] * xp[n, c, s*i + u, s*j + v]

with xp the input zero-padded by ``padding`` and s the stride.  The kernels
(``kernels/conv.py``) compute it as im2col + one GEMM; the gradients are

    dx = col2im(dY @ W),   dw = dY.T @ cols,   db = sum of dY over n, i, j.
"""
from ..autograd import Function
from ._dispatch import check_ndim, kernels_for


class Conv2d(Function):
    name = "conv2d"

    def forward(self, x, w, *bias, stride, padding):
        self.kernels = kernels_for(x)
        y, self.cols = self.kernels.conv2d_forward(x, w, bias[0] if bias else None, stride, padding)
        self.x_shape, self.w, self.stride, self.padding = x.shape, w, stride, padding
        return y

    def backward(self, grad):
        dx, dw, db = self.kernels.conv2d_backward(grad, self.x_shape, self.cols, self.w, self.stride, self.padding,
                                                  input_grad=self.inputs[0].requires_grad)
        return (dx, dw, db)[:len(self.inputs)]


def conv2d(x, w, b=None, stride=1, padding=0):
    """Convolve NCHW ``x`` with weight ``w`` (O, C, kh, kw) and add bias ``b`` (O,)."""
    check_conv_args(x, w, b, stride, padding)
    inputs = (x, w) if b is None else (x, w, b)
    return Conv2d.apply(*inputs, stride=stride, padding=padding)


def check_conv_args(x, w, b, stride, padding):
    check_ndim("conv2d", "an input", x, 4, "(N, C, H, W)")
    check_ndim("conv2d", "a weight", w, 4, "(O, C, kh, kw)")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels but weight expects {w.shape[1]} "
                         f"(input shape {tuple(x.shape)}, weight shape {tuple(w.shape)})")
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise ValueError(f"conv2d: expected a bias of shape ({w.shape[0]},), got {tuple(b.shape)}")
    if not (isinstance(stride, int) and stride >= 1 and isinstance(padding, int) and padding >= 0):
        raise ValueError(f"conv2d: expected an integer stride >= 1 and padding >= 0, "
                         f"got stride={stride!r}, padding={padding!r}")
    padded = (x.shape[2] + 2 * padding, x.shape[3] + 2 * padding)
    if w.shape[2] > padded[0] or w.shape[3] > padded[1]:
        raise ValueError(f"conv2d: kernel {tuple(w.shape[2:])} is larger than the padded input {padded} "
                         f"(input shape {tuple(x.shape)}, padding {padding})")
