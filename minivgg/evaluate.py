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

Images come in as uint8 CHW arrays (all the same size within a call), as
``minivgg.data`` gives them; ``mean`` is the training mean to subtract.
"""
import numpy as np

from .autograd import Tensor, no_grad
from .backend import move_array
from .data.transforms import rescale
from .kernels.loss import softmax
from .metrics import top_k_error  # noqa: F401  (part of this module's API)

METHODS = ("single", "dense", "multi-crop", "dense+multi-crop")


def rescale_batch(images, scale, mean):
    """Rescale every uint8 CHW image so its shortest side is ``scale``; float32 NCHW minus ``mean``."""
    batch = np.stack([rescale(image, scale) for image in images]).astype(np.float32)
    if mean is not None:
        batch -= np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    return batch


def run(model, batch, device):
    """The model's output on a NumPy batch (cast to the model's dtype), as a NumPy array."""
    batch = batch.astype(model.parameters()[0].dtype, copy=False)
    with no_grad():
        out = model(Tensor(move_array(batch, device))).data
    return out.get() if hasattr(out, "get") else out


def dense_posteriors(model, images, scale, mean=None, flip=True, device="cpu"):
    """Dense evaluation at test scale ``scale``: (N, K) posteriors.

    ``model`` is the plain VGG; its fully convolutional twin shares its weights.
    """
    check_scale(model, scale)
    dense = model.to_dense().eval()
    batch = rescale_batch(images, scale, mean)
    views = [batch, batch[:, :, :, ::-1]] if flip else [batch]
    posteriors = [softmax(run(dense, np.ascontiguousarray(view), device).mean(axis=(2, 3))) for view in views]
    return np.mean(posteriors, axis=0)


def crop_positions(length, size, grid):
    """``grid`` evenly spaced offsets of a ``size`` window along ``length`` pixels, both ends included."""
    if grid == 1:
        return [(length - size) // 2]
    return [int(round(i * (length - size) / (grid - 1))) for i in range(grid)]


def multicrop_posteriors(model, images, scale, mean=None, grid=5, flip=True, device="cpu"):
    """Multi-crop evaluation at test scale ``scale``: posteriors averaged over grid x grid crops (x2 flips)."""
    check_scale(model, scale)
    batch = rescale_batch(images, scale, mean)
    size = model.input_size
    total, count = 0.0, 0
    for top in crop_positions(batch.shape[2], size, grid):
        for left in crop_positions(batch.shape[3], size, grid):
            crop = batch[:, :, top:top + size, left:left + size]
            for view in ([crop, crop[:, :, :, ::-1]] if flip else [crop]):
                total = total + softmax(run(model, np.ascontiguousarray(view), device))
                count += 1
    return total / count


def single_posteriors(model, images, scale, mean=None, device="cpu"):
    """One central crop at test scale ``scale`` (the plain single-crop baseline)."""
    return multicrop_posteriors(model, images, scale, mean, grid=1, flip=False, device=device)


def posteriors(model, images, method, scales, mean=None, grid=5, flip=True, device="cpu", batch_size=250):
    """Posteriors of ``model`` by ``method`` averaged over the test ``scales`` (multi-scale when several)."""
    if method not in METHODS:
        raise ValueError(f"evaluate: unknown method {method!r}; valid ones are {', '.join(METHODS)}")
    scales = list(scales)
    if not scales:
        raise ValueError("evaluate: expected at least one test scale Q, got an empty list")
    model.eval()
    chunks = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        per_scale = [method_posteriors(model, chunk, method, q, mean, grid, flip, device) for q in scales]
        chunks.append(np.mean(per_scale, axis=0))
    return np.concatenate(chunks)


def method_posteriors(model, images, method, scale, mean, grid, flip, device):
    if method == "single":
        return single_posteriors(model, images, scale, mean, device)
    if method == "dense":
        return dense_posteriors(model, images, scale, mean, flip, device)
    if method == "multi-crop":
        return multicrop_posteriors(model, images, scale, mean, grid, flip, device)
    return (dense_posteriors(model, images, scale, mean, flip, device)
            + multicrop_posteriors(model, images, scale, mean, grid, flip, device)) / 2


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
