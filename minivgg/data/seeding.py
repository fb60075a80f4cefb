"""Seeded random streams that do not depend on batching, order or threads.

Every random decision of the data floor draws from a ``numpy.random.Generator``
built from a ``SeedSequence`` whose entropy is ``[stream, *keys]``:

- ``AUGMENT``: ``(seed, epoch, sample index)``, one generator per sample and epoch;
- ``SHUFFLE``: ``(seed, epoch)``, the order of one epoch;
- ``SUBSET``: ``(seed,)``, a fixed random subset;
- ``SPLIT``: ``(seed,)``, a validation split.

The leading stream number keeps the purposes apart: ``SeedSequence`` pads
its entropy with zeros to four words, so without it ``[seed, epoch]`` (an
epoch's order) would equal ``[seed, epoch, 0]`` (sample 0's augmentation).
Keys must lie in [0, 2**32) for the same reason: a larger integer would
spread over two words and could collide with another key tuple.
"""
import numpy as np

AUGMENT = 1
SHUFFLE = 2
SUBSET = 3
SPLIT = 4


def stream_rng(stream, *keys):
    """Return the Generator of ``stream`` for ``keys`` (each an int in [0, 2**32))."""
    for key in keys:
        if not isinstance(key, (int, np.integer)) or not 0 <= key < 2**32:
            raise ValueError(f"stream_rng: keys must be integers in [0, 2**32), got {keys}")
    return np.random.default_rng(np.random.SeedSequence([stream, *(int(k) for k in keys)]))


def sample_rng(seed, epoch, index):
    """Return the Generator that drives the augmentation of sample ``index`` in ``epoch``."""
    return stream_rng(AUGMENT, seed, epoch, index)
