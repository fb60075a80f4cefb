"""Floor 2: a small reverse-mode autograd engine.

A ``Tensor`` wraps an array (NumPy or CuPy).  Every operation on tensors is a
``Function``: its ``forward`` computes the result from raw arrays and keeps
what the backward will need; its ``backward`` turns the gradient of the
result into the gradients of the inputs (the chain rule, one step).  When a
tensor that requires a gradient takes part, the result remembers the
Function that made it, and so the whole computation is recorded as a graph.

``loss.backward()`` walks that graph once, from the loss to the leaves, in
reverse topological order, so that every tensor has received the gradient of
all its uses before it passes its own gradient on.  Gradients of leaves are
accumulated in ``.grad``; the graph is freed as it is walked.
"""
import contextlib
import reprlib

import numpy as np

from .backend import device_of, get_array_module, move_array

_recording = True


@contextlib.contextmanager
def no_grad():
    """Within this block, operations are not recorded (for evaluation)."""
    global _recording
    previous, _recording = _recording, False
    try:
        yield
    finally:
        _recording = previous


def is_recording():
    """True unless inside ``no_grad()``."""
    return _recording


def as_array(value, like=None):
    """``value`` as an array of the same library and dtype as ``like``."""
    if like is None:
        return np.asarray(value)
    xp = get_array_module(like)
    return xp.asarray(value, dtype=like.dtype)


def constant_array(value, like):
    """A non-tensor input of an operation as an array.

    Numbers take the dtype of the tensors beside them (``x * 2.0`` stays
    float32); a floating-point array keeps its own dtype and device, so that
    ``check_inputs`` reports a mismatch instead of converting it silently.
    """
    if like is not None and getattr(value, "ndim", 0) > 0 and value.dtype.kind == "f":
        return value
    return as_array(value, like)


def as_tensor(x):
    """``x`` itself if it is a Tensor, else a constant Tensor wrapping it."""
    return x if isinstance(x, Tensor) else Tensor(x)


def numeric_array(data, dtype=None):
    """``data`` as an array of booleans, integers or floating-point numbers; anything else is refused."""
    xp = get_array_module(data)
    try:
        array = xp.asarray(data, dtype=dtype)
    except (TypeError, ValueError) as error:  # ragged lists, an unknown dtype, values that are not numbers
        raise TypeError(f"Tensor: cannot make a numeric array of {reprlib.repr(data)}: {error}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"Tensor: expected numbers (bool, integer or floating point), got dtype {array.dtype} "
                        f"from {reprlib.repr(data)}")
    return array


class Tensor:
    """An array with an optional gradient and a link to the Function that made it."""

    # NumPy defers to our reflected operators: ``array * tensor`` calls Tensor.__rmul__ (recorded)
    # instead of building an object array of Tensors.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        data = numeric_array(data, dtype)
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"Tensor: only floating-point tensors can require a gradient, got dtype {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad
        self.creator = None  # the Function whose output this is, or None for a leaf

    # --- plain information -------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{grad})"

    def numpy(self):
        """The data as a NumPy array (copied from the GPU if needed)."""
        return self.data.get() if hasattr(self.data, "get") else self.data

    def item(self):
        """The value of a one-element tensor as a Python number."""
        return self.numpy().item()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    @property
    def device(self):
        return device_of(self.data)

    def to(self, device):
        """A copy of this tensor on ``device`` ('cpu', 'cuda', 'cuda:i'); a leaf."""
        return Tensor(move_array(self.data, device), requires_grad=self.requires_grad)

    # --- backward ------------------------------------------------------------
    def backward(self, grad=None):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires it.

        ``grad`` defaults to 1 for a one-element tensor.  The graph is freed
        afterwards: a second ``backward()`` through it raises an error.
        """
        if grad is None:
            if self.size != 1:
                raise ValueError(f"backward: a gradient is needed for a non-scalar tensor of shape {self.shape}")
            grad = get_array_module(self.data).ones_like(self.data)
        grad = as_array(grad, like=self.data)
        if grad.shape != self.shape:
            raise ValueError(f"backward: gradient shape {grad.shape} does not match tensor shape {self.shape}")
        if self.creator is None:
            if not self.requires_grad:
                raise RuntimeError("backward: this tensor does not require a gradient and was not made by an "
                                   "operation that does")
            self._accumulate(grad)
            return
        grads = {id(self): grad}
        for tensor in reversed(topological_order(self)):
            grad = grads.pop(id(tensor), None)
            if grad is None:  # every use of this tensor returned no gradient
                continue
            function = tensor.creator
            if function is None:
                tensor._accumulate(grad)
                continue
            for parent, parent_grad in zip(function.inputs, function.backward(grad)):
                if parent_grad is None or not parent.requires_grad:
                    continue
                key = id(parent)
                grads[key] = grads[key] + parent_grad if key in grads else parent_grad
            function.free()  # the freed Function stays as creator: a later backward() through it raises

    def _accumulate(self, grad):
        # a copy: the incoming array may be a read-only broadcast view or be shared with another leaf
        self.grad = grad.copy(order="K") if self.grad is None else self.grad + grad

    # --- arithmetic ------------------------------------------------------------
    def __add__(self, other): return Add.apply(self, other)
    def __radd__(self, other): return Add.apply(other, self)
    def __sub__(self, other): return Sub.apply(self, other)
    def __rsub__(self, other): return Sub.apply(other, self)
    def __mul__(self, other): return Mul.apply(self, other)
    def __rmul__(self, other): return Mul.apply(other, self)
    def __truediv__(self, other): return Div.apply(self, other)
    def __rtruediv__(self, other): return Div.apply(other, self)
    def __neg__(self): return Neg.apply(self)
    def __pow__(self, exponent): return Pow.apply(self, exponent=exponent)
    def __matmul__(self, other): return MatMul.apply(self, other)
    def __rmatmul__(self, other): return MatMul.apply(other, self)

    def exp(self): return Exp.apply(self)
    def log(self): return Log.apply(self)
    def sum(self, axis=None, keepdims=False): return Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        count = self.size if axis is None else int(np.prod([self.shape[a] for a in np.atleast_1d(axis)]))
        return self.sum(axis, keepdims) * (1.0 / count)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return Transpose.apply(self, axes=axes or None)

    @property
    def T(self):
        return self.transpose()

    def __getitem__(self, index):
        return GetItem.apply(self, index=index)


FREED_GRAPH = ("backward: the graph behind this tensor was already freed by an earlier backward(); "
               "recompute the forward pass to differentiate again")


def topological_order(root):
    """Every tensor that ``root`` depends on through recorded Functions, inputs first."""
    order, visited, stack = [], set(), [(root, False)]
    while stack:  # iterative depth-first search: deep nets do not hit Python's recursion limit
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        if tensor.creator is not None:
            if tensor.creator.inputs is None:
                raise RuntimeError(FREED_GRAPH)
            for parent in tensor.creator.inputs:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


class Function:
    """One differentiable operation.

    Subclasses define ``forward(self, *arrays, **options)`` and
    ``backward(self, grad)``, both on raw arrays; ``backward`` returns one
    gradient (or None) per tensor input.  Call ``SubClass.apply(...)``.
    ``name`` is how error messages call the operation.
    """

    name = None

    def __init__(self):
        self.inputs = None

    @classmethod
    def apply(cls, *inputs, **options):
        tensors = [x if isinstance(x, Tensor) else None for x in inputs]
        like = next((t.data for t in tensors if t is not None), None)
        arrays = [t.data if t is not None else constant_array(x, like) for t, x in zip(tensors, inputs)]
        check_inputs(cls.name or cls.__name__, arrays)
        function = cls()
        output = Tensor(function.forward(*arrays, **options))
        if _recording and any(t is not None and t.requires_grad for t in tensors):
            function.inputs = [t if t is not None else Tensor(a) for t, a in zip(tensors, arrays)]
            output.requires_grad = True
            output.creator = function
        return output

    def free(self):
        """Drop the inputs and everything saved for the backward."""
        self.__dict__.clear()
        self.inputs = None


DIFFERENTIABLE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_inputs(name, arrays):
    """The contract of every differentiable operation: its array inputs are float32 or float64 arrays on
    one device, all of one dtype; nothing is converted silently."""
    for array in arrays:
        if array.dtype not in DIFFERENTIABLE_DTYPES:
            raise TypeError(f"{name}: expected float32 or float64 inputs, got dtype {array.dtype} "
                            f"(shape {tuple(array.shape)}); cast with .astype(np.float32) first")
    devices = {device_of(a) for a in arrays}
    if len(devices) > 1:
        raise TypeError(f"{name}: all inputs must be on the same device, got {sorted(devices)}")
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) > 1:
        raise TypeError(f"{name}: all inputs must have the same dtype, got {sorted(map(str, dtypes))}")


def check_broadcast(name, a, b):
    """Raise a ValueError naming the operation unless the shapes of ``a`` and ``b`` broadcast together."""
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{name}: shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast together "
                         f"(each trailing dimension must be equal, or 1 in one of them)") from None


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
        return unbroadcast(grad, self.shapes[0]), unbroadcast(grad, self.shapes[1])


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
