"""Tensor arithmetic, differentiable: the Functions behind ``+ - * / ** @``, ``sum``,
``reshape``, ``transpose`` and indexing.

Each backward is one line of calculus; where an operand was broadcast, its
gradient is summed back to its shape (``unbroadcast``).
"""
import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..inputs import check_broadcast


def mean(x, axis=None, keepdims=False):
    """The mean of Tensor ``x`` over ``axis``: its sum divided by the count of summed elements."""
    count = x.size if axis is None else int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    return x.sum(axis, keepdims) * (1.0 / count)


def one_tuple(args):
    """``reshape(2, 3)`` and ``reshape((2, 3))`` alike: the arguments as one tuple."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return args


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the backward of NumPy broadcasting."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


class Add(Function):
    """y = a + b"""

    name = "add"

    def forward(self, a, b):
        check_broadcast(self.name, a, b)
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, grad):
        da, db = unbroadcast(grad, self.shapes[0]), unbroadcast(grad, self.shapes[1])
        return da, (db.copy() if db is da else db)   # one array per input: a leaf may keep its gradient


class Sub(Function):
    """y = a - b"""

    name = "subtract"

    def forward(self, a, b):
        check_broadcast(self.name, a, b)
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, grad):
        return unbroadcast(grad, self.shapes[0]), unbroadcast(-grad, self.shapes[1])


class Mul(Function):
    """y = a * b;  da = g * b,  db = g * a"""

    name = "multiply"

    def forward(self, a, b):
        check_broadcast(self.name, a, b)
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        return unbroadcast(grad * self.b, self.a.shape), unbroadcast(grad * self.a, self.b.shape)


class Div(Function):
    """y = a / b;  da = g / b,  db = -g * a / b**2"""

    name = "divide"

    def forward(self, a, b):
        check_broadcast(self.name, a, b)
        self.a, self.b = a, b
        return a / b

    def backward(self, grad):
        da = grad / self.b
        return unbroadcast(da, self.a.shape), unbroadcast(-da * self.a / self.b, self.b.shape)


class Neg(Function):
    """y = -a"""

    def forward(self, a):
        return -a

    def backward(self, grad):
        return (-grad,)


class Pow(Function):
    """y = a ** p for a constant p;  da = g * p * a**(p-1)"""

    def forward(self, a, exponent):
        self.a, self.exponent = a, exponent
        return a ** exponent

    def backward(self, grad):
        return (grad * self.exponent * self.a ** (self.exponent - 1),)


class Exp(Function):
    """y = exp(a);  da = g * y"""

    def forward(self, a):
        self.y = get_array_module(a).exp(a)
        return self.y

    def backward(self, grad):
        return (grad * self.y,)


class Log(Function):
    """y = log(a);  da = g / a"""

    def forward(self, a):
        self.a = a
        return get_array_module(a).log(a)

    def backward(self, grad):
        return (grad / self.a,)


class MatMul(Function):
    """y = a @ b for 2-d matrices (or batches of them);  da = g @ b.T,  db = a.T @ g"""

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: expected shapes (..., m, k) and (..., k, n), got {a.shape} and {b.shape}")
        self.a, self.b = a, b
        return a @ b

    def backward(self, grad):
        da = grad @ self.b.swapaxes(-1, -2)
        db = self.a.swapaxes(-1, -2) @ grad
        return unbroadcast(da, self.a.shape), unbroadcast(db, self.b.shape)


class Sum(Function):
    """y = sum of a over ``axis``;  da = g broadcast back to a's shape"""

    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        return a.sum(axis=axis, keepdims=keepdims)

    def backward(self, grad):
        if self.axis is not None and not self.keepdims:
            grad = get_array_module(grad).expand_dims(grad, self.axis)
        return (get_array_module(grad).broadcast_to(grad, self.shape),)


class Reshape(Function):
    """y = a viewed with another shape;  da = g viewed with a's shape"""

    def forward(self, a, shape):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, grad):
        return (grad.reshape(self.shape),)


class Transpose(Function):
    """y = a with its axes permuted;  da = g with the inverse permutation"""

    def forward(self, a, axes):
        self.axes = axes
        return a.transpose(axes)

    def backward(self, grad):
        if self.axes is None:
            return (grad.transpose(),)
        return (grad.transpose(np.argsort(self.axes)),)


class GetItem(Function):
    """y = a[index];  da = zeros with g added at ``index``"""

    def forward(self, a, index):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, grad):
        xp = get_array_module(grad)
        da = xp.zeros(self.shape, dtype=self.dtype)
        xp.add.at(da, self.index, grad)
        return (da,)
