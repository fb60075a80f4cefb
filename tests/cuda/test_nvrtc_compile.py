"""Every .cu file and every template instantiation compiles with NVRTC, no GPU needed."""
import os

import pytest

from minivgg.kernels import cuda


def nvrtc_or_skip():
    """Skip when the NVRTC library cannot be found at all; in CI (CI set) fail instead."""
    try:
        from cupy.cuda import nvrtc
        nvrtc.getVersion()
    except Exception as error:  # ImportError, or CuPy's error for a missing libnvrtc
        reason = (f"NVRTC library not found ({type(error).__name__}: {error}); "
                  "pip install cupy-cuda13x nvidia-cuda-nvrtc")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
@pytest.mark.parametrize("source", sorted(cuda.KERNELS))
def test_every_instantiation_compiles(source, arch):
    nvrtc_or_skip()
    lowered, log = cuda.nvrtc_compile(source, arch)
    assert sorted(lowered) == sorted(cuda.name_expressions(source))
    assert all(name.startswith("_Z") for name in lowered.values()), lowered
    assert "warning" not in log.lower(), log


def test_a_broken_kernel_reports_the_nvrtc_log(tmp_path, monkeypatch):
    nvrtc_or_skip()
    (tmp_path / "cuda_common.h").write_text((cuda.KERNEL_DIR / "cuda_common.h").read_text())
    (tmp_path / "broken.cu").write_text(
        '#include "cuda_common.h"\n'
        "template <typename T> __global__ void broken(T* x) { x[0] = undeclared; }\n")
    monkeypatch.setattr(cuda, "KERNEL_DIR", tmp_path)
    monkeypatch.setitem(cuda.KERNELS, "broken.cu", ("broken",))
    with pytest.raises(RuntimeError, match="undeclared"):
        cuda.nvrtc_compile("broken.cu", "sm_90")


def test_every_source_file_is_in_the_kernel_table():
    assert sorted(p.name for p in cuda.KERNEL_DIR.glob("*.cu")) == sorted(cuda.KERNELS)
