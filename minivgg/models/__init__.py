"""Floor 4: the VGG configurations of the paper's Table 1, and its section 4.1 variant B-5x5."""
from .torchvision import load_torchvision_state_dict, torchvision_settings, vgg_from_torchvision
from .vgg import CONFIGS, TABLE_1, VARIANTS, VGG, DenseVGG, vgg, warm_start

__all__ = ["CONFIGS", "TABLE_1", "VARIANTS", "VGG", "DenseVGG", "load_torchvision_state_dict", "torchvision_settings", "vgg",
           "vgg_from_torchvision", "warm_start"]
