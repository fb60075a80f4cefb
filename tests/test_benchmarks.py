"""The kernel benchmark runs end to end and prints its table (no timing is asserted)."""
import importlib.util
import pathlib
import subprocess
import sys

import pytest

from minivgg.parallel import find_mpiexec

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_kernel_benchmark_quick_mode_prints_the_table():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kernels.py"), "--quick"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)  # the environment is inherited as is
    assert result.returncode == 0, result.stderr
    out = result.stdout
    header = next(line for line in out.splitlines() if line.startswith("kernel"))
    for column in ("shape", "median ms", "rate", "reference", "ref ms", "ratio"):
        assert column in header
    rows = [line.split("|")[0].strip() for line in out.splitlines() if "|" in line]
    assert rows.count("conv fwd") == 8 and rows.count("conv bwd") == 8  # VGG-A's eight convolutions
    for kernel in ("conv fwd, naive NCHW", "conv bwd, naive NCHW", "relu fwd", "relu bwd", "max_pool fwd",
                   "max_pool bwd", "lrn fwd (n=5)", "lrn bwd (n=5)", "dropout fwd", "dropout bwd",
                   "softmax-CE fwd", "softmax-CE bwd", "all 8 convs fwd", "all 8 convs bwd"):
        assert kernel in rows, kernel
    assert "GFLOP/s" in out and "GB/s" in out and "matmul 65536x27@27x64" not in out  # quick mode: batch 4
    assert "matmul 4096x27@27x64" in out


def test_a_variant_is_checked_then_timed_beside_the_reference():
    variant = "im2col=examples.custom_numpy_kernel:im2col_windows"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kernels.py"), "--quick", "--variant", variant],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [[cell.strip() for cell in line.split("|")] for line in result.stdout.splitlines() if "| " in line]
    assert rows[0] == ["kernel", "shape", "max rel diff", "reference ms", "variant ms", "variant speed"]
    im2col_rows = [row for row in rows[2:] if row[0] == "im2col"]
    assert len(im2col_rows) == 7   # the input shapes of VGG-A's eight convolutions (the last two share one)
    assert all(float(row[2]) == 0.0 for row in im2col_rows)   # the same copy: bit for bit
    assert all(row[5].endswith("x") for row in im2col_rows)


def test_a_wrong_variant_is_checked_and_named():
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kernels.py"), "--quick", "--variant",
                          "im2cols=examples.custom_numpy_kernel:im2col_windows"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "--variant: expected NAME=module:function" in bad.stderr
    assert "'im2cols=examples.custom_numpy_kernel:im2col_windows'" in bad.stderr


@pytest.mark.parametrize("algorithm, tolerance", [("winograd", 1e-5), ("winograd4", 1e-4)])
def test_winograd_benchmark_quick_mode_checks_and_times_every_vgg_a_convolution(algorithm, tolerance):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "winograd.py"), "--quick",
                             "--algorithm", algorithm], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [[cell.strip() for cell in line.split("|")] for line in result.stdout.splitlines() if " | " in line]
    assert rows[0][:3] == ["width", "layer", "max rel diff"] and "step speed" in rows[0] and "mixed speed" in rows[0]
    assert len(rows) == 2 + 16   # VGG-A's eight convolutions at widths 1 and 0.25
    assert all(float(row[2]) <= tolerance for row in rows[2:])     # checked against im2col before timing
    # the rule picks each algorithm somewhere, and F(2x2)'s input gradient below its forward
    assert {row[-1] for row in rows[2:]} == {"im2col / im2col", "im2col / winograd", "winograd / winograd",
                                             "winograd4 / winograd4", "taps / taps"}
    taps_rows = [row for row in rows[2:] if row[-1] == "taps / taps"]
    assert [row[1] for row in taps_rows] == ["512->512 @2x2"] * 2 + ["128->128 @2x2"] * 2   # the one-tile maps
    assert all(row[-2].endswith("x") for row in taps_rows) and rows[2][-2] == "-"


def test_algorithm_benchmark_times_every_variant_on_the_default_run():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "algorithms.py"), "--only", "default",
                             "--rounds", "1"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    header, _, row = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert header == ("| configuration | auto | im2col | winograd | winograd4 | auto without taps | "
                      "auto without winograd4 |")
    assert row.startswith("| default | ") and row.count("x)") == 6 and "(1.00x)" in row   # auto over itself


def test_the_counterfactual_rule_gives_one_tile_maps_to_winograd_and_is_undone():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import algorithms
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    one_tile, w = (8, 512, 2, 2), (512, 512, 3, 3)
    with algorithms.rule_without_taps():
        assert algorithms.conv.choose_algorithm(one_tile, w, 1, 1) == "winograd"
    assert algorithms.conv.choose_algorithm(one_tile, w, 1, 1) == "taps"
    wide = (8, 256, 8, 8), (256, 256, 3, 3)
    with algorithms.rule_without_winograd4():
        assert algorithms.conv.choose_algorithm(*wide, 1, 1) == "winograd"
    assert algorithms.conv.choose_algorithm(*wide, 1, 1) == "winograd4"


def test_parallel_benchmark_times_each_set_up_and_pytorch_beside_them():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "parallel.py"), "--steps", "1",
                             "--warmup", "0", "--batch-size", "4"], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("set-up"))
    assert header.split() == ["set-up", "step", "ms", "images/s", "vs", "1st", "vs", "PyTorch", "all-reduce"]
    rows = {line[:30].strip(): line[30:].split() for line in lines[lines.index(header) + 1:]}
    expected = {"1 process, default threads", "1 process x 1 thread", "2 processes (--processes 2)",
                "PyTorch, 1 process"}
    if find_mpiexec():
        expected.add("2 MPI processes, cores shared")
    assert set(rows) == expected
    assert rows["PyTorch, 1 process"][3] == "1.00x" and rows["1 process, default threads"][2] == "1.00x"


def test_vs_pytorch_times_the_default_run_in_two_processes_beside_pytorch():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "vs_pytorch.py"), "--quick", "--only",
                             "default-2p"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "in 2 processes (`--processes 2`)" in line)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert len(cells) == 5 and float(cells[4].strip("*")) > 0, row


def test_small_layer_variants_are_checked_against_the_rule_then_timed():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "small_layers.py"), "--quick", "--chunks", "1",
                             "3"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in result.stdout.splitlines()
            if line.startswith("| ")]
    assert rows[0][:4] == ["layer", "rule's algorithm", "images per chunk", "rule ms"]
    layers = [row[0] for row in rows[1:]]
    assert layers == [layer for layer in ("1->16 @32x32", "16->32 @16x16", "32->64 @8x8", "64->64 @8x8",
                                          "64->128 @4x4", "128->128 @4x4") for _ in range(2)]
    assert all(float(row[-1]) <= 1e-4 for row in rows[1:])   # both variants agree with the rule before timing


def test_small_layer_variants_compute_the_convolution_in_any_chunking(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import numpy as np
    from small_layers import rows_conv, shifted_conv
    from minivgg.functions.conv import conv2d_forward
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 3, 7, 4))        # NHWC, an odd batch and an oblong map
    w = rng.standard_normal((6, 4, 3, 3))
    want = conv2d_forward(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), w, None, 1, 1)[0]
    for variant in (shifted_conv, rows_conv):
        for chunk in (1, 2, 5, 8):
            got = variant(x, w, chunk).transpose(0, 3, 1, 2)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_the_default_step_splits_into_a_fixed_cost_and_a_cost_per_image(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import vs_pytorch
    # step = fixed + batch * per image: minivgg 9 ms + 0.5 ms an image, PyTorch 4 ms + 0.25 ms an image
    results = [{"name": name, "best_torch": "torch channels_last",
                "times": {"minivgg": [(9 + batch * 0.5) / 1000], "torch channels_last": [(4 + batch * 0.25) / 1000]}}
               for name, batch in (("default-b2", 2), ("default", 64))]
    line = vs_pytorch.fixed_and_per_image(results)
    assert "minivgg 9.0 ms + 0.500 ms an image" in line and "4.0 ms + 0.250 ms an image" in line
    assert "0.44 on the fixed cost, 0.50 per image" in line
    assert vs_pytorch.fixed_and_per_image(results[1:]) is None
