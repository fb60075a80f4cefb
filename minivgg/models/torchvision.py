"""Loading torchvision's VGG weights (the published ImageNet models) into minivgg.

torchvision's ``vgg11``, ``vgg13``, ``vgg16`` and ``vgg19`` (without batch
norm) are the paper's configurations A, B, D and E.  minivgg lays out its
layers in the same order and under the same names (``features.<i>`` and
``classifier.<i>``), with PyTorch's weight layout, so the mapping is one to
one: check that every key and shape fits, convert each tensor to NumPy.
torch is imported only here, and only when a path is given.
"""
import os
import pickle

import numpy as np

TORCHVISION_NAMES = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}


def load_torchvision_state_dict(model, state_dict_or_path):
    """Load a torchvision VGG state dict (a dict of tensors or a ``.pth`` path) into ``model``."""
    if model.config not in TORCHVISION_NAMES:
        raise ValueError(f"load_torchvision_state_dict: torchvision has no counterpart of configuration "
                         f"{model.config!r}; it has {', '.join(f'{c} ({n})' for c, n in TORCHVISION_NAMES.items())}")
    state = state_dict_or_path
    if not isinstance(state, dict):
        state = read_torch_file(state)
    arrays = {name: to_numpy(value) for name, value in state.items()}
    return model.load_state_dict(arrays)


def read_torch_file(path):
    """The state dict in a ``.pth`` file, read with ``weights_only=True``: tensors and containers, never code."""
    try:
        import torch
    except ImportError:
        raise ImportError("load_torchvision_state_dict: reading a .pth file needs PyTorch; "
                          "install it with: pip install torch") from None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_torchvision_state_dict: no file at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        raise ValueError(f"load_torchvision_state_dict: {path} was refused or is unreadable (torch.load with "
                         f"weights_only=True: {key_line(error)})") from None
    if not isinstance(state, dict):
        raise ValueError(f"load_torchvision_state_dict: {path} holds a {type(state).__name__}, expected a state "
                         f"dict of tensors")
    return state


def key_line(error):
    """The line of a torch.load error that says what was refused (PyTorch puts advice around it)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    return next((line for line in lines if "GLOBAL" in line), lines[0])


def to_numpy(value):
    """A torch tensor (or anything array-like) as a NumPy array."""
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)
