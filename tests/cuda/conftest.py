"""Tests of the CUDA twins: NVRTC compile checks, emulated runs, and GPU runs.

No __init__.py here on purpose: a package named ``cuda`` on sys.path would
hide NVIDIA's ``cuda`` namespace package, which CuPy imports.
"""


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped with 'no CUDA device' otherwise)")
