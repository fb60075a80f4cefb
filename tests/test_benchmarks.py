"""The kernel benchmark runs end to end and prints its table (no timing is asserted)."""
import pathlib
import subprocess
import sys

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
