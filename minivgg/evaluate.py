"""Floor 5: the paper's test protocol (section 3.2 and Tables 3 to 6).

At test time an image is first rescaled isotropically so that its shortest
side is Q, the *test scale*.  Then the class posteriors come from one of two
methods, or from both averaged:

* **dense**: the fully convolutional net (``model.to_dense()``) runs on the
  whole rescaled image and gives a map of class scores, one per
  input_size window, 32 pixels apart.  The map is averaged over space and
  turned into posteriors by a softmax.  The posteriors of the horizontally
  flipped image are averaged in.
* **multi-crop**: a regular grid of crops of the training size (the paper: a
  5x5 grid and the two flips, 50 crops per scale), each classified by the
  plain net; the posteriors are averaged.

Averaging over several test scales Q is *multi-scale* evaluation; averaging
over several nets is *model fusion*.  Errors are top-1 (the best class is
wrong) and top-5 (the right class is not among the five best).

Images come in as uint8 CHW arrays, as ``minivgg.data`` gives them: an
(N, C, H, W) array, or any sequence of CHW arrays of any sizes (an
``ImageFolder``'s ``images``); they are decoded and rescaled one batch at a
time.  ``mean`` is the training mean to subtract, and ``std`` an optional
per-channel divisor after it (torchvision's weights want one: see
``minivgg.data.torchvision_normalisation``).
"""
from collections import Counter

import numpy as np

from .autograd import Tensor, no_grad
from .backend import move_array
from .data.transforms import normalise, rescale
from .kernels.loss import softmax
from .metrics import top_k_error  # noqa: F401  (part of this module's API)

METHODS = ("single", "dense", "multi-crop", "dense+multi-crop")
BATCH_PIXELS = 250 * 32 * 32  # input pixels per evaluation batch by default: 250 images at 32x32, 5 at 224x224


def protocol_scales(train_scale, train_size, step=None):
    """(single-scale Q, multi-scale Qs) for a net trained at ``train_scale``, by the paper's rule.

    ``train_scale`` is S ("256") or "S_min,S_max" (jittering).  Fixed S:
    Q = S, and {S - d, S, S + d}; jittered: Q = (S_min + S_max) / 2, and
    {S_min, Q, S_max}.  The paper's d is 32 at a 224 crop; by default d
    keeps that ratio to ``train_size`` (``train_size // 7``: 4 at 32).
    Scales below the training size are dropped.
    """
    step = train_size // 7 if step is None else step
    values = [int(v) for v in str(train_scale).split(",")]
    if len(values) == 1:
        single, multi = values[0], [values[0] - step, values[0], values[0] + step]
    else:
        low, high = values
        single = (low + high) // 2
        multi = [low, single, high]
    return single, [q for q in multi if q >= train_size]


def rescaled(images, scale, mean=None, std=None):
    """Each uint8 CHW image rescaled so its shortest side is ``scale``, as float32, minus ``mean``, over ``std``."""
    return [normalise(rescale(image, scale).astype(np.float32), mean, std, "evaluate") for image in images]


def rescale_batch(images, scale, mean=None, std=None):
    """The images rescaled as by ``rescaled``, stacked into one float32 NCHW batch (one aspect ratio only)."""
    return np.stack(rescaled(images, scale, mean, std))


def run(model, batch, device):
    """The model's output on a NumPy batch (cast to the model's dtype), as a NumPy array."""
    batch = batch.astype(model.parameters()[0].dtype, copy=False)
    with no_grad():
        out = model(Tensor(move_array(batch, device))).data
    return out.get() if hasattr(out, "get") else out


def same_shape_groups(arrays):
    """The indices of ``arrays`` grouped by array shape, so that each group stacks into one batch."""
    groups = {}
    for index, array in enumerate(arrays):
        groups.setdefault(array.shape, []).append(index)
    return list(groups.values())


def dense_posteriors(model, images, scale, mean=None, flip=True, device="cpu", std=None):
    """Dense evaluation at test scale ``scale``: (N, K) posteriors.

    ``model`` is the plain VGG; its fully convolutional twin shares its
    weights.  Images of one rescaled size run as one batch.
    """
    check_scale(model, scale)
    dense = model.to_dense().eval()
    inputs = rescaled(images, scale, mean, std)
    result = [None] * len(inputs)
    for group in same_shape_groups(inputs):
        batch = np.stack([inputs[i] for i in group])
        views = [batch, batch[:, :, :, ::-1]] if flip else [batch]
        scores = np.mean([softmax(run(dense, np.ascontiguousarray(v), device).mean(axis=(2, 3))) for v in views],
                         axis=0)
        for i, row in zip(group, scores):
            result[i] = row
    return np.stack(result)


def crop_positions(length, size, grid):
    """``grid`` evenly spaced offsets of a ``size`` window along ``length`` pixels, both ends included."""
    if grid == 1:
        return [(length - size) // 2]
    return [int(round(i * (length - size) / (grid - 1))) for i in range(grid)]


def grid_offsets(height, width, size, grid):
    """{(top, left): how often the grid x grid crop grid of a height x width image has that crop}.

    Where the image is barely larger than the crop, several grid points
    round to the same offset (at Q equal to the crop size all grid x grid of
    them do); such a crop is classified once and counted as often as it occurs.
    """
    return Counter((top, left) for top in crop_positions(height, size, grid)
                   for left in crop_positions(width, size, grid))


def multicrop_posteriors(model, images, scale, mean=None, grid=5, flip=True, device="cpu", std=None):
    """Multi-crop evaluation at test scale ``scale``: posteriors averaged over grid x grid crops (x2 flips).

    Images of one rescaled size run as one batch per crop.
    """
    check_scale(model, scale)
    inputs, size = rescaled(images, scale, mean, std), model.input_size
    result = [None] * len(inputs)
    for group in same_shape_groups(inputs):
        batch = np.stack([inputs[i] for i in group])
        total = 0.0
        for (top, left), count in grid_offsets(*batch.shape[2:], size, grid).items():
            crop = batch[:, :, top:top + size, left:left + size]
            for view in ([crop, crop[:, :, :, ::-1]] if flip else [crop]):
                total = total + count * softmax(run(model, np.ascontiguousarray(view), device))
        for i, row in zip(group, total / (grid * grid * (2 if flip else 1))):
            result[i] = row
    return np.stack(result)


def single_posteriors(model, images, scale, mean=None, device="cpu", std=None):
    """One central crop at test scale ``scale`` (the plain single-crop baseline)."""
    return multicrop_posteriors(model, images, scale, mean, grid=1, flip=False, device=device, std=std)


def posteriors(model, images, method, scales, mean=None, grid=5, flip=True, device="cpu", batch_size=None,
               std=None, progress=None):
    """Posteriors of ``model`` by ``method`` averaged over the test ``scales`` (multi-scale when several).

    ``batch_size`` images are rescaled and evaluated at a time (default: as
    many as hold ``BATCH_PIXELS`` input pixels); ``progress``, if given, is
    called with the number of images done after each batch.
    """
    if method not in METHODS:
        raise ValueError(f"evaluate: unknown method {method!r}; valid ones are {', '.join(METHODS)}")
    scales = list(scales)
    if not scales:
        raise ValueError("evaluate: expected at least one test scale Q, got an empty list")
    batch_size = batch_size or max(1, BATCH_PIXELS // model.input_size ** 2)
    model.eval()
    chunks = []
    for start in range(0, len(images), batch_size):
        chunk = take(images, start, start + batch_size)
        per_scale = [method_posteriors(model, chunk, method, q, mean, grid, flip, device, std) for q in scales]
        chunks.append(np.mean(per_scale, axis=0))
        if progress is not None:
            progress(len(chunk))
    return np.concatenate(chunks)


def take(images, start, stop):
    """Images ``start`` to ``stop``: a slice of an array, or a list read from any other sequence."""
    if isinstance(images, np.ndarray):
        return images[start:stop]
    return [images[i] for i in range(start, min(stop, len(images)))]


def method_posteriors(model, images, method, scale, mean, grid, flip, device, std=None):
    if method == "single":
        return single_posteriors(model, images, scale, mean, device, std)
    if method == "dense":
        return dense_posteriors(model, images, scale, mean, flip, device, std)
    if method == "multi-crop":
        return multicrop_posteriors(model, images, scale, mean, grid, flip, device, std)
    return (dense_posteriors(model, images, scale, mean, flip, device, std)
            + multicrop_posteriors(model, images, scale, mean, grid, flip, device, std)) / 2


def fuse(posterior_sets):
    """Model fusion: the average of several models' (N, K) posteriors."""
    posterior_sets = list(posterior_sets)
    if not posterior_sets:
        raise ValueError("fuse: expected at least one set of posteriors, got none")
    shapes = {p.shape for p in posterior_sets}
    if len(shapes) > 1:
        raise ValueError(f"fuse: all models must give posteriors of one shape (same images, same classes), "
                         f"got {sorted(shapes)}")
    return np.mean(posterior_sets, axis=0)


def check_fusable(models):
    """All models of a fusion predict the same classes."""
    counts = {m.num_classes for m in models}
    if len(counts) > 1:
        raise ValueError(f"fuse: the models have different class counts {sorted(counts)}; "
                         f"only models of the same classes can be fused")


def check_scale(model, scale):
    if not isinstance(scale, (int, np.integer)) or scale < model.input_size:
        raise ValueError(f"evaluate: the test scale Q must be an integer >= the training size "
                         f"{model.input_size}, got {scale!r}")
