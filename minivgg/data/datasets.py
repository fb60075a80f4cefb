"""One entry point for the datasets the examples know, by name."""
import hashlib
import os

import numpy as np

from .cifar10 import CIFAR10_CLASSES, load_cifar10
from .fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from .folder import ImageFolder, list_classes

DATASETS = ("fashion-mnist", "cifar10", "folder")


def load_split(dataset, split, root=None, download=False, classes=None):
    """``((images, labels), num_classes)`` for ``split`` 'train' or 'test' of a named dataset.

    'fashion-mnist' reads the Debian package's files unless ``root`` is given;
    'cifar10' reads the python-pickle batches in ``root``; 'folder' reads
    ``root/train`` or ``root/val`` laid out as ``<class>/<image>``.  The
    labels of ``root/val`` follow ``classes`` (a net's, when it is evaluated),
    by default the class folders of ``root/train``; ``root/val`` must hold
    exactly those classes.  Without ``classes`` or ``root/train`` (a test set
    on its own), ``root/val``'s own class folders are the classes.
    """
    check_dataset(dataset, root)
    if dataset == "fashion-mnist":
        return load_fashion_mnist(split, root, download), len(FASHION_MNIST_CLASSES)
    if dataset == "cifar10":
        return load_cifar10(root, split), 10
    if split == "train":
        folder = ImageFolder(os.path.join(root, "train"), classes=classes)
    else:
        if classes is None and os.path.isdir(os.path.join(root, "train")):
            classes = dataset_classes(dataset, root)
        folder = ImageFolder(os.path.join(root, "val"), classes=classes)
    return (folder.images, folder.labels), len(folder.classes)


def dataset_classes(dataset, root=None):
    """The class names of a named dataset, in label order (for 'folder': the sub-folders of ``root/train``)."""
    check_dataset(dataset, root)
    if dataset == "fashion-mnist":
        return list(FASHION_MNIST_CLASSES)
    if dataset == "cifar10":
        return list(CIFAR10_CLASSES)
    return list_classes(os.path.join(root, "train"))


def check_dataset(dataset, root):
    if dataset not in DATASETS:
        raise ValueError(f"load_split: unknown dataset {dataset!r}; valid ones are {', '.join(DATASETS)}")
    if dataset != "fashion-mnist" and root is None:
        raise ValueError(f"load_split: the dataset {dataset!r} needs a data directory (--data DIR)")


def fingerprint(images, labels):
    """A SHA-256 hex digest of a dataset split as ``load_split`` returns it, to tell whether two runs share it.

    Arrays are hashed whole (60,000 Fashion-MNIST images take a fraction of a
    second); the images of an ImageFolder stand by their file names (relative
    to the folder) and sizes, so nothing is decoded.
    """
    digest = hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    if isinstance(images, np.ndarray):
        digest.update(repr((images.dtype.str, images.shape)).encode())
        digest.update(np.ascontiguousarray(images).data)
    elif isinstance(getattr(images, "folder", None), ImageFolder):
        folder = images.folder
        for path, _ in folder.samples:
            digest.update(f"{os.path.relpath(path, folder.root)}\0{os.path.getsize(path)}\0".encode())
    else:
        raise TypeError(f"fingerprint: expected a NumPy array of images or ImageFolder.images, "
                        f"got {type(images).__name__}")
    return digest.hexdigest()
