"""The parts of benchmarks/gpu_check.py, one function each: ``part(out, dry_run, budget)`` -> a JSON-able dict.

Each part runs in its own process (the driver starts ``gpu_check.py --part NAME``)
and writes ``NAME.json`` under ``out``; the parts that take long also write it
as they go, so a part stopped at the end of its time budget leaves what it had.
Each part has a ``*_lines(result)`` function that turns its JSON into lines of
summary.txt.
"""
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

from minivgg import data, models
from minivgg.kernels import EMULATED, use
from minivgg.backend import move_array
from minivgg.models.vgg import FC_WIDTH, FINAL_CHANNELS, TABLE_1, parse_token
from minivgg.optim import SGD, PlateauSchedule
from minivgg.train import Trainer

REPO = Path(__file__).resolve().parents[1]

# 100 steps of the example's recipe; dry: a few steps of a tiny net
TRAINING = {"config": "A", "width": 0.25, "batch": 64, "steps": 100, "lr": 0.01, "seed": 0}
DRY_TRAINING = {**TRAINING, "width": 1 / 16, "batch": 4, "steps": 4}
AGREEMENT_FACTOR, AGREEMENT_FLOOR = 10.0, 1e-5  # see training()

THROUGHPUT = {"configs": ["A", "D"], "size": 224, "batch": 32, "width": 1.0, "warmup": 2, "timed": 5}
DRY_THROUGHPUT = {"configs": ["A", "D"], "size": 32, "batch": 2, "width": 1 / 16, "warmup": 1, "timed": 2}


def write_json(path, value):
    """``value`` as indented JSON at ``path``, via a temporary file renamed into place."""
    temporary = Path(f"{path}.tmp")
    temporary.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def attempt(read):
    """``read()``, or why it failed, as text."""
    try:
        return read()
    except Exception as error:  # a field of the report, not a reason to stop
        return f"unavailable: {type(error).__name__}: {error}"


# ---- environment ---------------------------------------------------------------------------------

def environment(out, dry_run, budget):
    """GPU, driver, CUDA runtime, CuPy, NVRTC and PyTorch versions; a field that cannot be read says why."""
    info = {"dry_run": dry_run, "python": platform.python_version(), "numpy": np.__version__,
            "cpu_count": os.cpu_count(), "driver": attempt(nvidia_smi_driver)}
    try:
        import cupy
    except ImportError as error:
        info["cupy"] = f"not installed ({error}); pip install cupy-cuda13x nvidia-cuda-nvrtc"
    else:
        info.update(cupy=cupy.__version__,
                    cuda_runtime=attempt(lambda: cuda_version(cupy.cuda.runtime.runtimeGetVersion())),
                    cuda_driver_api=attempt(lambda: cuda_version(cupy.cuda.runtime.driverGetVersion())),
                    nvrtc=attempt(lambda: "{}.{}".format(*cupy.cuda.nvrtc.getVersion())),
                    gpu=attempt(lambda: gpu_properties(cupy)))
    info["torch"] = attempt(torch_versions)
    return info


def cuda_version(number):
    """CUDA's version integer (12040) as text ('12.4'); 0 (what a missing driver reports) as 'none'."""
    return f"{number // 1000}.{number % 1000 // 10}" if number else "none"


def gpu_properties(cupy):
    properties = cupy.cuda.runtime.getDeviceProperties(0)
    name = properties["name"]
    return {"name": name.decode() if isinstance(name, bytes) else name,
            "compute_capability": f"{properties['major']}.{properties['minor']}",
            "memory_gib": round(properties["totalGlobalMem"] / 2**30, 1),
            "multiprocessors": properties["multiProcessorCount"],
            "count": cupy.cuda.runtime.getDeviceCount()}


def nvidia_smi_driver():
    """The NVIDIA driver's version, as nvidia-smi reports it."""
    result = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                            capture_output=True, text=True, timeout=15, check=True)
    return result.stdout.splitlines()[0].strip()


def torch_versions():
    import torch
    return {"version": torch.__version__, "cuda": torch.version.cuda, "gpu_visible": torch.cuda.is_available()}


def environment_lines(info):
    gpu = info.get("gpu", "unavailable: CuPy is not installed")
    if isinstance(gpu, dict):
        gpu = (f"{gpu['name']} (compute {gpu['compute_capability']}, {gpu['memory_gib']} GiB, "
               f"{gpu['multiprocessors']} SMs, {gpu['count']} device(s))")
    torch = info["torch"]
    if isinstance(torch, dict):
        torch = f"{torch['version']} (CUDA {torch['cuda']}, GPU visible: {torch['gpu_visible']})"
    return [f"GPU           {gpu}",
            f"driver        {info['driver']} (supports CUDA {info.get('cuda_driver_api', '-')})",
            f"CUDA runtime  {info.get('cuda_runtime', '-')}    NVRTC {info.get('nvrtc', '-')}",
            f"CuPy          {info.get('cupy')}    NumPy {info['numpy']}    Python {info['python']}",
            f"PyTorch       {torch}"]


# ---- the GPU-marked tests ----------------------------------------------------------------------------

def tests(out, dry_run, budget):
    """``python -m pytest -m gpu tests/cuda -q``; the output goes to pytest_gpu.txt, the counts here."""
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/cuda", "-q"]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch, open(out / "pytest_gpu.txt", "w", encoding="utf-8") as log:
        junit = Path(scratch) / "report.xml"
        try:
            returncode = subprocess.run(command + [f"--junitxml={junit}"], cwd=REPO, stdout=log,
                                        stderr=subprocess.STDOUT, timeout=budget - 5).returncode
        except subprocess.TimeoutExpired:
            returncode = f"timed out after {budget - 5} s"
        result = {"command": " ".join(["python"] + command[1:]), "returncode": returncode, "dry_run": dry_run,
                  "seconds": round(time.perf_counter() - start, 1), "output": "pytest_gpu.txt"}
        if junit.exists():
            result.update(junit_counts(junit))
    return result


def junit_counts(path):
    """Test counts and the names of failed tests from a pytest JUnit XML report."""
    suite = ElementTree.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["failed_tests"] = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
                              if case.find("failure") is not None or case.find("error") is not None]
    return counts


def tests_lines(result):
    if "tests" not in result:
        return [f"no test report (return code {result['returncode']}); see pytest_gpu.txt"]
    lines = [f"{result['passed']} passed, {result['failures']} failed, {result['errors']} errors, "
             f"{result['skipped']} skipped in {result['seconds']} s (return code {result['returncode']}; "
             f"full output in pytest_gpu.txt)"]
    if not result.get("dry_run") and result["tests"] and result["skipped"] == result["tests"]:
        # pytest exits 0 when everything skips: on a GPU machine that means CuPy cannot reach the GPU
        lines.append("  !! every GPU test was SKIPPED: CuPy finds no usable CUDA device (see environment)")
    return lines + [f"  FAILED {name}" for name in result["failed_tests"]]


# ---- training: the GPU beside the CPU --------------------------------------------------------------------

def training(out, dry_run, budget):
    """SGD steps of VGG-A on the device and on the CPU in lockstep: same weights, batches and dropout masks.

    SGD amplifies any rounding difference step by step, so after some tens of
    steps two float32 runs part ways however correct both are.  A third run,
    on the CPU from initial weights moved by one unit in the last place (ulp),
    measures what rounding alone does: the device agrees with the CPU when its
    difference stays within AGREEMENT_FACTOR times that yardstick.
    """
    settings = DRY_TRAINING if dry_run else TRAINING
    batches, source = training_batches(settings)
    result = {**settings, "data": source, "cpu": "NumPy twins on the CPU",
              "device": "CUDA twins on the CPU emulator (dry run)" if dry_run else "CUDA twins on the GPU",
              "cpu_loss": [], "device_loss": [], "yardstick_loss": [], "cpu_seconds": [], "device_seconds": []}
    with tempfile.TemporaryDirectory() as scratch:
        cpu, yardstick = new_trainer(settings, "cpu", scratch), new_trainer(settings, "cpu", scratch)
        device = new_trainer(settings, "cpu" if dry_run else "cuda", scratch)
        move_by_one_ulp(yardstick.model, settings["seed"])
        for step, (x, labels) in enumerate(batches):
            with use(EMULATED) if dry_run else contextlib.nullcontext():
                device_loss, device_seconds = timed(device.train_step, x, labels)
            cpu_loss, cpu_seconds = timed(cpu.train_step, x, labels)
            yardstick_loss, _ = timed(yardstick.train_step, x, labels)
            for key, value in (("cpu_loss", cpu_loss), ("device_loss", device_loss), ("yardstick_loss", yardstick_loss),
                               ("cpu_seconds", cpu_seconds), ("device_seconds", device_seconds)):
                result[key].append(value)
            if step % 10 == 9:
                write_json(out / "training.json", finish_training(result, cpu, device))
    return finish_training(result, cpu, device)


def training_batches(settings):
    """``steps`` batches of Fashion-MNIST, prepared as examples/train_vgg_a.py does; random images without it."""
    count = settings["steps"] * settings["batch"]
    try:
        images, labels = data.load_fashion_mnist("train")
        source = "Fashion-MNIST training images"
    except FileNotFoundError as error:
        rng = np.random.default_rng(settings["seed"])
        images, labels = rng.integers(0, 256, (count, 1, 32, 32), dtype=np.uint8), rng.integers(0, 10, count)
        source = f"random images, because Fashion-MNIST is missing: {error}"
    images, labels = data.random_subset(images, labels, count, seed=settings["seed"])
    transform = data.TrainTransform(32, 32, flip=True, mean=data.compute_mean(images))
    loader = data.DataLoader(images, labels, settings["batch"], transform, seed=settings["seed"], prefetch=False)
    return [(x, y) for x, y, _ in loader], source


def new_trainer(settings, device, out_dir):
    model = models.vgg(settings["config"], 10, 1, 32, settings["width"], "glorot", settings["seed"]).to(device)
    optimizer = SGD(model.parameters(), settings["lr"], momentum=0.9, weight_decay=5e-4)
    return Trainer(model, optimizer, PlateauSchedule(optimizer), None, None, out_dir, device=device,
                   seed=settings["seed"], progress=False)


def move_by_one_ulp(model, seed):
    """Move every weight of ``model`` to the next float up or down, at random: a rounding-sized change."""
    rng = np.random.default_rng(seed)
    for parameter in model.parameters():
        data = parameter.data
        direction = np.where(rng.random(data.shape) < 0.5, np.inf, -np.inf).astype(data.dtype)
        parameter.data = np.nextafter(data, direction)


def timed(train_step, x, labels):
    """(loss, seconds) of one training step; the step ends with a read of the loss, so the GPU is done."""
    start = time.perf_counter()
    loss, _ = train_step(x, labels)
    return loss, time.perf_counter() - start


def finish_training(result, cpu, device):
    """``result`` with the differences per step and the summary numbers of the steps so far."""
    cpu_loss = np.array(result["cpu_loss"])
    differences = np.abs(np.array(result["device_loss"]) - cpu_loss) / np.abs(cpu_loss)
    yardstick = np.abs(np.array(result["yardstick_loss"]) - cpu_loss) / np.abs(cpu_loss)
    bound = np.maximum(AGREEMENT_FACTOR * np.maximum.accumulate(yardstick), AGREEMENT_FLOOR)
    worst = int(np.argmax(differences))
    weights = [relative_error(move_array(d.data, "cpu"), c.data)
               for c, d in zip(cpu.model.parameters(), device.model.parameters())]
    return {**result, "steps_done": len(differences), "relative_difference": differences.tolist(),
            "yardstick_difference": yardstick.tolist(), "agreement_bound": bound.tolist(),
            "agreement_rule": f"every step within {AGREEMENT_FACTOR:g} x the largest yardstick difference so far, "
                              f"and at least {AGREEMENT_FLOOR:g}",
            "agree": bool(np.all(differences <= bound)), "max_relative_difference": float(differences[worst]),
            "max_relative_difference_step": worst, "max_yardstick_difference": float(yardstick.max()),
            "final_weights_max_relative_difference": max(weights),
            "cpu_median_step_seconds": statistics.median(result["cpu_seconds"]),
            "device_median_step_seconds": statistics.median(result["device_seconds"][1:] or result["device_seconds"])}


def relative_error(actual, expected):
    """max |actual - expected| over max |expected|."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-300))


def training_table(result, every):
    lines = [f"{'step':>5} {'cpu loss':>11} {'device loss':>11} {'rel. diff':>9} {'yardstick':>9} "
             f"{'cpu s':>7} {'device s':>8}"]
    for step in range(0, result["steps_done"], every):
        lines.append(f"{step:5d} {result['cpu_loss'][step]:11.6f} {result['device_loss'][step]:11.6f} "
                     f"{result['relative_difference'][step]:9.1e} {result['yardstick_difference'][step]:9.1e} "
                     f"{result['cpu_seconds'][step]:7.3f} {result['device_seconds'][step]:8.3f}")
    return lines


def training_lines(result):
    verdict = "agree" if result["agree"] else "DISAGREE"
    return [f"VGG-{result['config']} width {result['width']}, batch {result['batch']}, lr {result['lr']}: "
            f"{result['steps_done']} of {result['steps']} steps on {result['data']}",
            f"device: {result['device']}; beside: {result['cpu']}; same seed, weights and dropout masks",
            f"loss curves {verdict} ({result['agreement_rule']}; the yardstick is a CPU run from weights moved by "
            f"one ulp)",
            f"max relative loss difference {result['max_relative_difference']:.1e} at step "
            f"{result['max_relative_difference_step']} (yardstick: {result['max_yardstick_difference']:.1e}); "
            f"final weights differ by {result['final_weights_max_relative_difference']:.1e}",
            f"median step: device {result['device_median_step_seconds'] * 1e3:.1f} ms, "
            f"CPU {result['cpu_median_step_seconds'] * 1e3:.1f} ms (every step in training.json)",
            *training_table(result, every=max(1, result["steps_done"] // 10))]


# ---- kernels --------------------------------------------------------------------------------------------

def kernels(out, dry_run, budget):
    """benchmarks/gpu_kernels.py, its table parsed into rows (and printed to this part's log)."""
    command = [sys.executable, "benchmarks/gpu_kernels.py"] + (["--dry-run"] if dry_run else [])
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=budget - 5)
    print(run.stdout + run.stderr)
    if run.returncode != 0:
        raise RuntimeError(f"gpu_kernels.py exited with {run.returncode}:\n{run.stderr[-2000:]}")
    lines = run.stdout.splitlines()
    copy = float(lines[0].split("copy bandwidth ")[1].split(" GB/s")[0])
    return {"where": lines[0].split(";")[0], "copy_bandwidth_gb_s": copy,
            "kernels": [kernel_row(line) for line in lines[3:] if line.strip()]}


def kernel_row(line):
    """One row of the gpu_kernels.py table: kernel (may hold a space), shape, check, ms, GB/s, % of copy."""
    name_and_shape, rest = line.rsplit(")", 1)
    name, shape = name_and_shape.rsplit("(", 1)
    check, ms, rate, of_copy = rest.split()
    return {"kernel": name.strip(), "shape": [int(n) for n in shape.split(",") if n.strip()],
            "relative_error_vs_numpy": None if check == "-" else float(check), "ms": float(ms),
            "gb_s": float(rate), "fraction_of_copy": float(of_copy.rstrip("%")) / 100}


def kernels_lines(result):
    lines = [f"{result['where']}, float32; copy bandwidth {result['copy_bandwidth_gb_s']:.1f} GB/s (read + write)",
             f"{'kernel':32} {'shape':>22} {'vs NumPy':>9} {'ms':>9} {'GB/s':>8} {'of copy':>8}"]
    for row in result["kernels"]:
        error = row["relative_error_vs_numpy"]
        lines.append(f"{row['kernel']:32} {str(tuple(row['shape'])):>22} {'-' if error is None else f'{error:.1e}':>9} "
                     f"{row['ms']:9.3f} {row['gb_s']:8.1f} {row['fraction_of_copy']:8.0%}")
    return lines


# ---- training throughput ---------------------------------------------------------------------------------

def throughput(out, dry_run, budget):
    """Training images/s of VGG-A and VGG-D, minivgg beside PyTorch (float32, TF32 off)."""
    settings = DRY_THROUGHPUT if dry_run else THROUGHPUT
    torch = None if dry_run else torch_on_gpu()
    result = {**settings, "device": "cpu (dry run)" if dry_run else "cuda", "minivgg": {},
              "torch": {} if torch else ("left out in a dry run" if dry_run else torch_absence()),
              "torch_settings": "float32, TF32 off for matmul and cuDNN, cudnn.benchmark on"}
    x, labels = random_batch(settings)
    for config in settings["configs"]:
        result["minivgg"][config] = measure(minivgg_step(config, settings, x, labels, dry_run), settings)
        release_gpu_memory(dry_run)
        write_json(out / "throughput.json", result)
        if torch:
            result["torch"][config] = measure(torch_step(torch, config, settings, x, labels), settings)
            torch.cuda.empty_cache()
            write_json(out / "throughput.json", result)
    return result


def random_batch(settings):
    rng = np.random.default_rng(0)
    shape = (settings["batch"], 3, settings["size"], settings["size"])
    return (rng.standard_normal(shape) * 50).astype(np.float32), rng.integers(0, 1000, settings["batch"])


def measure(step, settings):
    """Images/s from the median of ``timed`` steps after ``warmup`` steps (each step ends with a read)."""
    for _ in range(settings["warmup"]):
        step()
    seconds = []
    for _ in range(settings["timed"]):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    return {"images_per_second": settings["batch"] / median, "median_step_seconds": median, "step_seconds": seconds}


def minivgg_step(config, settings, x, labels, dry_run):
    """One minivgg training step (the Trainer's: upload the batch, forward, backward, SGD, read the loss)."""
    device = "cpu" if dry_run else "cuda"
    model = models.vgg(config, 1000, 3, settings["size"], settings["width"], "paper").to(device)
    optimizer = SGD(model.parameters(), 0.01, momentum=0.9, weight_decay=5e-4)
    trainer = Trainer(model, optimizer, PlateauSchedule(optimizer), None, None, tempfile.gettempdir(),
                      device=device, progress=False)
    return lambda: trainer.train_step(x, labels)


def release_gpu_memory(dry_run):
    """Give CuPy's cached blocks back to the driver, so that PyTorch finds the memory free."""
    if not dry_run:
        import cupy
        cupy.get_default_memory_pool().free_all_blocks()


def torch_on_gpu():
    """The torch module set up for a float32 comparison, or None where torch or its CUDA is missing."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return torch


def torch_absence():
    """Why there is no PyTorch comparison."""
    try:
        import torch
    except ImportError as error:
        return f"absent: PyTorch is not installed ({error})"
    return f"absent: PyTorch {torch.__version__} sees no CUDA device (CUDA build: {torch.version.cuda})"


def torch_vgg(torch, config, num_classes, size):
    """The same VGG configuration, built with torch.nn from Table 1 (A to E; not A-LRN)."""
    nn = torch.nn
    layers, channels = [], 3
    for token in TABLE_1[config].split():
        kind, *arguments = parse_token(token)
        if kind == "conv":
            kernel, out = arguments
            layers += [nn.Conv2d(channels, out, kernel, padding=kernel // 2), nn.ReLU(inplace=True)]
            channels = out
        else:
            layers.append(nn.MaxPool2d(2, 2))
    side = size // 32
    return nn.Sequential(*layers, nn.Flatten(),
                         nn.Linear(FINAL_CHANNELS * side * side, FC_WIDTH), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Linear(FC_WIDTH, FC_WIDTH), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Linear(FC_WIDTH, num_classes))


def torch_step(torch, config, settings, x, labels):
    """One PyTorch training step in the same shape: upload, forward, backward, SGD, read the loss."""
    model = torch_vgg(torch, config, 1000, settings["size"]).cuda().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_function = torch.nn.CrossEntropyLoss()
    x_host, labels_host = torch.from_numpy(x), torch.from_numpy(labels)

    def step():
        loss = loss_function(model(x_host.cuda()), labels_host.cuda())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def throughput_lines(result):
    lines = [f"training images/s at {result['size']}x{result['size']}, batch {result['batch']}, width "
             f"{result['width']}, float32, on {result['device']}; median of {result['timed']} steps after "
             f"{result['warmup']} warm-up steps",
             f"{'config':8} {'minivgg':>10} {'PyTorch':>10} {'minivgg/PyTorch':>16}"]
    for config, mine in result["minivgg"].items():
        theirs = result["torch"].get(config) if isinstance(result["torch"], dict) else None
        ratio = f"{mine['images_per_second'] / theirs['images_per_second']:.2f}" if theirs else "-"
        their_rate = f"{theirs['images_per_second']:10.1f}" if theirs else f"{'-':>10}"
        lines.append(f"VGG-{config:4} {mine['images_per_second']:10.1f} {their_rate} {ratio:>16}")
    if isinstance(result["torch"], str):
        lines.append(f"PyTorch: {result['torch']}")
    else:
        lines.append(f"PyTorch: {result['torch_settings']}")
    return lines


PARTS = {  # name: (run, summary lines, seconds on a GPU, seconds in a dry run)
    "environment": (environment, environment_lines, 20, 10),
    "tests": (tests, tests_lines, 95, 15),
    "training": (training, training_lines, 55, 15),
    "kernels": (kernels, kernels_lines, 45, 10),
    "throughput": (throughput, throughput_lines, 55, 10),
}
