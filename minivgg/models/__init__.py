"""Floor 4: the VGG configurations of the paper's Table 1."""
from .torchvision import load_torchvision_state_dict, torchvision_settings, vgg_from_torchvision
from .vgg import TABLE_1, VGG, DenseVGG, vgg, warm_start

__all__ = ["TABLE_1", "VGG", "DenseVGG", "load_torchvision_state_dict", "torchvision_settings", "vgg",
           "vgg_from_torchvision", "warm_start"]
