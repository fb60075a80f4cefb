"""Data-parallel scaling on this machine: training images/s and the all-reduce's share of a step.

    python benchmarks/parallel.py [--steps 20] [--width 0.25] [--batch-size 64]

The set-ups train VGG-A on the same random batches, each in its own process(es):

* one process with its default threads, one BLAS and one shard thread per core
  (the reference: what a plain run gets);
* one process with 1 BLAS thread and 1 shard thread;
* two MPI processes (``mpiexec -n 2``), each taking half of every batch and
  all-reducing the gradients, each with its share of the cores
  (``minivgg.parallel.share_cores``: 1 thread each on 2 cores);
* two processes started by minivgg itself (``minivgg.parallel.launch``, as
  ``examples/train_vgg_a.py --processes 2`` does), all-reducing through
  shared memory, each with its share of the cores;
* PyTorch's step of the same network, for reference (channels_last, one thread
  per core; ``benchmarks/vs_pytorch.py`` compares the two in one process).

The median step time after a warm-up gives images/s; the time spent inside
the all-reduce is measured around ``allreduce_arrays``.  Prints one table.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import minivgg  # before NumPy, as a user's script would: it sets OpenBLAS's thread timeout (minivgg/__init__.py)
import numpy as np

from minivgg.parallel import find_mpiexec


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--worker", metavar="JSON", help=argparse.SUPPRESS)  # internal: one measured run
    parser.add_argument("--mpi", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--torch", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


class TimedCommunicator:
    """Wraps a communicator and adds up the seconds spent in ``allreduce_arrays`` (the gradients' exchange,
    with the packing into one buffer and back where the communicator packs)."""

    def __init__(self, inner):
        self.inner, self.rank, self.size, self.seconds = inner, inner.rank, inner.size, 0.0

    def allreduce_arrays(self, arrays):
        start = time.perf_counter()
        self.inner.allreduce_arrays(arrays)
        self.seconds += time.perf_counter() - start

    def allgather(self, value):
        return self.inner.allgather(value)


def worker(args):
    """Time ``args.steps`` training steps in this process, or in its MPI job or ``launch``'s ranks; rank 0
    writes the figures to ``args.worker``."""
    if args.torch:
        return torch_worker(args)
    if args.processes > 1:
        from minivgg.parallel import launch
        return launch(time_steps, (args,), args.processes)   # each rank takes its share of the cores
    communicator = None
    if args.mpi:
        from minivgg.parallel import MpiCommunicator, share_cores
        communicator = MpiCommunicator()
        share_cores(communicator.ranks_here)   # as examples/train_vgg_a.py --distributed does
    return time_steps(args, communicator)


def time_steps(args, communicator=None):
    from minivgg import models
    from minivgg.optim import SGD, PlateauSchedule
    from minivgg.train import Trainer

    communicator = communicator and TimedCommunicator(communicator)
    model = models.vgg("A", 10, 1, 32, width=args.width, init="glorot")
    optimizer = SGD(model.parameters(), lr=0.01)
    trainer = Trainer(model, optimizer, PlateauSchedule(optimizer), None, None, tempfile.mkdtemp(),
                      progress=False, communicator=communicator)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 60, (args.batch_size, 1, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, args.batch_size)
    times, reduce_times = [], []
    for step in range(args.warmup + args.steps):
        before = communicator.seconds if communicator else 0.0
        start = time.perf_counter()
        trainer.train_step(x, labels)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
            reduce_times.append((communicator.seconds if communicator else 0.0) - before)
    if trainer.leader:
        write_figures(args, times, reduce_times)


def torch_worker(args):
    """Time PyTorch's training step of the same network and batch: its best layout (channels_last), one
    thread per core, plain SGD at the same learning rate (the reference of ``benchmarks/vs_pytorch.py``)."""
    import torch
    from vs_pytorch import torch_copy
    from minivgg import models

    torch.set_num_threads(os.cpu_count() or 1)
    model = torch_copy(models.vgg("A", 10, 1, 32, width=args.width, init="glorot"))
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(0, 60, (args.batch_size, 1, 32, 32)).astype(np.float32))
    x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.from_numpy(rng.integers(0, 10, args.batch_size))
    times = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    write_figures(args, times, [0.0] * len(times))


def write_figures(args, times, reduce_times):
    step_time = statistics.median(times)
    with open(args.worker, "w") as out:
        json.dump({"step_seconds": step_time, "images_per_second": args.batch_size / step_time,
                   "allreduce_share": statistics.median(reduce_times) / step_time}, out)


def measure(args, threads, processes, library="minivgg"):
    """Run one set-up in fresh processes with ``threads`` BLAS and shard threads each (None: the library's
    own choice); ``library`` 'torch' times PyTorch's step instead, in one process; 'launch' runs
    ``processes`` ranks started by minivgg instead of mpiexec."""
    result = tempfile.mktemp(suffix=".json")
    command = [sys.executable, __file__, "--worker", result, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--width", str(args.width), "--batch-size", str(args.batch_size)]
    if library == "launch":
        command += ["--processes", str(processes)]
    elif processes > 1:
        command = [find_mpiexec(), "-n", str(processes)] + command + ["--mpi"]
    if library == "torch":
        command.append("--torch")
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MINIVGG_THREADS")
    env = {key: value for key, value in os.environ.items() if key not in names}
    env.update({name: str(threads) for name in names} if threads else {})
    subprocess.run(command, check=True, env=env)
    with open(result) as figures:
        return json.load(figures)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    setups = [("1 process, default threads", None, 1, "minivgg"), ("1 process x 1 thread", 1, 1, "minivgg")]
    if find_mpiexec():
        setups.append(("2 MPI processes, cores shared", None, 2, "minivgg"))
    setups.append(("2 processes (--processes 2)", None, 2, "launch"))
    if importlib.util.find_spec("torch"):
        setups.append(("PyTorch, 1 process", None, 1, "torch"))
    rows = [(name, measure(args, *setup)) for name, *setup in setups]
    reference = rows[0][1]["images_per_second"]
    torch_speed = dict(rows).get("PyTorch, 1 process", {}).get("images_per_second")
    print(f"VGG-A width {args.width}, batch {args.batch_size}, 32x32, float32; median of {args.steps} steps")
    print(f"{'set-up':<30} {'step ms':>8} {'images/s':>9} {'vs 1st':>7} {'vs PyTorch':>10} {'all-reduce':>11}")
    for name, r in rows:
        versus_torch = f"{r['images_per_second'] / torch_speed:>9.2f}x" if torch_speed else f"{'-':>10}"
        print(f"{name:<30} {1000 * r['step_seconds']:>8.1f} {r['images_per_second']:>9.0f} "
              f"{r['images_per_second'] / reference:>6.2f}x {versus_torch} {100 * r['allreduce_share']:>10.1f}%")
    return rows


if __name__ == "__main__":
    main()
