"""Fashion-MNIST: the real Debian files, the IDX reader's checks, and the download path."""
import gzip
import hashlib
import os

import numpy as np
import pytest

from minivgg.data import fashion_mnist as fm
from minivgg.data import FASHION_MNIST_CLASSES, load_fashion_mnist, read_idx

needs_debian_files = pytest.mark.skipif(
    not os.path.isdir(fm.DEBIAN_ROOT),
    reason=f"{fm.DEBIAN_ROOT} is absent: as root, `apt-get install dataset-fashion-mnist`",
)


def write_idx(path, magic, array, cut=0, extra=b""):
    """Write ``array`` as a gzip IDX file with ``magic``, minus ``cut`` trailing bytes, plus ``extra``."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes() + extra
    with gzip.open(path, "wb") as f:
        f.write(raw[:len(raw) - cut])
    return str(path)


def write_split(root, split="train", n_images=5, n_labels=5):
    """Write a small fake split into ``root``; return its images (N, 28, 28) and labels."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n_images, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_labels, dtype=np.uint8)
    image_file, label_file = fm.FILES[split]
    write_idx(root / image_file, fm.IMAGE_MAGIC, images)
    write_idx(root / label_file, fm.LABEL_MAGIC, labels)
    return images, labels


@pytest.fixture(scope="module")
def real_train():
    return load_fashion_mnist("train")


@needs_debian_files
def test_real_train_split_shapes_padding_and_labels(real_train):
    images, labels = real_train
    assert images.shape == (60000, 1, 32, 32) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.int64
    assert np.array_equal(np.bincount(labels), np.full(10, 6000))
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert not images[:, 0, border].any()
    assert images[:, 0, 2:30, 2:30].max() == 255


@needs_debian_files
def test_real_train_split_matches_raw_idx(real_train):
    raw = read_idx(os.path.join(fm.DEBIAN_ROOT, "train-images-idx3-ubyte.gz"), fm.IMAGE_MAGIC)
    assert np.array_equal(real_train[0][:, 0, 2:30, 2:30], raw)


@needs_debian_files
def test_real_test_split():
    images, labels = load_fashion_mnist("test")
    assert images.shape == (10000, 1, 32, 32) and images.dtype == np.uint8
    assert np.array_equal(np.bincount(labels, minlength=10), np.full(10, 1000))


def test_class_names():
    assert len(FASHION_MNIST_CLASSES) == 10
    assert FASHION_MNIST_CLASSES[0] == "T-shirt/top" and FASHION_MNIST_CLASSES[9] == "Ankle boot"


def test_fake_split_from_root(tmp_path):
    images, labels = write_split(tmp_path, "test")
    x, y = load_fashion_mnist("test", root=str(tmp_path))
    assert x.shape == (5, 1, 32, 32) and y.dtype == np.int64
    assert np.array_equal(x[:, 0, 2:30, 2:30], images)
    assert np.array_equal(y, labels)


def test_truncated_content_names_the_file(tmp_path):
    path = write_idx(tmp_path / "x.gz", fm.IMAGE_MAGIC, np.zeros((3, 28, 28)), cut=100)
    with pytest.raises(ValueError, match="truncated") as err:
        read_idx(path, fm.IMAGE_MAGIC)
    assert path in str(err.value)


def test_truncated_gzip_stream_names_the_file(tmp_path):
    path = write_idx(tmp_path / "x.gz", fm.IMAGE_MAGIC, np.arange(3 * 28 * 28).reshape(3, 28, 28))
    whole = (tmp_path / "x.gz").read_bytes()
    (tmp_path / "x.gz").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ValueError, match="gzip") as err:
        read_idx(path, fm.IMAGE_MAGIC)
    assert path in str(err.value)


def test_extra_bytes_are_an_error(tmp_path):
    path = write_idx(tmp_path / "y.gz", fm.LABEL_MAGIC, np.zeros(4), extra=b"\0")
    with pytest.raises(ValueError, match="longer than its header says"):
        read_idx(path, fm.LABEL_MAGIC)


def test_wrong_magic(tmp_path):
    path = write_idx(tmp_path / "y.gz", fm.LABEL_MAGIC, np.zeros(4))
    with pytest.raises(ValueError, match="0x00000801, expected 0x00000803") as err:
        read_idx(path, fm.IMAGE_MAGIC)
    assert path in str(err.value)


def test_label_image_count_mismatch(tmp_path):
    write_split(tmp_path, "train", n_images=5, n_labels=4)
    with pytest.raises(ValueError, match="5 images but .* 4 labels"):
        load_fashion_mnist("train", root=str(tmp_path))


def test_unknown_split():
    with pytest.raises(ValueError, match="'train' or 'test', got 'val'"):
        load_fashion_mnist("val")


def test_missing_directory_says_how_to_get_the_files(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_fashion_mnist("train", root=str(tmp_path / "nowhere"))
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "download=True" in message and "--download" in message


def test_default_roots_are_searched_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "DEBIAN_ROOT", str(tmp_path / "debian"))
    monkeypatch.setattr(fm, "CACHE_ROOT", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="debian or .*cache"):
        load_fashion_mnist("test")
    (tmp_path / "cache").mkdir()
    images, _ = write_split(tmp_path / "cache", "test")
    assert np.array_equal(load_fashion_mnist("test")[0][:, 0, 2:30, 2:30], images)


@pytest.fixture
def fake_server(tmp_path, monkeypatch):
    """Serve a fake 'test' split through a monkeypatched _fetch; return the URLs fetched."""
    served = tmp_path / "served"
    served.mkdir()
    write_split(served, "test")
    fetched = []

    def fetch(url, path):
        fetched.append(url)
        with open(served / url.rsplit("/", 1)[1], "rb") as src, open(path, "wb") as dst:
            dst.write(src.read())

    monkeypatch.setattr(fm, "_fetch", fetch)
    for name in fm.FILES["test"]:
        digest = hashlib.md5((served / name).read_bytes()).hexdigest()
        monkeypatch.setitem(fm.MD5, name, digest)
    return fetched


def test_download_verifies_and_keeps_good_files(tmp_path, fake_server):
    root = tmp_path / "data"
    images, labels = load_fashion_mnist("test", root=str(root), download=True)
    assert images.shape == (5, 1, 32, 32)
    assert fake_server == [fm.URL + name for name in fm.FILES["test"]]
    assert sorted(os.listdir(root)) == sorted(fm.FILES["test"])
    load_fashion_mnist("test", root=str(root), download=True)
    assert len(fake_server) == 2  # already there: not fetched again


def test_download_with_bad_checksum_raises_and_keeps_nothing(tmp_path, fake_server, monkeypatch):
    monkeypatch.setitem(fm.MD5, "t10k-images-idx3-ubyte.gz", "0" * 32)
    root = tmp_path / "data"
    with pytest.raises(ValueError, match="MD5 .* expected 0{32}"):
        load_fashion_mnist("test", root=str(root), download=True)
    assert not (root / "t10k-images-idx3-ubyte.gz").exists()
    assert not (root / "t10k-images-idx3-ubyte.gz.part").exists()
