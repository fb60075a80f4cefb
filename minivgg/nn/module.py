"""Floor 3: ``Module`` and ``Parameter``, the containers that layers are made of.

A Module owns Parameters (leaf tensors that training updates) and child
Modules, registered simply by assigning them as attributes, in order.  From
these it derives everything a model needs: the list of parameters with their
dotted names, train/eval mode, saving and loading the weights as plain NumPy
arrays, and moving them to another device.
"""
import os
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from ..autograd import Tensor
from ..backend import device_of, move_array


class Parameter(Tensor):
    """A leaf tensor that requires a gradient: a weight or a bias."""

    def __init__(self, data):
        super().__init__(data, requires_grad=True)


class Module:
    """Base class of every layer and model; subclasses define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        # replacing a registered entry keeps its place (a Sequential's order is its forward order)
        if isinstance(value, Parameter):
            self._modules.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._parameters.pop(name, None)
            self._modules[name] = value
        else:
            self._parameters.pop(name, None)
            self._modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def __repr__(self):
        """``Name(settings)``, then the children one per line, indented, as PyTorch prints a model."""
        name, extra = type(self).__name__, self.extra_repr()
        if not self._modules:
            return f"{name}({extra})"
        lines = [f"  {extra}"] if extra else []
        lines += [f"  ({key}): {child!r}".replace("\n", "\n  ") for key, child in self._modules.items()]
        return f"{name}(\n" + "\n".join(lines) + "\n)"

    def extra_repr(self):
        """What ``repr`` shows of the module itself; by default the shapes of its own parameters."""
        return ", ".join(f"{key}={tuple(p.shape)}" for key, p in self._parameters.items())

    # --- walking the tree -------------------------------------------------
    def named_modules(self, prefix=""):
        """This module and every descendant, with dotted names, depth first."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return [module for _, module in self.named_modules()]

    def named_parameters(self):
        """(dotted name, Parameter) for every parameter, in registration order."""
        for prefix, module in self.named_modules():
            for name, parameter in module._parameters.items():
                yield (f"{prefix}.{name}" if prefix else name), parameter

    def parameters(self):
        return [parameter for _, parameter in self.named_parameters()]

    def num_parameters(self):
        return sum(int(p.size) for p in self.parameters())

    def zero_grad(self):
        for parameter in self.parameters():
            parameter.grad = None

    # --- modes and devices ----------------------------------------------------
    def train(self, mode=True):
        """Training mode (dropout active) or, with mode=False, evaluation mode."""
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def to(self, device):
        """Move every parameter (in place: the Parameter objects stay the same) to ``device``."""
        for parameter in self.parameters():
            parameter.data = move_array(parameter.data, device)
            parameter.grad = None if parameter.grad is None else move_array(parameter.grad, device)
        return self

    @property
    def device(self):
        parameters = self.parameters()
        return device_of(parameters[0].data) if parameters else "cpu"

    # --- weights as plain arrays ----------------------------------------------
    def state_dict(self):
        """An ordered {dotted name: NumPy array copy} of every parameter."""
        return OrderedDict((name, np.array(p.numpy(), copy=True)) for name, p in self.named_parameters())

    def load_state_dict(self, state):
        """Copy arrays from ``state`` into the parameters, in place; the keys and shapes must match exactly."""
        own = OrderedDict(self.named_parameters())
        check_state_keys(type(self).__name__, own, state)
        values = {name: np.asarray(state[name]) for name in own}
        wrong = [f"{name} has shape {values[name].shape} in the state dict but {parameter.shape} in the model"
                 for name, parameter in own.items() if values[name].shape != parameter.shape]
        wrong += [f"{name} holds {count_non_finite(values[name])} non-finite values (NaN or infinity)"
                  for name in own if count_non_finite(values[name])]
        if wrong:  # checked before anything is copied: a failed load leaves the model as it was
            raise ValueError(f"load_state_dict: {'; '.join(wrong)}")
        for name, parameter in own.items():  # in place: views of a parameter (to_dense) keep sharing it
            parameter.data[...] = move_array(values[name].astype(parameter.dtype), parameter.device)
        return self

    def save(self, path):
        """Write the weights to a ``.npz`` file, atomically (temporary file, then rename)."""
        save_arrays(path, self.state_dict())

    def load(self, path):
        """Read weights written by ``save`` (a ``.npz`` archive; pickled objects in it are refused)."""
        state = read_npz(path, "load")
        try:
            return self.load_state_dict(state)
        except (KeyError, ValueError) as error:
            raise ValueError(f"load: {path}: {error.args[0]}") from None


def count_non_finite(array):
    """How many entries of a floating-point array are NaN or infinite (0 for other dtypes)."""
    return int(array.size - np.isfinite(array).sum()) if array.dtype.kind == "f" else 0


def check_state_keys(model_name, own, state):
    missing = [name for name in own if name not in state]
    extra = [name for name in state if name not in own]
    if missing or extra:
        raise KeyError(f"load_state_dict: the state dict does not fit {model_name}: "
                       f"missing keys {missing}, unexpected keys {extra}")


def read_npz(path, what):
    """Every array of the ``.npz`` archive ``path``, read with pickles refused (a pickle can run code).

    Any problem (no such file, an empty or truncated file, a single ``.npy``
    array, a pickle, pickled objects inside the archive) raises a ValueError
    or FileNotFoundError that starts with ``what`` (the command or function
    reading it) and names the file.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what}: no file at {path}")
    if os.path.isdir(path):
        raise ValueError(f"{what}: {path} is a directory, expected a .npz file")
    with open(path, "rb") as file:
        head = file.read(8)
    problem = npz_header_problem(head)
    if problem:
        raise ValueError(f"{what}: {path} is not a .npz archive: {problem}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, ValueError) as error:
        reason = (f"it is truncated or damaged ({type(error).__name__}: {error})" if "allow_pickle" not in str(error)
                  else "it holds pickled Python objects, which are refused because unpickling can run code")
        raise ValueError(f"{what}: {path} is not a readable .npz archive: {reason}") from None


def npz_header_problem(head):
    """What the first bytes of a file say is wrong with it as a ``.npz`` archive, or None if it is a zip file."""
    if head.startswith(b"PK"):
        return None
    if not head:
        return "the file is empty (0 bytes)"
    if head.startswith(b"\x93NUMPY"):
        return "it holds a single array (.npy); a checkpoint or weights file is a .npz archive of named arrays"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "it is a Python pickle, which is refused because unpickling can run code"
    return f"it does not start like a zip archive (first bytes {head!r})"


def save_arrays(path, arrays):
    """``numpy.savez`` to ``path``, via a temporary file renamed into place (never half-written)."""
    path = os.fspath(path)
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temporary, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):  # a failed write leaves the previous file and no litter
            os.remove(temporary)
        raise
