"""The real-GPU check of minivgg: one prepared run, under five minutes on one H100.

    bash benchmarks/gpu_check.sh              # on a machine with a CUDA GPU
    bash benchmarks/gpu_check.sh --dry-run    # the same run on a CPU-only machine, in under a minute

Results go to $OUT (default ./gpu_results), eight files when all goes well:
one JSON per part, pytest's output, summary.json (how each part went) and
summary.txt (everything, for people).

  environment.json  GPU name, driver, CUDA runtime, CuPy, NVRTC and PyTorch versions
  tests.json        `python -m pytest -m gpu tests/cuda -q`: counts; the output is in pytest_gpu.txt
  training.json     100 SGD steps of VGG-A (width 0.25, batch 64) on Fashion-MNIST, on the GPU and on
                    the CPU in lockstep (same seed, weights and dropout masks): both loss curves and
                    their relative difference per step (a table of every tenth step in summary.txt)
  kernels.json      benchmarks/gpu_kernels.py: each CUDA twin's GB/s beside the copy bandwidth
  throughput.json   VGG-A and VGG-D training images/s at 224x224 (batch 32, float32), minivgg beside
                    PyTorch when torch with CUDA is importable

Each part runs in its own process with its own time budget (PARTS in
gpu_check_parts.py); one that fails or runs out of time is recorded, its log
kept in logs/ (and its end in the summary), and the next one runs.  The exit
status is 0 when every part ran to its end.

The dry run is the same script on the CPU: the GPU tests skip ('no CUDA
device'), the "device" of the training run is the CUDA twins on the CPU
emulator (kernels/emulator) at a tiny width, the kernels run on the emulator
at tiny shapes, the throughput is the CPU's at 32x32, and PyTorch is left out.
"""
import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gpu_check_parts import PARTS, write_json

TOTAL_SECONDS = {False: 280, True: 55}  # the whole run, on a GPU / dry (the parts' budgets add up to less)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="run on the CPU: emulated kernels, tiny shapes")
    parser.add_argument("--part", choices=list(PARTS), help="run only this part, in this process")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = Path(os.environ.get("OUT") or "gpu_results").resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    if args.part:
        run, _, budget, dry_budget = PARTS[args.part]
        write_json(out / f"{args.part}.json", run(out, args.dry_run, dry_budget if args.dry_run else budget))
        return 0
    return run_all(out, args.dry_run)


def run_all(out, dry_run):
    """Every part in turn, each in a subprocess within its budget; then summary.json and summary.txt."""
    start = time.monotonic()
    deadline = start + TOTAL_SECONDS[dry_run]
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(" ", "seconds")
    summary = {"dry_run": dry_run, "started_utc": started, "parts": {}}
    for name, (_, _, budget, dry_budget) in PARTS.items():
        limit = min(dry_budget if dry_run else budget, deadline - time.monotonic())
        summary["parts"][name] = run_part(name, out, dry_run, limit)
        print(f"{name}: {summary['parts'][name]['status']} ({summary['parts'][name]['seconds']} s)", flush=True)
    summary["seconds"] = round(time.monotonic() - start, 1)
    if not any((out / "logs").iterdir()):
        (out / "logs").rmdir()
    write_json(out / "summary.json", summary)
    text = summary_text(summary, out)
    (out / "summary.txt").write_text(text, encoding="utf-8")
    print(text)
    return 0 if all(part["status"] == "ok" for part in summary["parts"].values()) else 1


def run_part(name, out, dry_run, limit):
    """Run part ``name`` in a new process group, killed with its children after ``limit`` seconds."""
    (out / f"{name}.json").unlink(missing_ok=True)  # no stale result may pass for this run's
    log = out / "logs" / f"{name}.log"
    record = {"budget_s": round(limit), "log": str(log.relative_to(out)), "seconds": 0.0}
    if limit < 5:
        return {**record, "status": "not run: the time of the whole check was used up"}
    command = [sys.executable, __file__, "--part", name] + (["--dry-run"] if dry_run else [])
    start = time.monotonic()
    with open(log, "w", encoding="utf-8") as stream:
        process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "OUT": str(out), "PYTHONUNBUFFERED": "1"})
        try:
            returncode = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            returncode = None
    record["seconds"] = round(time.monotonic() - start, 1)
    if returncode == 0:
        log.unlink()  # a log is kept only for a part that did not finish
        return {**record, "status": "ok", "log": None}
    status = f"timed out after {limit:.0f} s" if returncode is None else f"failed (exit status {returncode})"
    return {**record, "status": status, "log_tail": log.read_text(encoding="utf-8").splitlines()[-15:]}


def summary_text(summary, out):
    """summary.txt: how each part went, then each part's results (what a part that stopped early had left)."""
    dry = " -- DRY RUN on the CPU (emulated kernels, tiny shapes)" if summary["dry_run"] else ""
    title = f"minivgg GPU check{dry}"
    lines = [title, f"started {summary['started_utc']}, {summary['seconds']} s in all; results in {out}",
             "parts: " + "; ".join(f"{name} {part['status']} ({part['seconds']} of {part['budget_s']} s)"
                                   for name, part in summary["parts"].items())]
    for name, part in summary["parts"].items():
        lines += ["", f"== {name} ==", *part_lines(name, out)]
        if part["status"] != "ok":
            lines += [f"!! {name}: {part['status']}; log: {part['log']}",
                      *("   " + line for line in part.get("log_tail", []))]
    return "\n".join(lines) + "\n"


def part_lines(name, out):
    """The summary lines of one part's JSON, or why there are none."""
    path = out / f"{name}.json"
    if not path.exists():
        return ["(no results)"]
    try:
        return PARTS[name][1](json.loads(path.read_text(encoding="utf-8")))
    except Exception as error:  # a half-written result must not cost the summary of the others
        return [f"(could not summarise {path.name}: {type(error).__name__}: {error})"]


if __name__ == "__main__":
    sys.exit(main())
