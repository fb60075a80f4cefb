"""Folders of real-sized colour PNGs for the command-line tests, laid out as ImageNet is unpacked."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def write_image_folder(root, classes, train_per_class, val_per_class, seed=0):
    """root/train/<class>/<i>.png and root/val/<class>/<i>.png: noisy images of one colour per class.

    Sizes differ from image to image (40 to 72 pixels a side, portrait and
    landscape), as photographs do; returns ``root`` as a string.
    """
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for index, name in enumerate(classes):
            colour = rng.integers(30, 226, 3)
            directory = Path(root) / split / name
            directory.mkdir(parents=True)
            for i in range(count):
                height, width = rng.integers(40, 73, 2)
                pixels = np.clip(rng.normal(colour, 30, (height, width, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(directory / f"{i}.png")
    return str(root)


def run_script(name, *arguments, expect_failure=False):
    """Run ``examples/<name>`` with this interpreter; returns the finished process (checked)."""
    result = subprocess.run([sys.executable, str(ROOT / "examples" / name), *map(str, arguments)],
                            capture_output=True, text=True, timeout=120, cwd=os.getcwd())
    if expect_failure:
        assert result.returncode != 0, result.stdout
    else:
        assert result.returncode == 0, result.stdout + result.stderr
    return result
