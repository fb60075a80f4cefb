"""Every .cu file and every template instantiation compiles with NVRTC, no GPU needed."""
import os

import pytest

from minivgg.kernels import launch


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
@pytest.mark.parametrize("name", sorted(launch.SOURCES))
def test_every_instantiation_compiles(name, arch):
    nvrtc_or_skip()
    source = launch.SOURCES[name]
    lowered, log = source.nvrtc_compile(arch)
    assert sorted(lowered) == sorted(source.name_expressions())
    assert all(name.startswith("_Z") for name in lowered.values()), lowered
    assert "warning" not in log.lower(), log


def test_a_users_own_file_compiles_with_the_project_headers(tmp_path):
    """cuda_common.h is on the include path of a .cu file outside kernels/."""
    nvrtc_or_skip()
    (tmp_path / "scale.cu").write_text(
        '#include "cuda_common.h"\n'
        "template <typename T> __global__ void scale(T* x, index_t n)\n"
        "{ for (index_t e = grid_thread_index(); e < n; e += grid_thread_count()) x[e] *= T(2); }\n")
    lowered, _ = launch.CudaSource(tmp_path / "scale.cu", ["scale"]).nvrtc_compile("sm_90")
    assert sorted(lowered) == ["scale<double>", "scale<float>"]


def test_a_broken_kernel_reports_the_nvrtc_log(tmp_path):
    nvrtc_or_skip()
    (tmp_path / "broken.cu").write_text(
        '#include "cuda_common.h"\n'
        "template <typename T> __global__ void broken(T* x) { x[0] = undeclared; }\n")
    with pytest.raises(RuntimeError, match="undeclared"):
        launch.CudaSource(tmp_path / "broken.cu", ["broken"]).nvrtc_compile("sm_90")


def test_every_source_file_is_in_the_kernel_table():
    assert sorted(p.name for p in launch.KERNEL_DIR.glob("*.cu")) == sorted(launch.SOURCES)
