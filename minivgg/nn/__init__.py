"""Floor 3: layers and the Module they are built from."""
from . import init
from .layers import (Conv2d, Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2d, ReLU, Sequential,
                     set_dropout_state)
from .module import Module, Parameter, read_npz, save_arrays

__all__ = ["Conv2d", "Dropout", "Flatten", "Linear", "LocalResponseNorm", "MaxPool2d", "Module", "Parameter",
           "ReLU", "Sequential", "init", "read_npz", "save_arrays", "set_dropout_state"]
