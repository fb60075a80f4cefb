"""Floor 2: a small reverse-mode autograd engine.

A ``Tensor`` wraps an array (NumPy or CuPy).  Every operation on tensors is a
``Function``: its ``forward`` computes the result from raw arrays and keeps
what the backward will need; its ``backward`` turns the gradient of the
result into the gradients of the inputs (the chain rule, one step).  When a
tensor that requires a gradient takes part, the result remembers the
Function that made it, and so the whole computation is recorded as a graph.

``loss.backward()`` walks that graph once, from the loss to the leaves, in reverse
topological order, so that every tensor has received the gradient of all its uses
before it passes its own on.  Leaves accumulate theirs in ``.grad``; the graph is freed.
The graph holds a ``Node`` for each result, not the result's data: an intermediate
array lives only as long as the code using it, or a Function that saved it, holds it.
"""
import contextlib

import numpy as np

from .backend import device_of, move_array
from .inputs import check_inputs, constant_array, initial_gradient, numeric_array
from .kernels import workspace

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


def as_tensor(x):
    """``x`` itself if it is a Tensor, else a constant Tensor wrapping it."""
    return x if isinstance(x, Tensor) else Tensor(x)


class Tensor:
    """An array with an optional gradient and a link to the Function that made it."""

    # NumPy defers to our reflected operators: ``array * tensor`` calls Tensor.__rmul__ (recorded)
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        data = numeric_array(data, dtype)
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"Tensor: only floating-point tensors can require a gradient, got dtype {data.dtype}")
        self.data, self.grad, self.requires_grad = data, None, requires_grad
        self._node = None  # set when a recorded Function makes this tensor

    node = property(lambda self: self._node or self)  # what the graph holds of it: a leaf is its own node
    creator = property(lambda self: self._node and self._node.creator)  # the Function that made it, or None

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    device = property(lambda self: device_of(self.data))
    __len__ = lambda self: len(self.data)  # noqa: E731

    def __repr__(self):
        """Shape, dtype and device; the values too when there are at most 8 of them."""
        values = f"{np.array2string(self.numpy(), separator=', ')}, " if self.size <= 8 else ""
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({values}shape={self.shape}, dtype={self.dtype}, device={self.device!r}{grad})"

    def numpy(self):
        """The data as a NumPy array (copied from the GPU if needed)."""
        return self.data.get() if hasattr(self.data, "get") else self.data

    def item(self):
        """The value of a one-element tensor as a Python number."""
        return self.numpy().item()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def to(self, device):
        """A copy of this tensor on ``device`` ('cpu', 'cuda', 'cuda:i'); a leaf."""
        return Tensor(move_array(self.data, device), requires_grad=self.requires_grad)

    # --- backward ------------------------------------------------------------
    def backward(self, grad=None):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires it.

        ``grad`` defaults to 1 for a one-element tensor.  The graph is freed
        afterwards: a second ``backward()`` through it raises an error.
        """
        grads = {id(self.node): initial_gradient(self, grad)}
        for tensor in reversed(topological_order(self.node)):
            grad = grads.pop(id(tensor), None)
            if grad is None:  # every use of this tensor returned no gradient
                continue
            if tensor.creator is None:
                tensor._accumulate(grad)
                continue
            for parent, parent_grad in zip(tensor.creator.inputs, tensor.creator.backward(grad)):
                if parent_grad is not None and parent.requires_grad:
                    key = id(parent)
                    grads[key] = grads[key] + parent_grad if key in grads else parent_grad
            tensor.creator.free()  # the freed Function stays as creator: a later backward() through it raises

    def _accumulate(self, grad):
        # kept when the Function made it for this leaf alone; a view (of a broadcast, of a buffer) is copied
        self.grad = workspace.own_or_copy(grad) if self.grad is None else self.grad + grad

    # --- arithmetic: Functions like any other, in minivgg/functions/arithmetic.py ---
    def __add__(self, other): return arithmetic.Add.apply(self, other)
    def __radd__(self, other): return arithmetic.Add.apply(other, self)
    def __sub__(self, other): return arithmetic.Sub.apply(self, other)
    def __rsub__(self, other): return arithmetic.Sub.apply(other, self)
    def __mul__(self, other): return arithmetic.Mul.apply(self, other)
    def __rmul__(self, other): return arithmetic.Mul.apply(other, self)
    def __truediv__(self, other): return arithmetic.Div.apply(self, other)
    def __rtruediv__(self, other): return arithmetic.Div.apply(other, self)
    def __neg__(self): return arithmetic.Neg.apply(self)
    def __pow__(self, exponent): return arithmetic.Pow.apply(self, exponent=exponent)
    def __matmul__(self, other): return arithmetic.MatMul.apply(self, other)
    def __rmatmul__(self, other): return arithmetic.MatMul.apply(other, self)

    def exp(self): return arithmetic.Exp.apply(self)
    def log(self): return arithmetic.Log.apply(self)
    def sum(self, axis=None, keepdims=False): return arithmetic.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False): return arithmetic.mean(self, axis, keepdims)
    def reshape(self, *shape): return arithmetic.Reshape.apply(self, shape=arithmetic.one_tuple(shape))
    def transpose(self, *axes): return arithmetic.Transpose.apply(self, axes=arithmetic.one_tuple(axes) or None)
    T = property(lambda self: self.transpose())
    def __getitem__(self, index): return arithmetic.GetItem.apply(self, index=index)


class Node:
    """A recorded result in the graph: the Function that made it (``creator``), not its data."""
    requires_grad = True
    def __init__(self, creator): self.creator = creator  # noqa: E704


def topological_order(root):
    """Every node (leaf tensor or Node) that ``root`` depends on through recorded Functions, inputs first."""
    order, visited, stack = [], set(), [(root, False)]
    while stack:  # iterative depth-first search: deep nets do not hit Python's recursion limit
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
        elif id(tensor) not in visited:
            visited.add(id(tensor))
            stack.append((tensor, True))
            stack.extend((parent, False) for parent in parents(tensor) if id(parent) not in visited)
    return order


def parents(tensor):
    """The inputs that need a gradient of the Function that made ``tensor`` (none for a leaf)."""
    if tensor.creator is None:
        return []
    if tensor.creator.inputs is None:
        raise RuntimeError("backward: the graph behind this tensor was already freed by an earlier backward(); "
                           "recompute the forward pass to differentiate again")
    return [parent for parent in tensor.creator.inputs if parent.requires_grad]


class Function:
    """One differentiable operation.

    Subclasses define ``forward(self, *arrays, **options)`` and ``backward(self, grad)``, both on
    raw arrays; ``backward`` returns one gradient (or None) per tensor input, a different array for
    each (a leaf may keep the array it gets as its ``.grad``).  Call ``SubClass.apply(...)``;
    ``name`` is how error messages call the operation.  ``forward`` may read ``self.recorded``:
    False when no backward will follow (no input needs a gradient, or under ``no_grad``).
    """

    name = None
    inputs = None  # the inputs' nodes, set when the call is recorded; None again once freed

    @classmethod
    def apply(cls, *inputs, **options):
        tensors = [x if isinstance(x, Tensor) else None for x in inputs]
        like = next((t.data for t in tensors if t is not None), None)
        arrays = [t.data if t is not None else constant_array(x, like) for t, x in zip(tensors, inputs)]
        check_inputs(cls.name or cls.__name__, arrays)
        function = cls()
        function.recorded = _recording and any(t is not None and t.requires_grad for t in tensors)
        output = Tensor(function.forward(*arrays, **options))
        if function.recorded:
            function.inputs = [t.node if t is not None else Tensor(a) for t, a in zip(tensors, arrays)]
            output.requires_grad, output._node = True, Node(function)
        return output

    def free(self):
        """Drop the inputs and everything saved for the backward."""
        self.__dict__.clear()


from .functions import arithmetic  # noqa: E402  (it builds on Function, defined above)
