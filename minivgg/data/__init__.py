"""The data floor: datasets, the paper's augmentation, and a prefetching loader.

Images travel as uint8 CHW arrays (channels, height, width) until a
transform or the loader turns them into float32 batches (N, C, H, W) on the
0..255 scale. Imports only NumPy, Pillow and the standard library.
"""
from .datasets import DATASETS, dataset_classes, fingerprint, load_split
from .cifar10 import CIFAR10_CLASSES, cifar10_class_names, load_cifar10, read_cifar_batch
from .fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist, read_idx
from .folder import ImageFolder, decode_image
from .loader import DataLoader, random_subset, train_val_split
from .seeding import sample_rng
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TestTransform,
    TrainTransform,
    center_crop,
    colour_shift,
    compute_mean,
    compute_pca,
    draw_scale,
    normalise,
    random_crop,
    random_flip,
    rescale,
    torchvision_normalisation,
    torchvision_transform,
)

__all__ = [
    "DATASETS", "dataset_classes", "fingerprint", "load_split",
    "CIFAR10_CLASSES", "cifar10_class_names", "load_cifar10", "read_cifar_batch",
    "FASHION_MNIST_CLASSES", "load_fashion_mnist", "read_idx",
    "ImageFolder", "decode_image",
    "DataLoader", "random_subset", "train_val_split",
    "sample_rng",
    "IMAGENET_MEAN", "IMAGENET_STD", "TestTransform", "TrainTransform", "center_crop", "colour_shift",
    "compute_mean", "compute_pca", "draw_scale", "normalise", "random_crop", "random_flip", "rescale",
    "torchvision_normalisation", "torchvision_transform",
]
