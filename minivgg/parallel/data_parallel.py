"""Synchronous data parallelism: shard the batch, all-reduce the gradients, update everywhere.

The loss of a batch of N samples is the mean over all N.  Rank r computes
its shard's mean loss scaled by N_r / N, so that the *sum* over ranks of the
shard gradients is exactly the gradient of the whole batch:

    dL/dw = sum_r (N_r / N) * d(mean loss of shard r)/dw

Dropout masks are keyed by the global sample index (``sample_offset`` =
the shard's first index), so a sample is dropped the same way whichever
rank computes it.  Only the order of the floating-point sums differs from
one device, which is why the results agree to rounding (the paper: "exactly
the same result").
"""
import hashlib
import json

import numpy as np

from ..backend import get_array_module
from .communicator import CommunicatorError


def shard_bounds(batch_size, size, rank):
    """The contiguous slice [start, stop) of a batch that rank ``rank`` of ``size`` takes."""
    if batch_size < size:
        raise ValueError(f"data parallel: a batch of {batch_size} samples cannot be split across {size} "
                         f"replicas; every replica needs at least one sample (use a batch of >= {size})")
    base, extra = divmod(batch_size, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def even_part(length, size, rank):
    """The slice [start, stop) of ``length`` items that rank ``rank`` of ``size`` takes; it may be empty."""
    return length * rank // size, length * (rank + 1) // size


def allreduce_gradients(communicator, parameters, extras):
    """Sum every parameter's gradient, and the small array ``extras``, over all ranks, in one all-reduce.

    Returns the summed ``extras`` (e.g. the loss and the correct count) as a NumPy array.
    """
    grads = [p.grad for p in parameters]
    extras = get_array_module(grads[0]).asarray(extras, dtype=grads[0].dtype)
    communicator.allreduce_arrays(grads + [extras])
    return extras.get() if hasattr(extras, "get") else extras


def checksum(arrays):
    """A cheap fingerprint of a replica's state: the float64 sum of every array."""
    return float(sum(float(a.sum(dtype=np.float64)) for a in arrays))


def check_replicas(communicator, arrays, step):
    """Raise CommunicatorError unless every rank holds the same ``arrays`` (weights, velocities), by checksum."""
    sums = communicator.allgather(checksum(arrays))
    if any(s != sums[0] for s in sums):
        raise CommunicatorError(f"data parallel: the replicas' weights or optimiser state drifted apart by "
                                f"step {step}: checksums per rank {sums}")


def check_agreement(communicator, settings):
    """Raise CommunicatorError unless every rank has the same ``settings`` ({name: JSON-able value}).

    Each setting is compared by a 48-bit digest (exact in the one float per
    rank that ``allgather`` carries); the message names every setting that
    differs, with this rank's value and the ranks that have another one.
    """
    differing = []
    for name, value in settings.items():
        digests = communicator.allgather(digest(value))
        if len(set(digests)) > 1:
            others = [r for r, d in enumerate(digests) if d != digests[communicator.rank]]
            differing.append(f"{name} (this rank has {value!r}; ranks {others} have another value)")
    if differing:
        raise CommunicatorError(f"data parallel: rank {communicator.rank} of {communicator.size} disagrees with "
                                f"other ranks on {'; '.join(differing)}; every rank must be started with the "
                                f"same settings and data")


def digest(value):
    """A 48-bit digest of a JSON-able value, as a float (exactly representable)."""
    text = json.dumps(value, sort_keys=True).encode("utf-8")
    return float(int.from_bytes(hashlib.sha256(text).digest()[:6], "big"))


def check_batches_split(num_samples, batch_size, size, drop_last=False):
    """A message saying which batch of an epoch gives some of ``size`` ranks no sample, or None if all do."""
    last = num_samples % batch_size
    if batch_size < size:
        return f"a batch of {batch_size} samples cannot be split across {size} ranks"
    if last and last < size and not drop_last:
        return (f"the last batch of each epoch holds {last} samples ({num_samples} samples in batches of "
                f"{batch_size}), fewer than the {size} ranks")
    return None
