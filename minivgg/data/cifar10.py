"""CIFAR-10 (Krizhevsky, 2009): 60,000 colour 32x32 images in 10 classes.

Reads the "CIFAR-10 python version" directory (``cifar-10-batches-py``):
``data_batch_1`` .. ``data_batch_5`` (10,000 training images each),
``test_batch`` (10,000 test images) and ``batches.meta`` (the class names).
Each batch is a pickled dict with

- ``data``: uint8 array of shape (10000, 3072); a row holds the 1024 red
  values, then the 1024 green, then the 1024 blue, each a 32x32 image in
  row-major order, so ``data.reshape(-1, 3, 32, 32)`` is CHW;
- ``labels``: a list of 10000 ints in 0..9.

The batches were pickled by Python 2, so their keys load as bytes
(``b"data"``); both bytes and str keys are accepted. A pickle can run any
code while it loads, so these files are read by a restricted unpickler that
builds only what a CIFAR batch holds (dicts, lists, numbers, strings, bytes
and NumPy arrays) and refuses, naming the file, a pickle that asks for
anything else.
"""
import codecs
import importlib
import os
import pickle

import numpy as np

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)


def load_cifar10(root, split="train"):
    """Load one split of CIFAR-10 from the python-pickle batch directory ``root``.

    Returns ``(images, labels)``: images uint8 of shape (N, 3, 32, 32) (CHW,
    RGB), labels int64 of shape (N,), values 0..9 indexing ``CIFAR10_CLASSES``.
    N is 50,000 for ``"train"`` and 10,000 for ``"test"``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"load_cifar10: split must be 'train' or 'test', got {split!r}")
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"load_cifar10: {root} is not a directory; expected the extracted "
            f"cifar-10-batches-py folder of https://www.cs.toronto.edu/~kriz/cifar.html"
        )
    names = TRAIN_BATCHES if split == "train" else TEST_BATCHES
    batches = [read_cifar_batch(os.path.join(root, name)) for name in names]
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    return images, labels


def cifar10_class_names(root):
    """Return the class names stored in ``root/batches.meta`` (a list of 10 str)."""
    meta = _unpickle(os.path.join(root, "batches.meta"))
    names = _field(meta, "label_names", os.path.join(root, "batches.meta"))
    return [n.decode() if isinstance(n, bytes) else n for n in names]


def read_cifar_batch(path):
    """Read one pickled batch file; returns uint8 (n, 3, 32, 32) images and int64 (n,) labels."""
    batch = _unpickle(path)
    data = np.asarray(_field(batch, "data", path))
    labels = np.asarray(_field(batch, "labels", path))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"read_cifar_batch: {path}: 'data' should be uint8 of shape (n, 3072), "
            f"got {data.dtype} of shape {data.shape}"
        )
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"read_cifar_batch: {path}: 'labels' should be {len(data)} integers (one per image), "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)):
        raise ValueError(
            f"read_cifar_batch: {path}: labels should lie in 0..9, got {labels.min()}..{labels.max()}"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _unpickle(path):
    """Unpickle a CIFAR file, turning a missing, unreadable or refused file into an error naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_cifar10: missing file {path}")
    try:
        with open(path, "rb") as f:
            return CifarUnpickler(f, encoding="bytes").load()
    except RefusedPickle as err:
        raise ValueError(f"load_cifar10: {path} was refused: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
            AttributeError, ImportError, IndexError) as err:
        raise ValueError(f"load_cifar10: {path} is not a readable pickle ({err})") from err


class RefusedPickle(pickle.UnpicklingError):
    """A pickle asked for a Python object that a CIFAR batch never holds."""


# The only callables a CIFAR batch needs: NumPy's array reconstruction (under its NumPy 1 and 2 module
# names; ``_frombuffer`` for protocol 5) and ``_codecs.encode``, which protocol 2 uses for bytes.
ALLOWED_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, numbers, strings, bytes and NumPy arrays, and nothing else.

    Every other global (``os.system``, ``builtins.eval``, any class) is
    refused before it is looked up, so a crafted file runs no code.
    """

    def find_class(self, module, name):
        if (module, name) not in ALLOWED_GLOBALS:
            raise RefusedPickle(f"it asks for {module}.{name}, but a CIFAR batch holds only dicts, lists, numbers, "
                                f"strings, bytes and NumPy arrays (loading anything else could run code)")
        if module == "_codecs":
            return codecs.encode
        if module == "numpy":
            return getattr(np, name)
        return numpy_internal(module.rsplit(".", 1)[1], name)


def numpy_internal(module, name):
    """``numpy._core.<module>.<name>`` (NumPy 2), or ``numpy.core.<module>.<name>`` on NumPy 1."""
    try:
        return getattr(importlib.import_module(f"numpy._core.{module}"), name)
    except ImportError:
        return getattr(importlib.import_module(f"numpy.core.{module}"), name)


def _field(batch, key, path):
    """Return ``batch[key]``, accepting Python 2 (bytes) or Python 3 (str) keys."""
    if not isinstance(batch, dict):
        raise ValueError(f"load_cifar10: {path} should hold a dict, got {type(batch).__name__}")
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise ValueError(f"load_cifar10: {path} has no {key!r} entry (keys: {sorted(map(str, batch))})")
