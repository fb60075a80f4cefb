"""The image-folder path through the command-line scripts, as a user runs it: train, resume, evaluate, fuse, draw.

A generated folder of real-sized colour PNGs (three classes) goes through
examples/train_vgg_a.py, evaluate_vgg.py and show_features.py in subprocesses.
"""
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from image_folders import ROOT, run_script, write_image_folder

CLASSES = ("cat", "dog", "fox")
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
SMALL_RUN = ("--dataset", "folder", "--width", "0.0625", "--batch-size", "8", "--no-progress")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two trained runs on one folder: S = 40 (2 epochs, then resumed to 3) and S jittered in [32, 48]."""
    base = tmp_path_factory.mktemp("folder_runs")
    folder = write_image_folder(base / "pictures", CLASSES, train_per_class=14, val_per_class=3)
    fixed, jitter = base / "fixed", base / "jitter"
    first = run_script("train_vgg_a.py", *SMALL_RUN, "--data", folder, "--scale", "40", "--epochs", "2",
                       "--out", fixed)
    resumed = run_script("train_vgg_a.py", *SMALL_RUN, "--data", folder, "--scale", "40", "--epochs", "3",
                         "--resume", "--out", fixed)
    run_script("train_vgg_a.py", *SMALL_RUN, "--data", folder, "--scale", "32,48", "--epochs", "1", "--out", jitter)
    return {"folder": folder, "fixed": fixed, "jitter": jitter, "first": first.stdout, "resumed": resumed.stdout}


def epoch_lines(stdout):
    return [line for line in stdout.splitlines() if line.startswith("epoch ")]


def test_training_prints_one_line_per_epoch_and_why_it_stopped(runs):
    lines = epoch_lines(runs["first"])
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    for line, lr in zip(lines, ["0.01", "0.001"]):   # --final-cut 2: no plateau came, the last epoch has a cut rate
        assert "train loss" in line and "validation top-1 error" in line and f", lr {lr}, " in line
        assert "images/s" in line and "top-5" not in line  # three classes: top-5 is always right
    assert "no plateau came before the last 2 epochs: learning rate 0.01 -> 0.001 (cut 1 of 3)" in runs["first"]
    assert "stopped after epoch 2: reached the limit of 2 epochs" in runs["first"]
    assert "test accuracy" in runs["first"].splitlines()[-1] and "on 9 test images" in runs["first"]


def test_the_default_validation_set_is_a_tenth_of_train_and_the_run_is_recorded(runs):
    result = json.loads((runs["fixed"] / "result.json").read_text())
    assert result["dataset"] == "folder" and result["data"] == runs["folder"] and result["test_top5_error"] is None
    assert result["epochs"] == 3 and result["stop_reason"] == "stopped after epoch 3: reached the limit of 3 epochs"
    assert (result["train_images"], result["val_images"], result["test_images"]) == (38, 4, 9)  # 42 in train/
    assert "folder: 38 training images, 4 validation images (held out of the training set), 9 test images" in \
        runs["first"]
    assert {"checkpoint.npz", "log.jsonl", "result.json"} <= {p.name for p in runs["fixed"].iterdir()}


def test_two_processes_train_the_folder_run_as_one_does(runs, tmp_path):
    """--processes 2: two ranks of this machine, each half of every batch; the same run up to rounding."""
    logs = []
    for processes in ("1", "2"):
        out = tmp_path / f"processes{processes}"
        result = run_script("train_vgg_a.py", *SMALL_RUN, "--data", runs["folder"], "--scale", "40", "--epochs", "2",
                            "--processes", processes, "--out", out)
        assert len(epoch_lines(result.stdout)) == 2, "only rank 0 prints"
        logs.append([json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()])
    for one, two in zip(*logs):
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)
        assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-4)


def test_a_failing_rank_ends_the_run_with_its_error_and_a_one_line_summary(runs, tmp_path):
    result = run_script("train_vgg_a.py", *SMALL_RUN, "--data", runs["folder"], "--limit", "1000",
                        "--processes", "2", "--out", tmp_path, expect_failure=True)
    assert result.stderr.count("error: --limit 1000: only") == 1, "the ranks' error, printed once"
    assert result.stderr.splitlines()[-1].startswith(
        "train_vgg_a.py: error: --processes 2: launch: rank ")


def test_a_last_batch_too_small_for_the_ranks_names_processes(runs, tmp_path):
    result = run_script("train_vgg_a.py", *SMALL_RUN, "--data", runs["folder"], "--limit", "33",
                        "--processes", "2", "--out", tmp_path, expect_failure=True)
    assert ("error: --processes 2: the last batch of each epoch holds 1 samples (33 samples in batches of 8), "
            "fewer than the 2 ranks") in result.stderr


def test_resume_continues_the_folder_run(runs):
    assert "resumed from epoch 2" in runs["resumed"]
    assert [line.split(":")[0] for line in epoch_lines(runs["resumed"])] == ["epoch 3/3"]
    log = [json.loads(line) for line in (runs["fixed"] / "log.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in log] == [1, 2, 3]


def test_evaluation_reads_the_test_set_from_the_checkpoints_and_fuses(runs, tmp_path):
    fixed, jitter = runs["fixed"] / "checkpoint.npz", runs["jitter"] / "checkpoint.npz"
    result = run_script("evaluate_vgg.py", fixed, jitter, "--no-progress", "--grid", "2")
    out = result.stdout
    assert out.startswith(f"9 folder test images from {runs['folder']}/val, 3 classes")
    assert "top-1 err" in out and "top-5" not in out
    report = json.loads((runs["fixed"] / "evaluation.json").read_text())  # beside the first checkpoint
    rows = report["rows"]
    assert len(rows) == 2 * 2 * 4 + 4  # two nets x single/multi-scale x four methods, then the fusions
    assert {r["run"] for r in rows} == {str(runs["fixed"]), str(runs["jitter"]), "fusion"}
    scales = {(r["run"], r["test_scales"]) for r in rows if r["method"] == "dense"}
    assert scales == {(str(runs["fixed"]), "40"), (str(runs["fixed"]), "36,40,44"),  # d = 32 // 7 = 4
                      (str(runs["jitter"]), "40"), (str(runs["jitter"]), "32,40,48"), ("fusion", "multi")}
    assert all(0 <= r["top1_error"] <= 1 and r["top5_error"] is None for r in rows)
    assert report["images"] == 9 and report["dataset"] == "folder" and report["data"] == runs["folder"]
    limited = tmp_path / "limited.json"
    run_script("evaluate_vgg.py", fixed, "--limit", "4", "--methods", "single,dense", "--out", limited)
    assert json.loads(limited.read_text())["images"] == 4


def test_help_says_what_train_and_val_are_for():
    text = " ".join(run_script("train_vgg_a.py", "--help").stdout.split())
    assert "DIR/train/<class>/<image> (training; the validation set is held out from it)" in text
    assert "DIR/val/<class>/<image> (the test set)" in text
    assert "images per SGD step" in text and "fixes the initial weights" in text
    assert "directory for the log, curves, checkpoint and result" in text and "at most this many epochs" in text


def test_a_validation_size_that_does_not_fit_is_a_one_line_error(runs, tmp_path):
    result = run_script("train_vgg_a.py", *SMALL_RUN, "--data", runs["folder"], "--val-size", "500",
                        "--out", tmp_path, expect_failure=True)
    assert result.stderr.strip() == ("train_vgg_a.py: error: --val-size 500 does not fit: the training set has "
                                     "42 images, so --val-size must be in 1..41")


def test_evaluating_a_net_on_a_test_set_it_cannot_read_is_a_one_line_error(runs):
    result = run_script("evaluate_vgg.py", runs["fixed"] / "checkpoint.npz", "--dataset", "fashion-mnist",
                        "--limit", "2", expect_failure=True)
    expected = ("predicts 3 classes, but the fashion-mnist test set has 10" if os.path.isdir(DEBIAN_FASHION_MNIST)
                else "cannot read the fashion-mnist test set")
    assert result.stderr.startswith("evaluate_vgg.py: error: ") and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_show_features_draws_the_filters_and_each_stage(runs):
    pytest.importorskip("matplotlib", reason="show_features.py draws with matplotlib (an optional extra)")
    checkpoint = runs["fixed"] / "checkpoint.npz"
    result = run_script("show_features.py", checkpoint, "--image", "4", "--maps", "3")
    picture = runs["fixed"] / "features.png"  # beside the checkpoint
    assert result.stdout.strip() == (f"{picture}: the 4 first-layer filters and the feature maps of test image 4 "
                                     f"at 5 stages")
    with Image.open(picture) as image:
        assert image.format == "PNG" and image.width >= 800 and image.height > 5 * 100  # five stage rows
    out_of_range = run_script("show_features.py", checkpoint, "--image", "9", expect_failure=True)
    assert out_of_range.stderr.strip() == ("show_features.py: error: --image 9 is out of range: the folder test "
                                           "set has 9 images")


def test_show_features_without_matplotlib_says_how_to_install_it(runs):
    script = ROOT / "examples" / "show_features.py"
    code = ("import runpy, sys; sys.modules['matplotlib'] = None; "  # None in sys.modules: import fails
            f"sys.path.insert(0, {str(script.parent)!r}); "  # as when the script runs itself
            f"sys.argv = [{str(script)!r}, {str(runs['fixed'] / 'checkpoint.npz')!r}]; "
            f"runpy.run_path({str(script)!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip() == ("show_features.py: error: drawing needs matplotlib: pip install matplotlib "
                                     "(or pip install -e '.[train]')")
