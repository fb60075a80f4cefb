"""benchmarks/gpu_kernels.py runs end to end on the emulator (its --dry-run mode)."""
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_kernels.py"


def test_gpu_kernel_benchmark_dry_run():
    result = subprocess.run([sys.executable, str(SCRIPT), "--dry-run"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "copy bandwidth" in lines[0]
    rows = {line.split()[0]: line.split() for line in lines[3:]}
    assert len(rows) == 11 and "sgd_update" in rows
    for name, row in rows.items():
        if row[-4] != "-":
            assert float(row[-4]) <= 1e-5, f"{name}: the CUDA twin disagrees with the NumPy twin"
