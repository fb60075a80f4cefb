"""The VGG paper's training-time augmentation (Sec. 3.1), one image at a time.

Convention: an image is a NumPy array in CHW layout (channels, height,
width), the layout of the datasets and of the network, with 1 (grey) or 3
(RGB) channels and uint8 pixels in 0..255. :class:`TrainTransform` and
:class:`TestTransform` return float32 CHW arrays, still on the 0..255 scale,
minus the per-channel training mean when one is given (as in the paper and
in Caffe, the inputs are not divided by 255).

The training pipeline of the paper:

1. rescale isotropically so that the shortest side is S, either fixed
   (single-scale training, S = 256 or 384) or drawn per image from
   [S_min, S_max] (scale jittering, S in [256, 512]);
2. crop a random train_size x train_size square (224 in the paper);
3. flip horizontally with probability 1/2;
4. shift the colours along the principal components of the training RGB
   pixels (Krizhevsky et al., 2012);
5. subtract the mean RGB value of the training set.

Networks trained elsewhere may expect other inputs: torchvision's ImageNet
weights take RGB/255 minus ``IMAGENET_MEAN``, divided by ``IMAGENET_STD``.
On the 0..255 scale that is ``(x - 255 * mean) / (255 * std)``, so every
transform here takes an optional ``std`` beside ``mean``, and
:func:`torchvision_transform` is torchvision's own evaluation preprocessing
(resize to 256, central 224 crop, normalise).

Every random step takes a ``numpy.random.Generator``; the loader builds one
per sample with :func:`~minivgg.data.seeding.sample_rng` from
``(seed, epoch, sample index)``, so a sample's augmentation is the same
whatever the batch size, the order or the thread that computes it.
"""
import numpy as np
from PIL import Image

CHUNK_PIXELS = 1 << 20  # pixels per chunk when computing statistics over a dataset
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's normalisation of RGB/255 (ImageNet training set)
IMAGENET_STD = (0.229, 0.224, 0.225)


def draw_scale(scale, rng):
    """Return the training scale S: ``scale`` itself if it is an int, else an
    integer drawn uniformly from the closed range ``scale = (S_min, S_max)``."""
    if isinstance(scale, (int, np.integer)):
        return int(scale)
    s_min, s_max = scale
    return int(rng.integers(s_min, s_max + 1))


def rescale(image, size):
    """Resize a uint8 CHW image so that its shortest side is ``size``, keeping the aspect ratio.

    Uses Pillow's bilinear filter, which widens its support when shrinking so
    that it does not alias. Returns the image itself when nothing changes.
    """
    _, h, w = _check_uint8_image(image, "rescale")
    if h <= w:
        new_h, new_w = size, max(size, round(w * size / h))
    else:
        new_h, new_w = max(size, round(h * size / w)), size
    if (new_h, new_w) == (h, w):
        return image
    planes = [
        np.asarray(Image.fromarray(plane).resize((new_w, new_h), Image.Resampling.BILINEAR))
        for plane in image
    ]
    return np.stack(planes)


def random_crop(image, size, rng):
    """Cut a ``size`` x ``size`` square at a uniformly drawn position out of a CHW image."""
    _, h, w = image.shape
    if h < size or w < size:
        raise ValueError(f"random_crop: cannot crop {size}x{size} out of an image of {h}x{w} pixels")
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    return image[:, top:top + size, left:left + size]


def center_crop(image, size):
    """Cut the central ``size`` x ``size`` square out of a CHW image."""
    _, h, w = image.shape
    if h < size or w < size:
        raise ValueError(f"center_crop: cannot crop {size}x{size} out of an image of {h}x{w} pixels")
    top, left = (h - size) // 2, (w - size) // 2
    return image[:, top:top + size, left:left + size]


def random_flip(image, rng):
    """Mirror a CHW image left-right with probability 1/2."""
    return image[:, :, ::-1] if rng.random() < 0.5 else image


def colour_shift(image, rng, eigvals, eigvecs, std=0.1):
    """Add the PCA colour shift of Krizhevsky et al. (2012) to a float CHW RGB image (0..255).

    Draws ``alpha_i ~ N(0, std)`` once for the image and adds
    ``sum_i alpha_i * eigvals[i] * eigvecs[:, i]`` to every pixel. The
    formula is not scale-free (an eigenvalue is a variance, added as an
    intensity): as in the reference implementations, ``eigvals`` and
    ``eigvecs`` are measured on pixels scaled to [0, 1] (see
    :func:`compute_pca`) and the shift, in those units, is multiplied by 255.
    """
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(
            f"colour_shift: expected a float image (use image.astype(np.float32)), got {image.dtype}"
        )
    if image.shape[0] != len(eigvals):
        raise ValueError(
            f"colour_shift: the PCA has {len(eigvals)} components but the image has "
            f"{image.shape[0]} channels (shape {image.shape})"
        )
    alpha = rng.normal(0.0, std, size=len(eigvals))
    shift = 255.0 * (eigvecs @ (alpha * eigvals))
    return image + shift.astype(image.dtype)[:, None, None]


def compute_mean(images):
    """Per-channel mean pixel value (0..255) of a set of CHW images, as float32 of shape (C,).

    ``images`` is an array (N, C, H, W) or a sequence of CHW arrays (sizes may differ).
    """
    count, total, _ = _pixel_moments(images)
    return (total / count).astype(np.float32)


def compute_pca(images):
    """Principal components of the RGB pixel values of a set of CHW images.

    Returns ``(eigvals, eigvecs)``: the eigenvalues of the 3x3 covariance of
    the pixel values scaled to [0, 1], largest first, shape (3,), and the
    matching unit eigenvectors as the columns of a (3, 3) array, for
    :func:`colour_shift`. Returns None for grey (1-channel) images: a colour
    shift means nothing there, and ``TrainTransform(pca=None)`` skips it.
    A few thousand images are enough.
    """
    count, total, outer = _pixel_moments(images)
    if len(total) == 1:
        return None
    mean = total / count
    covariance = (outer / count - np.outer(mean, mean)) / 255.0**2
    eigvals, eigvecs = np.linalg.eigh(covariance)
    order = np.argsort(eigvals)[::-1]
    return eigvals[order], eigvecs[:, order]


def _pixel_moments(images):
    """Pixel count, per-channel sums and channel cross-product sums (float64, 0..255 units)."""
    if len(images) == 0:
        raise ValueError("compute_mean/compute_pca: got no images")
    channels = _check_uint8_image(images[0], "compute_mean/compute_pca")[0]
    count, total, outer = 0, np.zeros(channels), np.zeros((channels, channels))
    for chunk in _chunks(images):
        pixels = chunk.transpose(1, 0, 2, 3).reshape(channels, -1).astype(np.float64)
        count += pixels.shape[1]
        total += pixels.sum(axis=1)
        outer += pixels @ pixels.T
    return count, total, outer


def _chunks(images):
    """Yield the images as (n, C, H, W) arrays of about CHUNK_PIXELS pixels each."""
    if isinstance(images, np.ndarray):
        step = max(1, CHUNK_PIXELS // (images.shape[2] * images.shape[3]))
        for start in range(0, len(images), step):
            yield images[start:start + step]
    else:
        for i in range(len(images)):
            yield images[i][None]


def _check_uint8_image(image, operation):
    """Return the (C, H, W) shape of a uint8 CHW image with 1 or 3 channels, or raise."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(
            f"{operation}: expected a uint8 image of shape (C, H, W), got "
            f"{getattr(image, 'dtype', type(image).__name__)} of shape {np.shape(image)}"
        )
    if image.shape[0] not in (1, 3):
        raise ValueError(
            f"{operation}: expected a CHW image with 1 or 3 channels, got shape {image.shape}"
            + (" (an HWC image? use image.transpose(2, 0, 1))" if image.shape[2] in (1, 3) else "")
        )
    return image.shape


class TrainTransform:
    """The paper's training augmentation: rescale, random crop, flip, colour shift, mean.

    Args:
        train_size: side of the square crop fed to the network (224 in the paper).
        scale: the training scale S, an int (single-scale training) or a pair
            ``(S_min, S_max)`` from which S is drawn per image (scale jittering).
            ``S_min`` must be at least ``train_size``.
        flip: mirror left-right with probability 1/2.
        pca: ``None`` (no colour shift) or ``(eigvals, eigvecs)`` from :func:`compute_pca`.
        mean: ``None`` or the per-channel training mean (C,) from :func:`compute_mean`.
        colour_std: standard deviation of the colour-shift coefficients alpha (0.1).
        std: ``None`` (the paper) or a per-channel divisor (C,), applied after the mean.

    ``transform(image, rng)`` maps a uint8 CHW image to a float32
    (C, train_size, train_size) array, drawing S, the crop position, the flip
    and the colour shift from ``rng``, in that order.
    """

    def __init__(self, train_size, scale, flip=True, pca=None, mean=None, colour_std=0.1, std=None):
        _check_scale(train_size, scale)
        self.train_size = train_size
        self.scale = scale
        self.flip = flip
        self.pca = None if pca is None else _check_pca(pca)
        self.mean, self.std = _channel_values(mean), _channel_values(std)
        self.colour_std = colour_std

    def __call__(self, image, rng):
        image = rescale(image, draw_scale(self.scale, rng))
        image = random_crop(image, self.train_size, rng)
        if self.flip:
            image = random_flip(image, rng)
        out = image.astype(np.float32)
        if self.pca is not None:
            out = colour_shift(out, rng, *self.pca, std=self.colour_std)
        return normalise(out, self.mean, self.std, "TrainTransform")


class TestTransform:
    """Single-crop evaluation: rescale the shortest side to ``scale``, keep the central ``size`` square.

    ``scale`` is the test scale Q (default: ``size``, the whole short side);
    the paper's single-crop baseline uses Q = S, the training scale.
    ``transform(image, rng=None)`` maps a uint8 CHW image to a float32
    (C, size, size) array, minus ``mean`` and over ``std`` when given; ``rng``
    is ignored (the argument lets the loader call both transforms the same way).
    """

    __test__ = False  # a name starting with "Test": tell pytest this is not a test class

    def __init__(self, size, mean=None, scale=None, std=None):
        if scale is not None and not (isinstance(scale, (int, np.integer)) and scale >= size):
            raise ValueError(f"TestTransform: the test scale must be an int >= size {size}, got {scale!r}")
        self.size, self.scale = size, size if scale is None else int(scale)
        self.mean, self.std = _channel_values(mean), _channel_values(std)

    def __call__(self, image, rng=None):
        image = center_crop(rescale(image, self.scale), self.size)
        return normalise(image.astype(np.float32), self.mean, self.std, "TestTransform")


def torchvision_normalisation():
    """(mean, std) of torchvision's ImageNet preprocessing on the 0..255 scale, float32 arrays of shape (3,).

    torchvision computes ``(x / 255 - IMAGENET_MEAN) / IMAGENET_STD``; this is
    ``(x - 255 * IMAGENET_MEAN) / (255 * IMAGENET_STD)``, what ``normalise`` does with these values.
    """
    return (255 * np.asarray(IMAGENET_MEAN, np.float32), 255 * np.asarray(IMAGENET_STD, np.float32))


def torchvision_transform(size=224, scale=256):
    """torchvision's evaluation preprocessing of its ImageNet weights, as a :class:`TestTransform`.

    ``Resize(256)``, ``CenterCrop(224)``, ``ToTensor()`` (RGB / 255) and
    ``Normalize(IMAGENET_MEAN, IMAGENET_STD)``: the input a torchvision VGG
    expects, where minivgg's own nets take 0..255 minus the training mean.
    """
    mean, std = torchvision_normalisation()
    return TestTransform(size, mean=mean, scale=scale, std=std)


def _check_scale(train_size, scale):
    """Check that ``scale`` is an int S or a pair (S_min, S_max) with train_size <= S_min <= S_max."""
    pair = (scale, scale) if isinstance(scale, (int, np.integer)) else tuple(np.atleast_1d(scale))
    if len(pair) != 2 or not all(isinstance(s, (int, np.integer)) for s in pair):
        raise ValueError(f"TrainTransform: scale must be an int S or a pair of ints (S_min, S_max), got {scale!r}")
    if not train_size <= pair[0] <= pair[1]:
        raise ValueError(
            f"TrainTransform: need train_size <= S_min <= S_max, got train_size={train_size}, scale={scale}"
        )


def _check_pca(pca):
    """Return ``(eigvals, eigvecs)`` as float64 arrays of shapes (3,) and (3, 3), or raise."""
    eigvals, eigvecs = (np.asarray(a, dtype=np.float64) for a in pca)
    if eigvals.shape != (3,) or eigvecs.shape != (3, 3):
        raise ValueError(
            f"TrainTransform: pca should be (eigvals (3,), eigvecs (3, 3)), got shapes "
            f"{eigvals.shape} and {eigvecs.shape}"
        )
    return eigvals, eigvecs


def _channel_values(values):
    """``None``, or per-channel values (a mean or a std) as a float32 array."""
    return None if values is None else np.asarray(values, dtype=np.float32)


def normalise(image, mean=None, std=None, operation="normalise"):
    """``(image - mean) / std`` per channel, in place, on a float CHW image or NCHW batch; None skips a step."""
    channels = image.shape[-3]
    for name, values in (("mean", mean), ("std", std)):
        if values is not None and np.shape(values) != (channels,):
            raise ValueError(f"{operation}: {name} has shape {np.shape(values)} but the image has {channels} "
                             f"channels (shape {image.shape})")
    if mean is not None:
        image -= np.asarray(mean, dtype=image.dtype)[:, None, None]
    if std is not None:
        image /= np.asarray(std, dtype=image.dtype)[:, None, None]
    return image
