"""Loading torchvision's VGG weights (the published ImageNet models) into minivgg.

torchvision's ``vgg11``, ``vgg13``, ``vgg16`` and ``vgg19`` (without batch
norm) are the paper's configurations A, B, D and E.  minivgg lays out its
layers in the same order and under the same names (``features.<i>`` and
``classifier.<i>``), with PyTorch's weight layout, so the mapping is one to
one: check that every key and shape fits, convert each tensor to NumPy.
torch is imported only here, and only when a path is given; the file is read
with ``torch.load(..., weights_only=True)``, which refuses to run pickled code.

The weights expect torchvision's preprocessing, not minivgg's: RGB / 255
normalised by ImageNet's mean and std (``minivgg.data.torchvision_transform``),
where minivgg's own nets take 0..255 minus the training mean.
"""
import os
import pickle

import numpy as np

from .vgg import DOWNSAMPLING, vgg

TORCHVISION_NAMES = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}
CONV_COUNTS = {8: "A", 10: "B", 13: "D", 16: "E"}  # convolutions of each configuration torchvision has
FIRST_CONV_CHANNELS = 64  # of every configuration at width 1


def load_torchvision_state_dict(model, state_dict_or_path):
    """Load a torchvision VGG state dict (a dict of tensors or a ``.pth`` path) into ``model``."""
    if model.config not in TORCHVISION_NAMES:
        raise ValueError(f"load_torchvision_state_dict: torchvision has no counterpart of configuration "
                         f"{model.config!r}; it has {', '.join(f'{c} ({n})' for c, n in TORCHVISION_NAMES.items())}")
    return model.load_state_dict(numpy_state(state_dict_or_path))


def torchvision_settings(state_dict_or_path):
    """The ``vgg()`` arguments a torchvision VGG state dict was made for, read off its names and shapes.

    Returns a dict of ``config`` (by the number of convolutions: 8, 10, 13,
    16 for A, B, D, E), ``num_classes``, ``in_channels``, ``input_size``
    (from the first FC layer's width: 224 for torchvision's own files) and
    ``width`` (the first convolution's channels / 64).
    """
    state = numpy_state(state_dict_or_path)
    convs = [name for name, value in state.items() if name.startswith("features.") and value.ndim == 4]
    if len(convs) not in CONV_COUNTS:
        raise ValueError(f"torchvision_settings: expected the weights of torchvision's vgg11, vgg13, vgg16 or "
                         f"vgg19 (8, 10, 13 or 16 convolutions named features.<i>.weight), got {len(convs)} "
                         f"convolutions among the keys {sorted(state)[:6]}...")
    first, last = state[convs[0]], state[convs[-1]]
    fcs = [name for name, value in state.items() if name.startswith("classifier.") and value.ndim == 2]
    side = int(round(np.sqrt(state[fcs[0]].shape[1] / last.shape[0])))
    return {"config": CONV_COUNTS[len(convs)], "num_classes": int(state[fcs[-1]].shape[0]),
            "in_channels": int(first.shape[1]), "input_size": DOWNSAMPLING * side,
            "width": first.shape[0] / FIRST_CONV_CHANNELS}


def vgg_from_torchvision(state_dict_or_path):
    """A minivgg VGG holding torchvision's weights (a state dict or a ``.pth`` path), its settings inferred."""
    state = numpy_state(state_dict_or_path)
    settings = torchvision_settings(state)
    model = vgg(settings["config"], settings["num_classes"], settings["in_channels"], settings["input_size"],
                settings["width"])
    return load_torchvision_state_dict(model, state)


def numpy_state(state_dict_or_path):
    """A state dict of NumPy arrays from a dict of tensors (or arrays) or a ``.pth`` path."""
    state = state_dict_or_path
    if not isinstance(state, dict):
        state = read_torch_file(state)
    return {name: to_numpy(value) for name, value in state.items()}


def read_torch_file(path):
    """The state dict in a ``.pth`` file, read with ``weights_only=True``: tensors and containers, never code."""
    try:
        import torch
    except ImportError:
        raise ImportError("load_torchvision_state_dict: reading a .pth file needs PyTorch; install its CPU build "
                          "with: pip install torch --index-url https://download.pytorch.org/whl/cpu") from None
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
