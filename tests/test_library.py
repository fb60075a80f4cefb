"""The package reads like a library: ``import minivgg`` reaches every floor, loading the upper ones lazily."""
import subprocess
import sys

import pytest

import minivgg
from minivgg import autograd

UPPER = ("data", "evaluate", "models", "optim", "parallel", "train")


def run_python(code):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_minivgg_loads_no_upper_floor_until_it_is_used():
    code = ("import sys, minivgg\n"
            f"print(sorted(m for m in {UPPER!r} if 'minivgg.' + m in sys.modules))\n"
            "net = minivgg.models.vgg('A', num_classes=10, in_channels=1, input_size=32, width=0.0625)\n"
            "print(type(net).__name__, 'minivgg.models' in sys.modules, 'minivgg.train' in sys.modules)")
    assert run_python(code).splitlines() == ["[]", "VGG True False"]


@pytest.mark.parametrize("name", UPPER + ("kernels", "backend", "functional", "nn"))
def test_every_floor_is_an_attribute_of_the_package(name):
    module = getattr(minivgg, name)
    assert module.__name__ == f"minivgg.{name}" and name in dir(minivgg) and name in minivgg.__all__


def test_function_is_exported_and_an_unknown_name_is_a_clear_error():
    assert minivgg.Function is autograd.Function
    with pytest.raises(AttributeError, match=r"module 'minivgg' has no attribute 'vgg16'"):
        minivgg.vgg16
