"""CIFAR-10: a small fake batch directory in the python-pickle format."""
import pickle

import numpy as np
import pytest

from minivgg.data import CIFAR10_CLASSES, cifar10_class_names, load_cifar10

PER_BATCH = 4


def write_batch(path, data, labels, keys=(b"data", b"labels")):
    """Pickle one batch the way the Python 2 originals are stored (bytes keys, protocol 2)."""
    with open(path, "wb") as f:
        pickle.dump({keys[0]: data, keys[1]: labels, b"batch_label": b"fake"}, f, protocol=2)


@pytest.fixture
def cifar_dir(tmp_path):
    """A directory with five training batches, one test batch and batches.meta."""
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        write_batch(tmp_path / name, data, rng.integers(0, 10, PER_BATCH).tolist())
    with open(tmp_path / "batches.meta", "wb") as f:
        names = [n.encode() for n in CIFAR10_CLASSES]
        pickle.dump({b"label_names": names, b"num_cases_per_batch": PER_BATCH}, f, protocol=2)
    return tmp_path


def test_train_and_test_splits(cifar_dir):
    images, labels = load_cifar10(str(cifar_dir), "train")
    assert images.shape == (5 * PER_BATCH, 3, 32, 32) and images.dtype == np.uint8
    assert labels.shape == (5 * PER_BATCH,) and labels.dtype == np.int64
    images, labels = load_cifar10(str(cifar_dir), "test")
    assert images.shape == (PER_BATCH, 3, 32, 32)


def test_rows_become_chw_planes(cifar_dir):
    with open(cifar_dir / "data_batch_1", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    images, labels = load_cifar10(str(cifar_dir), "train")
    row = batch[b"data"][1]
    assert np.array_equal(images[1, 0], row[:1024].reshape(32, 32))  # red
    assert np.array_equal(images[1, 2], row[2048:].reshape(32, 32))  # blue
    assert labels[1] == batch[b"labels"][1]


def test_str_keys_are_accepted(cifar_dir):
    write_batch(cifar_dir / "test_batch", np.zeros((2, 3072), np.uint8), [1, 2], keys=("data", "labels"))
    _, labels = load_cifar10(str(cifar_dir), "test")
    assert labels.tolist() == [1, 2]


def test_class_names_from_meta(cifar_dir):
    assert cifar10_class_names(str(cifar_dir)) == list(CIFAR10_CLASSES)


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_cifar10(str(tmp_path / "nowhere"), "train")


def test_missing_batch_file_is_named(cifar_dir):
    (cifar_dir / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(str(cifar_dir), "train")


@pytest.mark.parametrize("data, labels, message", [
    (np.zeros((2, 3000), np.uint8), [0, 1], r"shape \(n, 3072\), got uint8 of shape \(2, 3000\)"),
    (np.zeros((2, 3072), np.float32), [0, 1], "got float32"),
    (np.zeros((2, 3072), np.uint8), [0], "2 integers"),
    (np.zeros((2, 3072), np.uint8), [0, 10], r"0\.\.9, got 0\.\.10"),
])
def test_malformed_batch(cifar_dir, data, labels, message):
    write_batch(cifar_dir / "test_batch", data, labels)
    with pytest.raises(ValueError, match=message) as err:
        load_cifar10(str(cifar_dir), "test")
    assert "test_batch" in str(err.value)


def test_not_a_pickle(cifar_dir):
    (cifar_dir / "test_batch").write_bytes(b"this is not a pickle")
    with pytest.raises(ValueError, match="test_batch is not a readable pickle"):
        load_cifar10(str(cifar_dir), "test")


def test_missing_key_and_wrong_type(cifar_dir):
    with open(cifar_dir / "test_batch", "wb") as f:
        pickle.dump({b"labels": [0]}, f)
    with pytest.raises(ValueError, match="no 'data' entry"):
        load_cifar10(str(cifar_dir), "test")
    with open(cifar_dir / "test_batch", "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(ValueError, match="should hold a dict, got list"):
        load_cifar10(str(cifar_dir), "test")


def test_unknown_split(cifar_dir):
    with pytest.raises(ValueError, match="got 'valid'"):
        load_cifar10(str(cifar_dir), "valid")
