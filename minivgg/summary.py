"""``minivgg.summary``: a table of a model's layers, output shapes, parameters and FLOPs.

FLOPs are forward floating-point operations for the given input shape, a
multiply-add counting as two.  For VGG the table makes the paper's
trade-off visible: the FC layers hold most of the parameters, the
convolutions do most of the arithmetic.
"""
import numpy as np

from .autograd import Tensor, no_grad
from .backend import move_array
from .nn import Conv2d, Linear


def leaf_layers(model):
    """(dotted name, layer) for every module without children, in forward order."""
    return [(name, module) for name, module in model.named_modules() if not module._modules]


def summary(model, input_shape):
    """The table as a string; ``input_shape`` is (C, H, W) or (N, C, H, W).

    A layer that cannot tell its FLOPs (a Module without ``output_shape`` and
    ``flops``) is listed with "?" for them, and the totals name it; its output
    shape is measured by running it once (see ``count``).
    """
    shape = tuple(input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4:
        raise ValueError(f"summary: expected input_shape (C, H, W) or (N, C, H, W), got {tuple(input_shape)}")
    rows, totals = [], {"params": 0, "flops": 0, "conv": [0, 0], "fc": [0, 0], "uncounted": []}
    for name, layer in leaf_layers(model):
        if shape is not None and len(shape) == 4 and isinstance(layer, Linear):
            shape = (shape[0], int(np.prod(shape[1:])))  # the flatten between features and classifier
        check_fits(name, layer, shape, input_shape)
        params = sum(int(p.size) for p in layer.parameters())
        flops, shape = count(layer, shape)
        rows.append((name, repr(layer), "?" if shape is None else str(shape), params, flops))
        totals["params"] += params
        if flops is None:
            totals["uncounted"].append(name)
            continue
        totals["flops"] += flops
        kind = "conv" if isinstance(layer, Conv2d) else "fc" if isinstance(layer, Linear) else None
        if kind:
            totals[kind][0] += params
            totals[kind][1] += flops
    return format_table(rows, totals, input_shape)


def check_fits(name, layer, shape, input_shape):
    """Raise a ValueError unless ``layer`` accepts inputs of ``shape`` (channels or features), naming both."""
    if shape is not None and isinstance(layer, (Conv2d, Linear)):
        expected, what = layer.weight.shape[1], "channels" if isinstance(layer, Conv2d) else "features"
        if shape[1] != expected:
            raise ValueError(f"summary: layer {name} {layer!r} expects {expected} input {what}, but input_shape "
                             f"{tuple(input_shape)} gives it {shape[1]} (shape {shape})")


def count(layer, shape):
    """(FLOPs, output shape) of ``layer`` on an input of ``shape``; None for what is unknown.

    A layer without ``flops`` and ``output_shape`` is run once on zeros (a
    batch of one) to measure its output shape; its FLOPs stay unknown.
    """
    if shape is None:
        return None, None
    if hasattr(layer, "flops") and hasattr(layer, "output_shape"):
        return layer.flops(shape), layer.output_shape(shape)
    return None, measured_shape(layer, shape)


def measured_shape(layer, shape):
    """The output shape of one forward pass of ``layer`` on zeros, or None when it fails on them."""
    parameters = layer.parameters()
    dtype = parameters[0].dtype if parameters else np.float32
    zeros = move_array(np.zeros((1,) + tuple(shape[1:]), dtype), layer.device)
    try:
        with no_grad():
            out = layer(Tensor(zeros))
    except Exception:  # any failure of a user's layer on zeros: the table shows "?" instead of stopping
        return None
    return (shape[0],) + tuple(out.shape[1:])


def format_table(rows, totals, input_shape):
    header = ("layer", "type", "output shape", "params", "FLOPs")
    body = [(n, t, s, f"{p:,}", "?" if f is None else f"{f:,}") for n, t, s, p, f in rows]
    widths = [max(len(str(r[i])) for r in [header] + body) for i in range(5)]
    line = "  ".join("{:<%d}" % w if i < 3 else "{:>%d}" % w for i, w in enumerate(widths))
    out = [f"input {tuple(input_shape)}", line.format(*header), "-" * (sum(widths) + 8)]
    out += [line.format(*r) for r in body]
    out.append("-" * (sum(widths) + 8))
    out.append(f"total: {totals['params']:,} parameters, {totals['flops']:,} FLOPs "
               f"({totals['flops'] / 1e9:.3f} GFLOPs)")
    if totals["uncounted"]:
        out.append(f"FLOPs not counted (no flops/output_shape methods): "
                   f"{', '.join(totals['uncounted'])}")
    for kind, label in (("conv", "convolutions"), ("fc", "fully connected")):
        params, flops = totals[kind]
        out.append(f"{label}: {share(params, totals['params'])} of parameters, "
                   f"{share(flops, totals['flops'])} of FLOPs")
    return "\n".join(out)


def share(part, whole):
    return f"{100.0 * part / whole:.1f}%" if whole else "0%"
