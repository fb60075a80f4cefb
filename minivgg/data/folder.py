"""Image folders: ``root/<class>/<image>.jpg|jpeg|png``, as ImageNet is usually unpacked.

Class names are the sub-folder names, sorted, so that class ``i`` is the
same on every machine. Images are decoded with Pillow only when asked for,
so a folder of a million images costs nothing to open.
"""
import os
import warnings

import numpy as np
from PIL import Image

EXTENSIONS = (".jpg", ".jpeg", ".png")


class ImageFolder:
    """A labelled image collection read from ``root/<class>/<image>``.

    ``folder[i]`` returns ``(image, label)``: the image as a uint8 RGB array
    of shape (H, W, 3) (HWC, the layout Pillow and matplotlib use; grey,
    palette and RGBA files are converted to RGB) and its int label.

    ``folder.images[i]`` returns the same image as (3, H, W) (CHW, the layout
    of the transforms and of :class:`~minivgg.data.DataLoader`), and
    ``folder.labels`` is an int64 array, so
    ``DataLoader(folder.images, folder.labels, ..., transform=...)`` works.

    ``classes``, when given, is the class list the labels must follow (that
    of the training folder): the sub-folders of ``root`` must be exactly
    these, or a ValueError names the differing classes.

    A file that cannot be decoded raises ValueError naming it. With
    ``skip_corrupt=True``, every file is decoded once while the folder is
    built and the unreadable ones are left out with a warning naming each;
    this costs one full decoding pass (seconds for thousands of images, an
    hour for ImageNet: there, clean the folder once instead).
    """

    def __init__(self, root, skip_corrupt=False, classes=None):
        self.root = root
        self.classes = list_classes(root)
        if classes is not None:
            check_same_classes(root, self.classes, list(classes))
        if not self.classes:
            raise ValueError(
                f"ImageFolder: {root} has no class sub-folders; expected root/<class>/<image>.jpg"
            )
        self.class_to_index = {name: i for i, name in enumerate(self.classes)}
        self.samples = _list_samples(root, self.classes)
        if skip_corrupt:
            self.samples = [s for s in self.samples if _is_readable(s[0])]
        if not self.samples:
            raise ValueError(
                f"ImageFolder: found no readable {'/'.join(EXTENSIONS)} images in the "
                f"{len(self.classes)} class folders of {root}"
            )
        self.labels = np.array([label for _, label in self.samples], dtype=np.int64)
        self.images = _CHWImages(self)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        return decode_image(path), label


class _CHWImages:
    """The images of an ImageFolder as a sequence of (3, H, W) uint8 arrays."""

    def __init__(self, folder):
        self.folder = folder

    def __len__(self):
        return len(self.folder)

    def __getitem__(self, index):
        image, _ = self.folder[index]
        return np.ascontiguousarray(image.transpose(2, 0, 1))


def list_classes(root):
    """The sorted names of the class sub-folders of ``root`` (hidden folders left out)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"ImageFolder: {root} is not a directory")
    return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))


def check_same_classes(root, found, expected):
    """Raise a ValueError naming the differences unless the class folders ``found`` in ``root`` are ``expected``."""
    if found != expected:
        missing = [name for name in expected if name not in found]
        extra = [name for name in found if name not in expected]
        raise ValueError(f"ImageFolder: the class folders of {root} must be the training classes {expected}; "
                         f"missing {missing}, not among the training classes {extra}")


def decode_image(path):
    """Decode an image file into a uint8 RGB array of shape (H, W, 3).

    Raises ValueError naming the file when Pillow cannot read or decode it.
    """
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"ImageFolder: cannot decode {path} ({err})") from err


def _list_samples(root, classes):
    """Return the sorted ``(path, label)`` pairs of all images under the class folders."""
    samples = []
    for label, name in enumerate(classes):
        directory = os.path.join(root, name)
        for file in sorted(os.listdir(directory)):
            path = os.path.join(directory, file)
            if file.lower().endswith(EXTENSIONS) and os.path.isfile(path):
                samples.append((path, label))
    return samples


def _is_readable(path):
    """Decode ``path`` once; warn and return False when it is corrupt or unreadable."""
    try:
        decode_image(path)
    except ValueError as err:
        warnings.warn(f"ImageFolder: skipping {path}: {err.__cause__}")
        return False
    return True
