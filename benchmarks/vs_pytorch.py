"""minivgg beside PyTorch on the same CPU: whole training steps, forward passes and single layers.

    python benchmarks/vs_pytorch.py                     # every configuration (several minutes on 2 cores)
    python benchmarks/vs_pytorch.py --only default      # one configuration (see --help for the names)
    python benchmarks/vs_pytorch.py --quick             # a smoke run: tiny rounds (numbers meaningless)
    python benchmarks/vs_pytorch.py --only layers-default   # each convolution of the default run's network

The reference is PyTorch's CPU build, given the same network (built from
minivgg's own layer list, the weights copied over by torchvision's names),
the same batch and the same number of threads.  Each round times one step of
minivgg and one of PyTorch, alternated in this one process so that both see
the same machine; the table gives medians, min-max, and the ratio of
speeds (PyTorch's median time over minivgg's: above 1, minivgg is faster).

Each timed step follows ``--settle`` untimed steps (default 1) of the same
library, as in a training loop, where a step follows a step of its own.
Without them, a step is timed while the other library's idle threads still
hold the cores: PyTorch's OpenMP threads spin for milliseconds after each
parallel region (libgomp's default wait policy).  On the 2-core EPYC, the
default run's minivgg step measured 39 ms right after PyTorch's and 32 ms
with PyTorch's threads set to sleep at once (``OMP_WAIT_POLICY=PASSIVE``,
which slows PyTorch's own step from 19.6 to 25.3 ms, so it is not used).
``--settle 0`` gives the earlier harness.
PyTorch runs in its default NCHW layout and in channels_last; the better of
the two is the reference.  Peak memory is measured in separate processes
(``--memory``), as the growth of the peak resident set over the process
after its imports.  Results: ``--out`` (default benchmarks/results/vs_pytorch.md).
"""
import argparse
import gc
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import minivgg  # before NumPy, as a user's script would: it sets OpenBLAS's thread timeout (minivgg/__init__.py)
import numpy as np
import torch
from threadpoolctl import threadpool_info

import minivgg.functional as F
from minivgg import Tensor, no_grad
from minivgg.models import vgg
from minivgg.nn import Conv2d, Dropout, Linear, LocalResponseNorm, MaxPool2d, ReLU
from minivgg.optim import SGD, PlateauSchedule
from minivgg.parallel import SharedMemoryCommunicator, SharedMemoryGroup, share_cores
from minivgg.train import Trainer

# name: (config, width, in_channels, input_size, batch, what)
CONFIGS = {
    "default": ("A", 0.25, 1, 32, 64, "train"),
    "default-2p": ("A", 0.25, 1, 32, 64, "train"),
    "default-b128": ("A", 0.25, 1, 32, 128, "train"),
    "default-b2": ("A", 0.25, 1, 32, 2, "train"),
    "A-w1": ("A", 1.0, 3, 32, 64, "train"),
    "D-w1": ("D", 1.0, 3, 32, 64, "train"),
    "A-224": ("A", 1.0, 3, 224, 8, "train"),
    "A-w1-forward": ("A", 1.0, 3, 32, 64, "forward"),
    "dense-64": ("A", 1.0, 3, 32, 64, "dense"),
}
DESCRIPTIONS = {
    "default": "the default run: VGG-A width 0.25, 1x32x32, batch 64, training step",
    "default-2p": "the default run in 2 processes (`--processes 2`), training step",
    "default-b128": "the default run at batch 128, training step",
    "default-b2": "the default run at batch 2, training step (its fixed cost)",
    "A-w1": "VGG-A width 1, 3x32x32, batch 64, training step",
    "D-w1": "VGG-D width 1, 3x32x32, batch 64, training step",
    "A-224": "VGG-A width 1, 3x224x224, batch 8, training step",
    "A-w1-forward": "VGG-A width 1, 3x32x32, batch 64, forward only (evaluation mode)",
    "dense-64": "VGG-A width 1 trained at 32, dense evaluation of 64x64 inputs, batch 64",
}
PROCESSES = {"default-2p": 2}   # configurations that minivgg runs in this many processes
LR, MOMENTUM, DECAY = 0.01, 0.9, 5e-4


# ---- the same network in PyTorch --------------------------------------------------------------

def torch_layer(layer):
    """The PyTorch module that computes minivgg ``layer``."""
    if isinstance(layer, Conv2d):
        o, c, kh, kw = layer.weight.shape
        return torch.nn.Conv2d(c, o, (kh, kw), stride=layer.stride, padding=layer.padding)
    if isinstance(layer, Linear):
        return torch.nn.Linear(layer.weight.shape[1], layer.weight.shape[0])
    if isinstance(layer, ReLU):
        return torch.nn.ReLU(inplace=True)
    if isinstance(layer, MaxPool2d):
        return torch.nn.MaxPool2d(layer.kernel_size, layer.stride)
    if isinstance(layer, Dropout):
        return torch.nn.Dropout(layer.p)
    if isinstance(layer, LocalResponseNorm):   # PyTorch divides alpha by size
        return torch.nn.LocalResponseNorm(layer.size, layer.alpha * layer.size, layer.beta, layer.k)
    raise TypeError(f"vs_pytorch: no PyTorch counterpart for {type(layer).__name__}")


class TorchVGG(torch.nn.Module):
    """features, flatten, classifier: the layer names of torchvision's VGG, hence of minivgg's."""

    def __init__(self, model, dense=False):
        super().__init__()
        self.features = torch.nn.Sequential(*map(torch_layer, model.features))
        self.classifier = torch.nn.Sequential(*map(torch_layer, model.classifier))
        self.dense = dense

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x if self.dense else torch.flatten(x, 1))


def torch_copy(model, dense=False):
    """A PyTorch network with ``model``'s architecture and weights (float32)."""
    reference = TorchVGG(model, dense)
    state = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in model.state_dict().items()}
    reference.load_state_dict(state)
    return reference


# ---- one step of each -----------------------------------------------------------------------------

class MinivggRunner:
    def __init__(self, config, width, channels, size, batch, what, seed=0):
        self.model = vgg(config, num_classes=10, in_channels=channels, input_size=size, width=width,
                         init="glorot", seed=seed)
        self.optimizer = SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=DECAY)
        rng = np.random.default_rng(seed)
        side = 2 * size if what == "dense" else size
        self.x = rng.standard_normal((batch, channels, side, side)).astype(np.float32)
        self.labels = rng.integers(0, 10, batch)
        self.what = what
        self.net = self.model.to_dense() if what == "dense" else self.model
        if what != "train":
            self.net.eval()

    def step(self):
        if self.what != "train":
            with no_grad():
                return self.net(Tensor(self.x)).data
        loss = F.softmax_cross_entropy(self.model(Tensor(self.x)), self.labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()


class ProcessesRunner:
    """minivgg's step in ``processes`` ranks, as ``train_vgg_a.py --processes`` runs it: each rank takes its
    half of the batch when told to over a pipe, so that its steps alternate with PyTorch's like the others.

    ``ours``, a MinivggRunner of the same network that never steps, gives PyTorch its weights and batch.
    """

    def __init__(self, ours, shape, processes):
        self.what, self.net, self.x, self.labels = ours.what, ours.net, ours.x, ours.labels
        context = multiprocessing.get_context("spawn")
        self.group = group = SharedMemoryGroup(processes, context)   # kept: the ranks open its semaphores late
        self.pipes, self.ranks = [], []
        for rank in range(processes):
            here, there = context.Pipe()
            self.ranks.append(context.Process(target=rank_steps, args=(group, rank, there, shape), daemon=True))
            self.ranks[-1].start()
            self.pipes.append(here)

    def step(self):
        for pipe in self.pipes:
            pipe.send("step")
        return [pipe.recv() for pipe in self.pipes][0]

    def close(self):
        for pipe, rank in zip(self.pipes, self.ranks):
            pipe.send("stop")
            rank.join()


def rank_steps(group, rank, pipe, shape):
    """One rank of a ProcessesRunner: its share of the cores, then a training step whenever it is told to."""
    share_cores(group.size)
    ours = MinivggRunner(*shape)
    trainer = Trainer(ours.model, ours.optimizer, PlateauSchedule(ours.optimizer), None, None, tempfile.mkdtemp(),
                      progress=False, communicator=SharedMemoryCommunicator(group, rank))
    while pipe.recv() == "step":
        pipe.send(trainer.train_step(ours.x, ours.labels)[0])


class TorchRunner:
    def __init__(self, ours, channels_last):
        self.what = ours.what
        self.model = torch_copy(ours.net, dense=ours.what == "dense")   # the dense net: FC layers as convolutions
        memory = torch.channels_last if channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=memory)
        self.x = torch.from_numpy(ours.x).contiguous(memory_format=memory)
        self.labels = torch.from_numpy(ours.labels)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=DECAY)
        if self.what != "train":
            self.model.eval()

    def step(self):
        if self.what != "train":
            with torch.no_grad():
                return self.model(self.x)
        loss = torch.nn.functional.cross_entropy(self.model(self.x), self.labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()


def seconds(step):
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def alternate(runners, rounds, warmup, settle=1):
    """{name: [seconds per round]}: one timed step of every runner per round, in turn, each after ``settle``
    untimed steps of the same runner, after ``warmup`` rounds."""
    times = {name: [] for name in runners}
    for round_index in range(warmup + rounds):
        for name, runner in runners.items():
            for _ in range(settle):
                runner.step()
            elapsed = seconds(runner.step)
            if round_index >= warmup:
                times[name].append(elapsed)
    return times


def summary(values):
    return statistics.median(values), min(values), max(values)


def bench_config(name, rounds, warmup, settle=1):
    ours = MinivggRunner(*CONFIGS[name])
    if name in PROCESSES:
        ours = ProcessesRunner(ours, CONFIGS[name], PROCESSES[name])
    runners = {"minivgg": ours, "torch NCHW": TorchRunner(ours, False), "torch channels_last": TorchRunner(ours, True)}
    times = alternate(runners, rounds, warmup, settle)
    if name in PROCESSES:
        ours.close()
    medians = {k: statistics.median(v) for k, v in times.items()}
    best = min(("torch NCHW", "torch channels_last"), key=medians.get)
    return {"name": name, "times": times, "best_torch": best, "ratio": medians[best] / medians["minivgg"]}


# ---- single layers ----------------------------------------------------------------------------------

def nhwc_memory(a):
    """NCHW ``a`` as an NCHW view of NHWC memory."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


LAYER_SETS = {   # name: (what the table says, width, input channels) of VGG-A at 32x32, batch 64
    "layers": ("VGG-A (width 1, 3x32x32, batch 64)", 1.0, 3),
    "layers-default": ("the default run's VGG-A (width 0.25, 1x32x32, batch 64)", 0.25, 1),
}


def bench_layers(rounds, warmup, settle=1, batch=64, width=1.0, channels=3):
    """Each convolution of VGG-A at 32x32: forward + backward, minivgg vs torch conv2d."""
    model = vgg("A", num_classes=10, in_channels=channels, input_size=32, width=width, init="glorot")
    rng, side, rows = np.random.default_rng(0), 32, []
    for layer in model.features:
        if isinstance(layer, MaxPool2d):
            side //= 2
        if not isinstance(layer, Conv2d):
            continue
        o, c = layer.weight.shape[:2]
        x = rng.standard_normal((batch, c, side, side)).astype(np.float32)
        dy = rng.standard_normal((batch, o, side, side)).astype(np.float32)
        first = c == channels
        # laid out as inside the network: the image C-contiguous, every later activation and every output
        # gradient an NCHW view of NHWC memory (PyTorch gets both in channels_last)
        ours_x = Tensor(x if first else nhwc_memory(x), requires_grad=not first)
        ours_dy = nhwc_memory(dy)
        weight = Tensor(layer.weight.data, requires_grad=True)
        bias = Tensor(layer.bias.data, requires_grad=True)
        tx = torch.from_numpy(x).contiguous(memory_format=torch.channels_last).requires_grad_(not first)
        tw = torch.from_numpy(np.ascontiguousarray(layer.weight.data)).requires_grad_()
        tb = torch.from_numpy(layer.bias.data.copy()).requires_grad_()
        tdy = torch.from_numpy(dy).contiguous(memory_format=torch.channels_last)

        def ours_step():
            F.conv2d(ours_x, weight, bias, padding=1).backward(ours_dy)

        def torch_step():
            torch.nn.functional.conv2d(tx, tw, tb, padding=1).backward(tdy)
        times = alternate({"minivgg": type("R", (), {"step": staticmethod(ours_step)}),
                           "torch": type("R", (), {"step": staticmethod(torch_step)})}, rounds, warmup,
                         settle)
        rows.append((f"{c}->{o} @{side}x{side}", times))
    return rows


# ---- peak memory, in a process of its own ------------------------------------------------------------

def status_mib(field):
    """A field of /proc/self/status (VmRSS: the resident set now; VmHWM: its peak), in MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"vs_pytorch --memory: /proc/self/status has no {field}")


def reset_peak_rss():
    """Make the peak resident set (VmHWM) start again from the current one (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
        clear_refs.write("5")


def measure_memory(name, library, steps=2):
    """Peak memory growth (MiB) of ``steps`` steps of ``library`` on configuration ``name``; printed.

    The peak of the imports (PyTorch's loading) is forgotten first, so that
    what is left is the network, its data and its steps.  PyTorch's copy is
    made from minivgg's network, which is then deleted; the peak of the
    moment when both existed is forgotten too.
    """
    config, width, channels, size, batch, what = CONFIGS[name]
    reset_peak_rss()
    base = status_mib("VmRSS")
    ours = MinivggRunner(config, width, channels, size, batch, what)
    runner = ours if library == "minivgg" else TorchRunner(ours, library == "torch-channels_last")
    if runner is not ours:
        del ours.model, ours.optimizer, ours.net
        gc.collect()
        reset_peak_rss()
    for _ in range(steps):
        runner.step()
    print(f"{status_mib('VmHWM') - base:.0f}")


def memory_in_subprocess(name, library):
    command = [sys.executable, __file__, "--memory", name, library]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"vs_pytorch --memory {name} {library} failed:\n{result.stderr[-2000:]}")
    return float(result.stdout.split()[-1])


# ---- the report -----------------------------------------------------------------------------------------

def ms(values):
    median, low, high = summary(values)
    return f"{median * 1e3:.1f} ({low * 1e3:.0f}-{high * 1e3:.0f})"


def environment():
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"minivgg vs PyTorch {torch.__version__} (CPU), numpy {np.__version__}, python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs ({platform.machine()}), {torch.get_num_threads()} threads each; "
            f"{openblas_environment()}; PyTorch's CPU capability {torch.backends.cpu.get_cpu_capability()}; "
            f"load average {load}")


def openblas_environment():
    """OpenBLAS's settings from the environment and the kernels it chose (threadpoolctl reads them).

    Some machines set OPENBLAS_CORETYPE to an older core than the CPU's: OpenBLAS then runs, say, its AVX2
    kernels on an AVX-512 CPU at half the speed, while PyTorch still uses AVX-512.  To compare the two
    fairly, run this benchmark with OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) unset.
    """
    settings = [f"{key}={os.environ.get(key, 'unset')}"
                for key in ("OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")]
    kernels = [pool.get("architecture") for pool in threadpool_info() if pool["internal_api"] == "openblas"]
    return "; ".join(settings + [f"OpenBLAS kernels {', '.join(map(str, kernels))}"])


def fixed_and_per_image(results, small="default-b2", large="default"):
    """The default run's step split into a fixed cost and a cost per image, each library's, from its rows at
    two batch sizes (step = fixed + batch * per image, through both medians), PyTorch in the layout that is
    better at the large batch; None unless both rows ran."""
    rows = {r["name"]: r for r in results}
    if small not in rows or large not in rows:
        return None
    batches = CONFIGS[small][4], CONFIGS[large][4]
    split = {}
    for library in ("minivgg", rows[large]["best_torch"]):
        t_small, t_large = (1000 * statistics.median(rows[name]["times"][library]) for name in (small, large))
        per_image = (t_large - t_small) / (batches[1] - batches[0])
        split[library] = (t_small - batches[0] * per_image, per_image)
    (ours_fixed, ours_image), (torch_fixed, torch_image) = split.values()
    return (f"The default run's step as a fixed cost plus a cost per image (its batch-{batches[0]} and "
            f"batch-{batches[1]} rows): minivgg {ours_fixed:.1f} ms + {ours_image:.3f} ms an image, PyTorch "
            f"({rows[large]['best_torch']}) {torch_fixed:.1f} ms + {torch_image:.3f} ms an image; minivgg's speed "
            f"over PyTorch's: {torch_fixed / ours_fixed:.2f} on the fixed cost, {torch_image / ours_image:.2f} "
            f"per image.")


def report(results, layers, memory, rounds, warmup, settle):
    lines = [environment(), f"median (min-max) ms over {rounds} alternated rounds after {warmup} warm-up, "
             f"each timed step after {settle} untimed step(s) of the same library", ""]
    lines += ["| configuration | minivgg ms | PyTorch NCHW ms | PyTorch channels_last ms | "
              "minivgg speed / best PyTorch |", "|---|---|---|---|---|"]
    for r in results:
        t = r["times"]
        lines.append(f"| {DESCRIPTIONS[r['name']]} | {ms(t['minivgg'])} | {ms(t['torch NCHW'])} | "
                     f"{ms(t['torch channels_last'])} | **{r['ratio']:.2f}** |")
    split = fixed_and_per_image(results)
    if split:
        lines += ["", split]
    for name, rows in layers.items():
        lines += ["", f"Per convolution of {LAYER_SETS[name][0]}, forward + backward, PyTorch channels_last:", "",
                  "| layer | minivgg ms | PyTorch ms | minivgg speed / PyTorch |", "|---|---|---|---|"]
        for shape, t in rows:
            ratio = statistics.median(t["torch"]) / statistics.median(t["minivgg"])
            lines.append(f"| {shape} | {ms(t['minivgg'])} | {ms(t['torch'])} | {ratio:.2f} |")
        minivgg, reference = (sum(statistics.median(t[lib]) for _, t in rows) for lib in ("minivgg", "torch"))
        lines.append(f"| all | {1000 * minivgg:.1f} | {1000 * reference:.1f} | {reference / minivgg:.2f} |")
    if memory:
        lines += ["", "Peak memory growth over the process after its imports (MiB), 2 steps, separate processes:",
                  "", "| configuration | minivgg | PyTorch NCHW | PyTorch channels_last |", "|---|---|---|---|"]
        for name, values in memory.items():
            lines.append(f"| {DESCRIPTIONS[name]} | {values['minivgg']:.0f} | {values['torch-NCHW']:.0f} | "
                         f"{values['torch-channels_last']:.0f} |")
    lines += ["", f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}"]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=[*CONFIGS, *LAYER_SETS], help="run only these (repeatable)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per configuration (default 7)")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 1 round, no warm-up, small configs")
    parser.add_argument("--settle", type=int, default=1,
                        help="untimed steps of the same library before each timed one (default 1; module docstring)")
    parser.add_argument("--threads", type=int, default=2, help="threads for PyTorch (default 2; BLAS uses its own)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    parser.add_argument("--out", default=None, help="write the report (Markdown) here as well")
    parser.add_argument("--memory", nargs=2, metavar=("CONFIG", "LIBRARY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory:
        return measure_memory(*args.memory)
    chosen = args.only or [*CONFIGS, *LAYER_SETS]
    if args.quick:
        chosen = args.only or ["default"]
    rounds, warmup = (1, 0) if args.quick else (args.rounds, 1)
    args.settle = 0 if args.quick else args.settle
    results = []
    for name in chosen:
        if name in LAYER_SETS:
            continue
        r = rounds if name != "A-224" else min(rounds, 3)
        results.append(bench_config(name, r, warmup, args.settle))
        print(f"{name}: minivgg speed / best PyTorch = {results[-1]['ratio']:.2f}", flush=True)
    layers = {name: bench_layers(rounds, warmup, args.settle, width=LAYER_SETS[name][1], channels=LAYER_SETS[name][2])
              for name in LAYER_SETS if name in chosen}
    memory = {}
    if not (args.no_memory or args.quick):
        for name in [n for n in ("default", "A-224") if n in chosen]:
            memory[name] = {lib: memory_in_subprocess(name, lib)
                            for lib in ("minivgg", "torch-NCHW", "torch-channels_last")}
    text = report(results, layers, memory, rounds, warmup, args.settle)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(f"# minivgg vs PyTorch\n\nCommand: `python benchmarks/vs_pytorch.py {' '.join(argv or sys.argv[1:])}`"
                      f"\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
