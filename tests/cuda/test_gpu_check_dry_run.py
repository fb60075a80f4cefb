"""benchmarks/gpu_check.sh --dry-run runs end to end on the CPU and writes well-formed results."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh"
PARTS = ("environment", "tests", "training", "kernels", "throughput")


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """$OUT of one dry run (shared by the tests below: the run takes some seconds)."""
    out = tmp_path_factory.mktemp("gpu_results")
    # PYTHON: the script installs into and runs the interpreter of these tests, not the first python on PATH
    environment = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run"], env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def load(out, name):
    return json.loads((out / f"{name}.json").read_text(encoding="utf-8"))


def test_every_part_ran_and_recorded_its_time_and_budget(out):
    summary = load(out, "summary")  # timings are recorded, never asserted: speed belongs in benchmarks/
    assert summary["dry_run"] is True and list(summary["parts"]) == list(PARTS)
    for name, part in summary["parts"].items():
        assert part["status"] == "ok", (name, part)
        assert isinstance(part["seconds"], float) and isinstance(part["budget_s"], (int, float))
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{name}.json" for name in PARTS] + ["pytest_gpu.txt", "summary.json", "summary.txt"])


def test_the_environment_names_every_version(out):
    environment = load(out, "environment")
    for key in ("python", "numpy", "driver", "torch"):
        assert environment[key]
    if not environment.get("cupy", "").startswith("not installed"):
        assert {"cuda_runtime", "cuda_driver_api", "nvrtc", "gpu"} <= environment.keys()


def test_the_gpu_tests_ran_and_were_skipped_without_a_gpu(out):
    tests = load(out, "tests")
    assert tests["command"] == "python -m pytest -m gpu tests/cuda -q" and tests["returncode"] == 0
    assert tests["tests"] > 0 and tests["failures"] == tests["errors"] == 0
    assert tests["passed"] + tests["skipped"] == tests["tests"]
    if tests["skipped"]:
        assert "no CUDA device" in (out / "pytest_gpu.txt").read_text(encoding="utf-8")


def test_the_emulated_cuda_twins_train_like_the_numpy_twins(out):
    training = load(out, "training")
    steps = training["steps"]
    assert training["steps_done"] == steps > 0
    for key in ("cpu_loss", "device_loss", "yardstick_loss", "relative_difference", "yardstick_difference",
                "agreement_bound", "cpu_seconds", "device_seconds"):
        assert len(training[key]) == steps and all(math.isfinite(v) for v in training[key]), key
    assert training["agree"] is True
    assert training["max_relative_difference"] == max(training["relative_difference"]) <= 1e-5
    assert training["final_weights_max_relative_difference"] <= 1e-5


def test_every_kernel_was_checked_and_timed(out):
    kernels = load(out, "kernels")
    assert kernels["copy_bandwidth_gb_s"] > 0
    rows = {row["kernel"].split()[0]: row for row in kernels["kernels"]}
    assert len(rows) == 11 and "sgd_update" in rows
    for name, row in rows.items():
        assert row["ms"] > 0 and row["shape"], name
        assert row["relative_error_vs_numpy"] is None or row["relative_error_vs_numpy"] <= 1e-5, name


def test_throughput_of_vgg_a_and_d_without_pytorch(out):
    throughput = load(out, "throughput")
    assert set(throughput["minivgg"]) == {"A", "D"}
    for config, measured in throughput["minivgg"].items():
        assert isinstance(measured["images_per_second"], float)  # recorded, never judged: speed is benchmarks'
        assert len(measured["step_seconds"]) == throughput["timed"]
    assert throughput["torch"] == "left out in a dry run"


def test_the_summary_reports_every_part(out):
    text = (out / "summary.txt").read_text(encoding="utf-8")
    assert text.startswith("minivgg GPU check -- DRY RUN")
    for name in PARTS:
        assert f"== {name} ==" in text
    assert "loss curves agree" in text and "VGG-D" in text and "(no results)" not in text
