"""2-d convolution, differentiable: im2col + one matrix product.

For an input x of shape (N, C, H, W), a weight w of shape (O, C, kh, kw),
stride s and zero padding p, the output has Ho = (H + 2p - kh) // s + 1 rows,
Wo = (W + 2p - kw) // s + 1 columns and

    y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] * xp[n, c, s*i + u, s*j + v]

where xp is x padded with p zeros on each side.  The kernel ``im2col``
copies every window of xp into one row of a matrix ``cols`` (N*Ho*Wo rows
(n, i, j), kh*kw*C columns (u, v, c)); the sum above is then the matrix
product

    Y = cols @ W.T          W = w laid out as (O, kh*kw*C), columns (u, v, c)

and the gradients are two more products and the adjoint of im2col:

    dW = dY.T @ cols        dx = col2im(dY @ W)        db = sum of dY over n, i, j

Y and dY are (N*Ho*Wo, O): NHWC memory, of which the op hands out the NCHW
view.  The products are written once, here, for NumPy (BLAS) and CuPy
(cuBLAS) alike; only the copies (im2col, col2im, bias_grad) come from the
kernel set of the arrays' device.
"""
from ..autograd import Function
from ..kernels import kernels_for
from ..kernels.workspace import matmul
from ..kernels.layout import array_module, conv_output_size, to_nchw, to_nhwc
from .checks import check_ndim


def weight_matrix(w):
    """Weight (O, C, kh, kw) as the (O, kh*kw*C) matrix that matches im2col's columns.

    Free for a weight in (O, kh, kw, C) memory, as ``nn.Conv2d`` keeps it; a copy otherwise.
    """
    return array_module(w).ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(w.shape[0], -1)


def conv2d_forward(x, w, b=None, stride=1, padding=0):
    """y = conv(x, w) + b on raw arrays.  Returns ``(y, cols)``; keep ``cols`` for the backward."""
    kernels = kernels_for(x)
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(wd, kw, stride, padding)
    cols = kernels.im2col(x, kh, kw, stride, padding)
    y = matmul(cols, weight_matrix(w).T)
    if b is not None:
        y += b
    return to_nchw(y.reshape(n, ho, wo, o)), cols


def conv2d_backward(dy, x_shape, cols, w, stride=1, padding=0, input_grad=True):
    """Gradients of conv2d w.r.t. its input, weight and bias on raw arrays: ``(dx, dw, db)``.

    With ``input_grad=False`` (the first layer: nothing to send the gradient
    to) dx is None and its GEMM and col2im are skipped.
    """
    kernels = kernels_for(dy)
    o, c, kh, kw = w.shape
    dy_rows = to_nhwc(dy).reshape(-1, o)
    dw = matmul(dy_rows.T, cols).reshape(o, kh, kw, c).transpose(0, 3, 1, 2)   # the weight's (O, kh, kw, C) memory
    dx = None
    if input_grad:
        dx = kernels.col2im(matmul(dy_rows, weight_matrix(w)), x_shape, kh, kw, stride, padding)
    return dx, dw, kernels.bias_grad(dy)


class Conv2d(Function):
    name = "conv2d"

    def forward(self, x, w, *bias, stride, padding):
        y, self.cols = conv2d_forward(x, w, bias[0] if bias else None, stride, padding)
        self.x_shape, self.w, self.stride, self.padding = x.shape, w, stride, padding
        return y

    def backward(self, grad):
        dx, dw, db = conv2d_backward(grad, self.x_shape, self.cols, self.w, self.stride, self.padding,
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
