"""Kernel sets: every set has the same names, ops take their kernels from the active set, and a user
swaps one kernel or a whole set with a documented call (no monkeypatching)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minivgg.functional as F
from minivgg import Tensor, kernels, no_grad
from minivgg.models import vgg
from minivgg.optim import SGD

ROOT = Path(__file__).resolve().parents[1]


def public_names(kernel_set):
    return sorted(kernel_set.functions)


def test_every_set_exports_exactly_the_same_names():
    assert public_names(kernels.NUMPY) == public_names(kernels.CUDA) == public_names(kernels.EMULATED) \
        == sorted(kernels.NAMES)


def test_a_set_with_a_missing_or_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match=r"KernelSet 'mine': .*missing \['sgd_update'\], unknown \[\]"):
        kernels.KernelSet("mine", "cpu", **{k: v for k, v in kernels.NUMPY.functions.items() if k != "sgd_update"})
    with pytest.raises(ValueError, match=r"KernelSet.replace: unknown kernel\(s\) \['im2cols'\]"):
        kernels.NUMPY.replace(im2cols=kernels.NUMPY.im2col)
    with pytest.raises(AttributeError, match="kernel set 'numpy' has no kernel 'conv'"):
        kernels.NUMPY.conv
    with pytest.raises(ValueError, match="expected device 'cpu' or 'cuda', got 'tpu'"):
        kernels.NUMPY.on("tpu")


def tiny_training_step():
    """One SGD step of a small VGG-A on random images; returns the loss."""
    model = vgg("A", num_classes=10, in_channels=1, input_size=32, width=1 / 16, init="glorot")
    optimizer = SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((2, 1, 32, 32)).astype(np.float32), rng.integers(0, 10, 2)
    loss = F.softmax_cross_entropy(model(Tensor(x)), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item(), [p.data.copy() for p in model.parameters()]


def counting(name, calls):
    """The NumPy twin ``name``, counting its calls in ``calls[name]``."""
    reference = kernels.NUMPY.functions[name]

    def kernel(*args, **kwargs):
        calls[name] = calls.get(name, 0) + 1
        return reference(*args, **kwargs)
    return kernel


def test_override_reaches_every_op_and_the_optimiser_and_ends_with_the_block():
    calls = {}
    names = ("im2col", "col2im", "bias_grad", "max_pool_forward", "relu_backward", "sgd_update",
             "softmax_cross_entropy_forward", "dropout_forward")
    with kernels.override(**{name: counting(name, calls) for name in names}):
        assert kernels.active("cpu").name.startswith("numpy with")
        loss, _ = tiny_training_step()
    # VGG-A: 8 convolutions (the first needs no col2im, the last two, on 2x2 maps, go to 'taps' and need
    # neither, and the fourth, 16->16 @8x8, runs F(4x4)'s forward, so no im2col), 5 pools, 10 ReLUs,
    # 2 dropouts, 22 parameters
    assert calls == {"im2col": 5, "col2im": 5, "bias_grad": 8, "max_pool_forward": 5, "relu_backward": 10,
                     "sgd_update": 22, "softmax_cross_entropy_forward": 1, "dropout_forward": 2}
    assert kernels.active("cpu") is kernels.NUMPY
    calls.clear()
    tiny_training_step()
    assert calls == {}, "outside the block the reference kernels run again"


def test_a_forward_that_no_backward_follows_pools_without_the_winners_positions():
    model = vgg("A", num_classes=10, in_channels=1, input_size=32, width=1 / 16, init="glorot")
    model.eval()   # dropout off: the two forwards below compute the same thing
    x = Tensor(np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32))
    calls = {}
    with kernels.override(**{name: counting(name, calls) for name in ("max_pool_forward", "max_pool_values")}):
        with no_grad():
            evaluated = model(x).data
        assert calls == {"max_pool_values": 5}
        trained = model(x).data
        assert calls == {"max_pool_values": 5, "max_pool_forward": 5}
    with no_grad():
        evaluated_features = model.features(x).data
    np.testing.assert_array_equal(evaluated_features, model.features(x).data)   # the pools: bit for bit
    # the classifier's evaluation forward may make its products transposed (minivgg/functions/linear.py), which
    # BLAS may sum in another order: float32 rounding of 256-term sums, far below 1e-5 of the output's size
    assert np.abs(evaluated - trained).max() <= 1e-5 * np.abs(trained).max()


def test_override_is_undone_when_the_block_raises():
    with pytest.raises(RuntimeError, match="inside"):
        with kernels.override(relu_forward=kernels.NUMPY.relu_forward):
            raise RuntimeError("inside")
    assert kernels.active("cpu") is kernels.NUMPY


def test_set_default_holds_until_changed():
    try:
        kernels.set_default(kernels.NUMPY.replace(name="mine"))
        assert kernels.active("cpu").name == "mine"
    finally:
        kernels.set_default(kernels.NUMPY)
    with pytest.raises(TypeError, match="set_default: expected a KernelSet, got dict"):
        kernels.set_default({})


def test_the_cuda_set_on_the_emulator_trains_a_whole_network_like_the_numpy_set():
    """The CUDA C of every kernel, run on NumPy arrays through the emulator, in a training step."""
    loss, weights = tiny_training_step()
    with kernels.use(kernels.EMULATED):
        emulated_loss, emulated_weights = tiny_training_step()
    assert abs(emulated_loss - loss) <= 1e-5 * abs(loss)
    for got, want in zip(emulated_weights, weights):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("script, expected", [
    ("custom_numpy_kernel.py", "im2col_windows / reference speed"),
    ("custom_cuda_kernel.py", "10 ReLUs ran the custom kernel"),
])
def test_the_custom_kernel_examples_run(script, expected):
    args = ["--width", "0.0625", "--batch", "4", "--steps", "1"] if script == "custom_numpy_kernel.py" else []
    result = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "differs from the" in result.stdout and "by 0.0" in result.stdout, result.stdout
    assert expected in result.stdout, result.stdout
