"""Batches for training and evaluation, prepared in a background thread.

Pixel scale: batches are float32 on the 0..255 scale. Without a transform
the uint8 pixels are only converted (not divided by 255); with
:class:`~minivgg.data.TrainTransform` or :class:`~minivgg.data.TestTransform`
the training mean is subtracted, as in the paper.

Determinism: the order of an epoch comes from a Generator seeded with
``(seed, epoch)``, and each sample's augmentation from one seeded with
``(seed, epoch, sample index)`` (see :mod:`minivgg.data.seeding`). Two
loaders with the same seed give the same batches, and a sample gets the
same augmentation whatever the batch size.
"""
import queue
import threading

import numpy as np

from .seeding import SHUFFLE, SPLIT, SUBSET, sample_rng, stream_rng

PREFETCH_DEPTH = 2  # batches that may wait, ready, in the queue


class DataLoader:
    """Iterate over ``(images, labels)`` in batches, one epoch per ``for`` loop.

    Args:
        images: a uint8 array (N, C, H, W), or any sequence of N uint8 CHW
            arrays (e.g. ``ImageFolder.images``; then a transform must bring
            them to one size).
        labels: integer array (N,).
        batch_size: samples per batch.
        transform: ``None`` or a callable ``transform(image, rng)`` returning
            a float32 CHW array (e.g. ``TrainTransform``).
        shuffle: draw a new order every epoch; otherwise keep 0..N-1.
        seed: an int in [0, 2**32) that fixes the orders and the augmentations.
        drop_last: drop the last batch when it is smaller than batch_size.
        prefetch: build the next batches in a background thread while the
            caller uses the current one.

    Each batch is ``(x, y, indices)``: x float32 (B, C, H, W), y int64 (B,),
    and the int64 indices of the samples in ``images``. Call
    ``set_epoch(e)`` before each epoch to get that epoch's order.
    """

    def __init__(self, images, labels, batch_size, transform=None, shuffle=True,
                 seed=0, drop_last=False, prefetch=True):
        self.labels = _check_labels(images, labels, "DataLoader")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
            raise ValueError(f"DataLoader: seed must be an int in [0, 2**32), got {seed!r}")
        self.images = images
        self.batch_size = int(batch_size)
        self.transform = transform
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.prefetch = prefetch
        self.epoch = 0

    def set_epoch(self, epoch):
        """Choose the epoch whose order and augmentations the next ``for`` loop yields."""
        if not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: epoch must be a non-negative int, got {epoch!r}")
        self.epoch = int(epoch)

    def order(self, epoch):
        """Return the sample indices of ``epoch`` in the order they are served."""
        if not self.shuffle:
            return np.arange(len(self.labels))
        return stream_rng(SHUFFLE, self.seed, epoch).permutation(len(self.labels))

    def __len__(self):
        full, rest = divmod(len(self.labels), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def __iter__(self):
        return self.iterate()

    def iterate(self, part=None):
        """The batches of the epoch, as ``for`` gives them.

        With ``part``, a function of a batch's length that gives the slice
        ``(start, stop)`` one data-parallel rank takes, x holds the inputs of
        only that part of each batch (a rank transforms only its own images);
        the labels and indices stay the whole batch's.
        """
        batches = self._batches(self.epoch, part)
        return _prefetch(batches) if self.prefetch else batches

    def _batches(self, epoch, part=None):
        """Yield the batches of ``epoch`` (see ``iterate``), computed in the calling thread."""
        order = self.order(epoch)
        for b in range(len(self)):
            indices = order[b * self.batch_size:(b + 1) * self.batch_size]
            start, stop = part(len(indices)) if part else (0, len(indices))
            yield self._batch(indices[start:stop], epoch), self.labels[indices], indices

    def _batch(self, indices, epoch):
        """Return the float32 (B, C, H, W) inputs of the samples ``indices``."""
        if self.transform is None:
            if isinstance(self.images, np.ndarray):
                return self.images[indices].astype(np.float32)
            return _stack([self.images[i] for i in indices]).astype(np.float32)
        return _stack([
            self.transform(self.images[i], sample_rng(self.seed, epoch, int(i))) for i in indices
        ])


def _stack(images):
    """Stack CHW images into one NCHW array, explaining a size mismatch."""
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise ValueError(
            f"DataLoader: cannot batch images of different shapes {sorted(shapes)}; "
            f"pass a transform that brings them to one size (e.g. TrainTransform)"
        )
    return np.stack(images)


def _prefetch(batches):
    """Yield the items of the generator ``batches``, computed one step ahead in a thread.

    An exception raised by the worker is re-raised here. When the caller
    stops iterating early (``break``, an exception, garbage collection), the
    ``finally`` clause tells the worker to stop and waits for it: at most the
    time to finish the batch it is building.
    """
    slots = queue.Queue(maxsize=PREFETCH_DEPTH)
    stop = threading.Event()
    worker = threading.Thread(target=_produce, args=(batches, slots, stop),
                              name="minivgg-data-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = slots.get()
            if kind == "error":
                raise item
            if kind == "done":
                return
            yield item
    finally:
        stop.set()
        worker.join()


def _produce(batches, slots, stop):
    """Worker thread: put ("batch", b) for each batch, then ("done", None) or ("error", exc)."""
    try:
        for item in batches:
            if not _put(slots, ("batch", item), stop):
                return
        _put(slots, ("done", None), stop)
    except BaseException as err:  # everything reaches the consumer, which re-raises it
        _put(slots, ("error", err), stop)


def _put(slots, message, stop):
    """Wait for room in the queue and put ``message``; return False if told to stop first."""
    while not stop.is_set():
        try:
            slots.put(message, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def random_subset(images, labels, size, seed=0):
    """Return ``(images, labels)`` of ``size`` samples drawn without replacement, in dataset order.

    The same seed gives the same subset: handy for smoke runs and fast tests.
    An array of images is indexed (a copy); another sequence is wrapped in a view.
    """
    labels = _check_labels(images, labels, "random_subset")
    if not 0 < size <= len(labels):
        raise ValueError(f"random_subset: size must be in 1..{len(labels)}, got {size}")
    indices = np.sort(stream_rng(SUBSET, seed).choice(len(labels), size, replace=False))
    return _take(images, indices), labels[indices]


def train_val_split(images, labels, val_size, seed=0):
    """Split off ``val_size`` random samples as a validation set.

    Returns ``((train_images, train_labels), (val_images, val_labels))``; the
    two parts are disjoint, cover the dataset, keep dataset order and depend
    only on ``seed``.
    """
    labels = _check_labels(images, labels, "train_val_split")
    if not 0 < val_size < len(labels):
        raise ValueError(f"train_val_split: val_size must be in 1..{len(labels) - 1}, got {val_size}")
    order = stream_rng(SPLIT, seed).permutation(len(labels))
    val, train = np.sort(order[:val_size]), np.sort(order[val_size:])
    return (_take(images, train), labels[train]), (_take(images, val), labels[val])


class _Subset:
    """The items ``indices`` of a sequence, as a sequence."""

    def __init__(self, items, indices):
        self.items = items
        self.indices = indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.items[self.indices[i]]


def _take(images, indices):
    """Select ``indices`` from an array (a copy) or any other sequence (a view)."""
    return images[indices] if isinstance(images, np.ndarray) else _Subset(images, indices)


def _check_labels(images, labels, operation):
    """Return ``labels`` as an int64 array after checking it matches ``images``."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{operation}: labels must be a 1-D integer array, got {labels.dtype} of shape {labels.shape}"
        )
    if len(images) != len(labels):
        raise ValueError(f"{operation}: got {len(images)} images but {len(labels)} labels")
    return labels.astype(np.int64)
