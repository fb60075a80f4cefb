"""The paper's depth experiment (Table 3 and section 4.1) at small scale, on Fashion-MNIST.

    python benchmarks/depth_study.py                         # the default run's recipe for every net
    python benchmarks/depth_study.py --limit 5000 --val-size 2000 --jobs 2 --grid 3   # what fits in 2 hours
    python benchmarks/depth_study.py --report                # only the table, from the runs finished so far

Trains, at the default run's width (0.25) and recipe (SGD 0.01, momentum 0.9,
weight decay 5e-4, batch 64, lr cut on plateau, 32x32 crops with flips), but
with the lr cut after one epoch without a new best (``--patience 1``, as
its results were made; the default run now waits two) and no cut forced
before the last epochs (``--final-cut 0``):

* A, A-LRN, B, C, D, E and B-5x5 (section 4.1's variant of B) from random
  (Glorot) weights, A and E with two seeds each to measure the spread;
* B, C, D and E once more, warm-started from the first A (its first four
  convolutions and its three FC layers, as in the paper's section 3.1).

Each net is then evaluated on all 10,000 test images twice: a single central
crop at Q = 32 (``train_vgg_a.py``'s own test figure) and multi-crop at
Q in {32, 40} (the evaluation study's best method: ``evaluate_vgg.py
--methods multi-crop --scale-step 8``; a grid x grid of crops and their flips).

Everything goes under ``--out``, one folder per run (train.out, log.jsonl,
checkpoint.npz, result.json, evaluation.json, times.json).  The study is
resumable: a run with a result.json is not trained again, one with only a
checkpoint is resumed, one with an evaluation.json is not evaluated again
(``--train-only`` trains every net first; the evaluations then follow).
With ``--jobs 2`` two runs go at once with one thread each (on 2 cores
about 1.3x the throughput of one run with two threads).  At the end the
table (``depth_study_table.md`` in ``--out``) is printed.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from minivgg.models import vgg  # noqa: E402  (after the path is set, for a run from a fresh clone)

TRAIN = os.path.join(ROOT, "examples", "train_vgg_a.py")
EVALUATE = os.path.join(ROOT, "examples", "evaluate_vgg.py")
MULTI_SCALES = "32,40"
PATIENCE = 1   # the schedule its results (benchmarks/results/depth_study.md) were made with; the default run's is 2
FINAL_CUT = 0  # ... which had no cut forced before the last epochs (the default run's --final-cut is 2)
# (run name, configuration, seed, warm-started from the first A?)
RUNS = [("A", "A", 0, False), ("A-seed1", "A", 1, False), ("A-LRN", "A-LRN", 0, False),
        ("B", "B", 0, False), ("C", "C", 0, False), ("D", "D", 0, False), ("E", "E", 0, False),
        ("E-seed1", "E", 1, False), ("B-5x5", "B-5x5", 0, False),
        ("B-warm", "B", 0, True), ("C-warm", "C", 0, True), ("D-warm", "D", 0, True), ("E-warm", "E", 0, True)]
ORDER = ["A", "E", "E-seed1", "D", "C", "B", "B-5x5", "A-LRN", "A-seed1",   # the longest first, A before all
         "E-warm", "D-warm", "C-warm", "B-warm"]                              # the warm starts wait for A


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/depth_study", help="folder of all runs")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run (the default run's 10)")
    parser.add_argument("--limit", type=int, help="train on this many of the training images (default: all)")
    parser.add_argument("--val-size", type=int, help="validation images held out (default: train_vgg_a.py's)")
    parser.add_argument("--grid", type=int, default=5, help="multi-crop grid per side (the paper: 5)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once; above 1, one thread each")
    parser.add_argument("--only", help="comma-separated run names to do (default: all; a warm start needs A)")
    parser.add_argument("--train-only", action="store_true",
                        help="train, but evaluate nothing (a later study without this flag evaluates)")
    parser.add_argument("--report", action="store_true", help="only print and write the table")
    args = parser.parse_args(argv)
    names = [name for name, *_ in RUNS]
    args.only = args.only.split(",") if args.only else names
    unknown = sorted(set(args.only) - set(names))
    if unknown:
        parser.error(f"argument --only: unknown run(s) {', '.join(unknown)}; the runs are {', '.join(names)}")
    return args


def run_dir(args, name):
    return os.path.join(args.out, name)


def read_json(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def write_json(path, value):
    """Written to a temporary file first, so that a killed study never leaves half a file."""
    with open(path + ".tmp", "w", encoding="utf-8") as file:
        json.dump(value, file, indent=2)
    os.replace(path + ".tmp", path)


def child_environment(args):
    env = dict(os.environ)
    if args.jobs > 1:
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", MINIVGG_THREADS="1")
    return env


def timed(command, log_path, args):
    """Run ``command`` with its output appended to ``log_path``; its wall time and the load around it."""
    start, load = time.perf_counter(), os.getloadavg()[0]
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=child_environment(args))
    if code:
        raise RuntimeError(f"depth study: {' '.join(command)} failed with exit code {code}; see {log_path}")
    return {"seconds": time.perf_counter() - start, "load_before": load, "load_after": os.getloadavg()[0]}


def train(args, name, config, seed, warm):
    folder = run_dir(args, name)
    if os.path.exists(os.path.join(folder, "result.json")):
        return
    os.makedirs(folder, exist_ok=True)
    command = [sys.executable, TRAIN, "--config", config, "--seed", str(seed), "--epochs", str(args.epochs),
               "--patience", str(PATIENCE), "--final-cut", str(FINAL_CUT), "--out", folder, "--no-progress"]
    command += ["--limit", str(args.limit)] if args.limit else []
    command += ["--val-size", str(args.val_size)] if args.val_size else []
    if os.path.exists(os.path.join(folder, "checkpoint.npz")):
        command.append("--resume")
    elif warm:
        command += ["--warm-start", os.path.join(run_dir(args, "A"), "checkpoint.npz")]
    record_time(folder, "train", timed(command, os.path.join(folder, "train.out"), args))


def evaluate(args, name):
    folder = run_dir(args, name)
    out = os.path.join(folder, "evaluation.json")
    if os.path.exists(out):
        return
    command = [sys.executable, EVALUATE, os.path.join(folder, "checkpoint.npz"), "--methods", "multi-crop",
               "--scale-step", "8", "--grid", str(args.grid), "--out", out + ".tmp", "--no-progress"]
    timing = timed(command, os.path.join(folder, "evaluate.out"), args)
    os.replace(out + ".tmp", out)
    record_time(folder, "evaluate", timing)


def record_time(folder, step, timing):
    path = os.path.join(folder, "times.json")
    times = read_json(path) or {}
    times.setdefault(step, []).append(timing)  # a resumed run adds a second entry
    write_json(path, times)


def run_study(args):
    """Every run, trained then evaluated, ``--jobs`` at a time; the warm starts wait for the first A."""
    net_a_done = threading.Event()
    runs = {name: (config, seed, warm) for name, config, seed, warm in RUNS}

    def one(name):
        config, seed, warm = runs[name]
        if warm:
            net_a_done.wait()
        try:
            train(args, name, config, seed, warm)
        finally:
            if name == "A":
                net_a_done.set()
        if not args.train_only:
            evaluate(args, name)
        print(f"depth study: {name} done", flush=True)

    if "A" not in args.only:
        net_a_done.set()  # a warm start then needs A's checkpoint from an earlier study
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # A first, so a waiting warm start never blocks it
        futures = [pool.submit(one, name) for name in ORDER if name in args.only]
    for future in futures:
        future.result()


# ---- the table -------------------------------------------------------------------------------

def weight_layers(config):
    model = vgg(config, num_classes=10, in_channels=1, input_size=32, width=0.25)
    return len(model.parameters()) // 2, model.num_parameters()


def multi_crop_errors(evaluation):
    for row in evaluation["rows"]:
        if row["method"] == "multi-crop" and row["test_scales"] == MULTI_SCALES:
            return row["top1_error"], row["top5_error"]
    raise ValueError(f"depth study: no multi-crop row at Q = {MULTI_SCALES} in the evaluation")


def run_row(args, name, config, seed, warm):
    folder = run_dir(args, name)
    result, evaluation = read_json(os.path.join(folder, "result.json")), read_json(os.path.join(folder,
                                                                                                 "evaluation.json"))
    if result is None:
        return None
    with open(os.path.join(folder, "log.jsonl"), encoding="utf-8") as file:
        log = [json.loads(line) for line in file]
    times = read_json(os.path.join(folder, "times.json")) or {}
    layers, parameters = weight_layers(config)
    return {"name": name, "config": config, "seed": seed, "init": "warm (A)" if warm else "Glorot",
            "layers": layers, "parameters": parameters, "single": (result["test_top1_error"],
                                                                   result["test_top5_error"]),
            "multi": multi_crop_errors(evaluation) if evaluation else None, "epochs": result["epochs"],
            "val_errors": [entry["val_top1_error"] for entry in log],
            "images_per_second": statistics.median(result["train_images_per_second"]),
            "train_seconds": sum(t["seconds"] for t in times.get("train", [])),
            "evaluate_seconds": sum(t["seconds"] for t in times.get("evaluate", []))}


def percent(pair):
    return "—" if pair is None else f"{100 * pair[0]:.2f} / {100 * pair[1]:.2f}"


def epochs_to_reach(errors, target):
    return next((epoch for epoch, error in enumerate(errors, 1) if error <= target), None)


def table(rows):
    """The table shaped like the paper's Table 3, one line per run."""
    target = next((r["val_errors"][-1] for r in rows if r["name"] == "A"), None)
    lines = ["| run | config | weight layers | parameters | init | seed | top-1 / top-5 err, single (Q=32) % "
             f"| top-1 / top-5 err, multi-crop (Q={MULTI_SCALES}) % | epochs | epochs to A's val err "
             "| train s | img/s | eval s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        reach = epochs_to_reach(r["val_errors"], target) if target is not None else None
        lines.append(f"| {r['name']} | {r['config']} | {r['layers']} | {r['parameters']:,} | {r['init']} "
                     f"| {r['seed']} | {percent(r['single'])} | {percent(r['multi'])} | {r['epochs']} "
                     f"| {reach or 'not reached'} | {r['train_seconds']:.0f} | {r['images_per_second']:.0f} "
                     f"| {r['evaluate_seconds']:.0f} |")
    return "\n".join(lines)


def report(args):
    rows = [row for row in (run_row(args, *run) for run in RUNS) if row is not None]
    if not rows:
        print(f"depth study: no finished run in {args.out} yet")
        return
    text = table(rows)
    total = sum(r["train_seconds"] + r["evaluate_seconds"] for r in rows)
    text += f"\n\n{len(rows)} of {len(RUNS)} runs finished; {total / 3600:.2f} h of run time in all (summed over runs)\n"
    with open(os.path.join(args.out, "depth_study_table.md"), "w", encoding="utf-8") as file:
        file.write(text)
    print(text)


def main(argv=None):
    args = parse_args(argv)
    if not args.report:
        os.makedirs(args.out, exist_ok=True)
        start = time.perf_counter()
        run_study(args)
        seconds = time.perf_counter() - start
        record_time(args.out, "study", {"seconds": seconds, "command": sys.argv, "runs": args.only})
        print(f"depth study: {len(args.only)} run(s) done in {seconds / 3600:.2f} h", flush=True)
    report(args)


if __name__ == "__main__":
    main()
