"""Packaging for minivgg.

The hand-written kernels live in the top-level folder ``kernels/`` so that a
learner finds them at once, but they are installed as ``minivgg.kernels``:
no package named ``kernels`` ever lands in a user's site-packages.
"""
from setuptools import find_packages, setup

PACKAGES = find_packages(include=["minivgg", "minivgg.*"]) + ["minivgg.kernels", "minivgg.kernels.emulator"]

setup(
    name="minivgg",
    version="0.1.0",
    description="A from-scratch deep-learning engine that reproduces the VGG paper",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=PACKAGES,
    package_dir={"minivgg.kernels": "kernels"},
    package_data={"minivgg.kernels": ["*.cu", "*.h"], "minivgg.kernels.emulator": ["*.h"]},
    # threadpoolctl: kernels/blas.py runs stacks of products with OpenBLAS on one thread
    install_requires=["numpy>=1.24", "pillow>=9.1", "threadpoolctl>=3"],
    extras_require={
        # progress bar and loss/error plot of the trainer (both optional)
        "train": ["tqdm>=4.60", "matplotlib>=3.5"],
        "test": ["pytest>=7", "hypothesis>=6.80"],
        # the GPU: CuPy (and NVRTC, which also lets CI compile every .cu file without a GPU)
        "cuda": ["cupy-cuda13x", "nvidia-cuda-nvrtc"],
        # data parallel across processes and machines
        "dist": ["mpi4py>=3.1", "mpich"],
        # the PyTorch oracle of the parity tests, and loading torchvision's .pth weights
        "torch": ["torch>=2.1"],
    },
)
