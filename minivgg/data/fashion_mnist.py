"""Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): 70,000 grey 28x28 pictures of clothes.

The data comes as four gzip-compressed IDX files (the MNIST file format):
60,000 training images and labels, 10,000 test images and labels, in 10
classes (``FASHION_MNIST_CLASSES``).

Where the files come from, in the order :func:`load_fashion_mnist` looks:

1. ``root``, when you pass one;
2. otherwise Debian's ``/usr/share/datasets/fashion-mnist`` (as root:
   ``apt-get install dataset-fashion-mnist``), then ``~/.cache/minivgg/fashion-mnist``;
3. with ``download=True``, missing files are fetched from the official site
   into ``root`` (or the cache directory) and checked against the MD5 sums
   published in the zalandoresearch/fashion-mnist README.

Only downloaded files are checked against those sums: Debian recompresses the
``.gz`` files, so its copies hold the same images under different checksums.

The IDX format: a 4-byte big-endian magic number ``0x0000TTDD`` (``TT = 0x08``
for unsigned bytes, ``DD`` the number of dimensions), then one big-endian
uint32 per dimension, then the values in row-major order. Images are
``0x00000803`` (N, rows, cols); labels are ``0x00000801`` (N,).
"""
import gzip
import hashlib
import os
import urllib.request
import zlib

import numpy as np

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

DEBIAN_ROOT = "/usr/share/datasets/fashion-mnist"
CACHE_ROOT = os.path.join(os.path.expanduser("~"), ".cache", "minivgg", "fashion-mnist")
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801

# split -> (images file, labels file)
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# MD5 sums of the official .gz files (zalandoresearch/fashion-mnist README).
MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

PAD = 2  # 28x28 -> 32x32, the smallest size the five VGG max-pools can halve


def load_fashion_mnist(split="train", root=None, download=False):
    """Load one split of Fashion-MNIST.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
        root: directory holding the four ``.gz`` files. ``None`` looks in
            ``DEBIAN_ROOT``, then ``CACHE_ROOT``.
        download: fetch missing files from ``URL`` into ``root`` (or
            ``CACHE_ROOT`` when ``root`` is None) and verify their MD5 sums.

    Returns:
        ``(images, labels)``: images uint8 of shape (N, 1, 32, 32), the 28x28
        pictures padded with 2 zero pixels on every side; labels int64 of
        shape (N,), values 0..9 indexing ``FASHION_MNIST_CLASSES``.
    """
    if split not in FILES:
        raise ValueError(f"load_fashion_mnist: split must be 'train' or 'test', got {split!r}")
    directory = _find_directory(split, root, download)
    image_file, label_file = (os.path.join(directory, name) for name in FILES[split])
    images = read_idx(image_file, IMAGE_MAGIC)
    labels = read_idx(label_file, LABEL_MAGIC)
    _check_pair(images, labels, image_file, label_file)
    padded = np.pad(images, ((0, 0), (PAD, PAD), (PAD, PAD)))
    return padded[:, None, :, :], labels.astype(np.int64)


def read_idx(path, magic):
    """Read an IDX file (gzip-compressed when its name ends in .gz) into a uint8 array.

    Checks that the file starts with ``magic`` and holds exactly the number of
    bytes its header promises; raises ValueError naming the file otherwise.
    The array is read-only: it views the file's bytes without copying them.
    """
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"read_idx: {path} holds {len(raw)} bytes, too few for an IDX header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(
            f"read_idx: {path} starts with magic number 0x{found:08x}, expected 0x{magic:08x}"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"read_idx: {path} is truncated: its header needs {header} bytes, the file holds {len(raw)}"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "longer than its header says"
        raise ValueError(
            f"read_idx: {path} is {state}: a header of shape {shape} promises "
            f"{expected} bytes, the file holds {len(raw)}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read_bytes(path):
    """Return the (decompressed) content of ``path``, with gzip errors naming the file."""
    if not path.endswith(".gz"):
        with open(path, "rb") as f:
            return f.read()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"read_idx: {path} is not a complete gzip file ({err})") from err


def _check_pair(images, labels, image_file, label_file):
    """Check that an image file and a label file describe the same samples."""
    if images.shape[1:] != (28, 28):
        raise ValueError(
            f"load_fashion_mnist: {image_file} holds images of shape {images.shape[1:]}, expected (28, 28)"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"load_fashion_mnist: {image_file} holds {len(images)} images but "
            f"{label_file} holds {len(labels)} labels"
        )
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(
            f"load_fashion_mnist: {label_file} holds label {labels.max()}, expected 0..9"
        )


def _find_directory(split, root, download):
    """Return the directory that holds both files of ``split``, downloading them if asked."""
    candidates = [root] if root is not None else [DEBIAN_ROOT, CACHE_ROOT]
    for directory in candidates:
        if all(os.path.isfile(os.path.join(directory, name)) for name in FILES[split]):
            return directory
    target = candidates[-1]
    if download:
        for name in FILES[split]:
            if not os.path.isfile(os.path.join(target, name)):
                download_file(name, target)
        return target
    raise FileNotFoundError(
        f"load_fashion_mnist: the Fashion-MNIST {split!r} files ({' and '.join(FILES[split])}) "
        f"are not in {' or '.join(candidates)}. Get them with "
        f"`apt-get install dataset-fashion-mnist` (as root; it installs them into {DEBIAN_ROOT}), "
        f"or pass download=True (--download in the example scripts) to fetch them from {URL} "
        f"into {target}."
    )


def download_file(name, directory):
    """Fetch the official file ``name`` into ``directory`` and verify its MD5 sum.

    The file is written under a temporary name and renamed into place only
    when its checksum matches; a mismatch deletes it and raises ValueError.
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    partial = path + ".part"
    try:
        _fetch(URL + name, partial)
        digest = _md5(partial)
        if digest != MD5[name]:
            raise ValueError(
                f"download_file: {URL + name} has MD5 {digest}, expected {MD5[name]}; "
                f"the file was deleted, try again"
            )
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


def _fetch(url, path):
    """Download ``url`` to ``path`` (the only function here that touches the network)."""
    with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as f:
        while chunk := response.read(1 << 20):
            f.write(chunk)


def _md5(path):
    """Return the hexadecimal MD5 digest of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
