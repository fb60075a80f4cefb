"""One entry point for the datasets the examples know, by name."""
import os

from .cifar10 import load_cifar10
from .fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from .folder import ImageFolder

DATASETS = ("fashion-mnist", "cifar10", "folder")


def load_split(dataset, split, root=None, download=False):
    """``((images, labels), num_classes)`` for ``split`` 'train' or 'test' of a named dataset.

    'fashion-mnist' reads the Debian package's files unless ``root`` is given;
    'cifar10' reads the python-pickle batches in ``root``; 'folder' reads
    ``root/train`` or ``root/val`` laid out as ``<class>/<image>``.
    """
    if dataset not in DATASETS:
        raise ValueError(f"load_split: unknown dataset {dataset!r}; valid ones are {', '.join(DATASETS)}")
    if dataset == "fashion-mnist":
        return load_fashion_mnist(split, root, download), len(FASHION_MNIST_CLASSES)
    if root is None:
        raise ValueError(f"load_split: the dataset {dataset!r} needs a data directory (--data DIR)")
    if dataset == "cifar10":
        return load_cifar10(root, split), 10
    folder = ImageFolder(os.path.join(root, "train" if split == "train" else "val"))
    return (folder.images, folder.labels), len(folder.classes)
