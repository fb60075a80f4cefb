"""A numerical-gradient checker that a learner can call on any function of tensors.

For a function f of tensors with a scalar result, the derivative with respect
to one input element is approximated by central differences,

    df/dx_i  ~  (f(x + eps e_i) - f(x - eps e_i)) / (2 eps),

whose error shrinks like eps**2.  ``gradcheck`` compares this estimate with
what ``backward()`` computes, element by element, in float64.  A function
with a non-scalar result is first reduced to the scalar sum(f(x) * r) for a
fixed random r, which checks the whole vector-Jacobian product.
"""
import numpy as np

from .autograd import Tensor, no_grad


class GradcheckError(AssertionError):
    """The analytic and numerical gradients disagree."""


def gradcheck(fn, *inputs, eps=1e-6, rtol=1e-5, atol=1e-8, seed=0, raise_error=True):
    """Check the gradients of ``fn(*inputs)`` w.r.t. every input that requires a gradient.

    Inputs are Tensors (or arrays, taken as constants).  Tensors are converted
    to float64 first.  The check passes when, for every input,

        max |analytic - numerical|  <=  atol + rtol * max |numerical|.

    Returns True, or raises ``GradcheckError`` naming the input and the
    element that differ most (or returns False with ``raise_error=False``).
    """
    inputs = [to_float64(x) for x in inputs]
    projection = output_projection(fn, inputs, seed)
    analytic = analytic_gradients(fn, inputs, projection)
    for position, tensor in enumerate(inputs):
        if not (isinstance(tensor, Tensor) and tensor.requires_grad):
            continue
        numerical = numerical_gradient(fn, inputs, position, projection, eps)
        message = compare(position, analytic[position], numerical, rtol, atol)
        if message:
            if raise_error:
                raise GradcheckError(message)
            return False
    return True


def to_float64(x):
    if isinstance(x, Tensor) and x.dtype.kind == "f":
        return Tensor(x.numpy().astype(np.float64), requires_grad=x.requires_grad)
    return x


def scalar_output(fn, inputs, projection):
    out = fn(*inputs)
    return out if projection is None else (out * projection).sum()


def output_projection(fn, inputs, seed):
    """None for a scalar-valued ``fn``; otherwise a fixed random array shaped like its output."""
    with no_grad():
        out = fn(*inputs)
    if out.size == 1:
        return None
    return np.random.default_rng(seed).standard_normal(out.shape)


def analytic_gradients(fn, inputs, projection):
    for x in inputs:
        if isinstance(x, Tensor):
            x.grad = None
    scalar_output(fn, inputs, projection).backward()
    return [x.grad if isinstance(x, Tensor) and x.grad is not None else np.zeros(np.shape(x.data))
            if isinstance(x, Tensor) else None for x in inputs]


def numerical_gradient(fn, inputs, position, projection, eps):
    """Central differences for every element of ``inputs[position]``, in place on its data."""
    data = inputs[position].data
    grad = np.zeros_like(data)
    flat_data, flat_grad = data.reshape(-1), grad.reshape(-1)
    with no_grad():
        for i in range(flat_data.size):
            original = flat_data[i]
            flat_data[i] = original + eps
            plus = scalar_output(fn, inputs, projection).item()
            flat_data[i] = original - eps
            minus = scalar_output(fn, inputs, projection).item()
            flat_data[i] = original
            flat_grad[i] = (plus - minus) / (2 * eps)
    return grad


def compare(position, analytic, numerical, rtol, atol):
    """A message describing the worst mismatch, or '' if within tolerance."""
    difference = np.abs(analytic - numerical)
    scale = np.abs(numerical).max(initial=0.0)
    worst = np.unravel_index(difference.argmax(), difference.shape) if difference.size else ()
    if difference.size == 0 or difference[worst] <= atol + rtol * scale:
        return ""
    return (f"gradcheck: input {position} (shape {numerical.shape}): element {tuple(int(i) for i in worst)} "
            f"has analytic gradient {analytic[worst]:.10g} but numerical {numerical[worst]:.10g}; "
            f"difference {difference[worst]:.3g} > tolerance {atol + rtol * scale:.3g} "
            f"(relative to the largest numerical gradient, {scale:.3g})")
