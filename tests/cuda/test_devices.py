"""Bad device requests and mixed devices fail with errors that say what is wrong and how to fix it.

Runs without a GPU: a stand-in ``cupy`` module (put in ``sys.modules``)
plays a machine with N CUDA devices, or one whose driver is missing, and a
stand-in array plays an array on a GPU.  The last tests repeat the mixed
devices with real CuPy arrays (GPU-marked).
"""
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from gpu_support import gpu_test

import minivgg.functional as F
from minivgg import Tensor, nn
from minivgg.kernels import launch

NOT_INSTALLED = r"the 'cuda' device needs CuPy, which is not installed; install it with: pip install cupy-cuda13x"
NO_DEVICE = r"CuPy is installed but finds no usable CUDA device"


def tensor(*shape):
    return Tensor(np.zeros(shape, dtype=np.float32))


def layer():
    return nn.Linear(3, 2)


def install_fake_cupy(monkeypatch, device_count):
    """A stand-in ``cupy`` whose runtime reports ``device_count`` devices, or raises it if it is an exception."""
    def get_device_count():
        if isinstance(device_count, Exception):
            raise device_count
        return device_count
    runtime = SimpleNamespace(getDeviceCount=get_device_count)
    monkeypatch.setitem(sys.modules, "cupy", SimpleNamespace(cuda=SimpleNamespace(runtime=runtime)))


def real_device_count():
    """CUDA devices that the installed CuPy sees (0 without a driver); skips where CuPy is missing."""
    try:
        import cupy
    except ImportError:
        pytest.skip("CuPy is not installed")
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except RuntimeError:
        return 0


class ArrayOnGpu:
    """Stands in for a CuPy array on GPU ``index``: the metadata that the device checks read."""

    def __init__(self, like, index=0):
        self.shape, self.ndim, self.size, self.dtype = like.shape, like.ndim, like.size, like.dtype
        self.device = SimpleNamespace(id=index)


def on_gpu(x, index=0):
    """Tensor ``x`` (or every parameter of a Module), relabelled as living on GPU ``index``."""
    for t in x.parameters() if isinstance(x, nn.Module) else [x]:
        t.data = ArrayOnGpu(t.data, index)
    return x


# ---- device names that do not exist -------------------------------------------------------------

@pytest.mark.parametrize("device", ["tpu", "cuda:x", "cuda:", "CUDA", "cuda:-1", "cuda:²", "gpu", "cpu:", "cpu:0", ""])
@pytest.mark.parametrize("move", [lambda d: tensor(2).to(d), lambda d: layer().to(d)], ids=["tensor", "module"])
def test_a_malformed_device_name_is_refused(move, device):
    expected = rf"^device: expected 'cpu', 'cuda' or 'cuda:<index>', got '{device}'$"
    with pytest.raises(ValueError, match=expected):
        move(device)


def test_a_device_that_is_not_a_string_is_refused():
    with pytest.raises(TypeError, match=r"^device: expected a string such as 'cpu' or 'cuda:0', got 0$"):
        tensor(2).to(0)


@pytest.mark.parametrize("count", [1, 2])
def test_a_gpu_index_beyond_the_machine_names_the_valid_ones(monkeypatch, count):
    x, model = tensor(2), layer()
    install_fake_cupy(monkeypatch, count)
    expected = (rf"^to\('cuda:7'\): no such device; this machine has {count} CUDA device\(s\), "
                rf"'cuda:0' to 'cuda:{count - 1}'$")
    with pytest.raises(ValueError, match=expected):
        x.to("cuda:7")
    with pytest.raises(ValueError, match=expected):
        model.to("cuda:7")
    assert all(isinstance(p.data, np.ndarray) for p in model.parameters()), "a failed move leaves the model"


# ---- CuPy missing, or no usable GPU ----------------------------------------------------------------

@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cupy_says_how_to_install_it(monkeypatch, device):
    x, model = tensor(2), layer()
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` now raises ImportError
    with pytest.raises(RuntimeError, match=rf"^to\('{device}'\): {NOT_INSTALLED}$"):
        x.to(device)
    with pytest.raises(RuntimeError, match=NOT_INSTALLED):
        model.to(device)
    assert model.device == "cpu"


def test_the_cuda_kernels_without_cupy_say_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(ImportError, match=r"cupy is not installed; pip install cupy-cuda13x"):
        launch.require_cupy()


@pytest.mark.parametrize("driver", [
    RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version"),
    RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected"),
    0,  # a driver that reports no device
], ids=["old-driver", "no-device-error", "zero-devices"])
def test_cupy_without_a_usable_gpu_says_so(monkeypatch, driver):
    x, model = tensor(2), layer()
    install_fake_cupy(monkeypatch, driver)
    reason = rf" \({driver}\)" if isinstance(driver, Exception) else ""
    expected = rf"^to\('cuda'\): {NO_DEVICE}{reason}; this needs an NVIDIA GPU with its driver \(check nvidia-smi\)"
    with pytest.raises(RuntimeError, match=expected):
        x.to("cuda")
    with pytest.raises(RuntimeError, match=expected):
        model.to("cuda")


def test_this_machine_without_a_gpu(monkeypatch):
    """The real CuPy on a machine without a usable GPU (skipped where CuPy is missing or a GPU is present)."""
    if real_device_count():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(RuntimeError, match=rf"^to\('cuda'\): {NO_DEVICE} \(.+\); .*or use device 'cpu'$"):
        tensor(2).to("cuda")


# ---- arrays on different devices in one operation ---------------------------------------------------

@pytest.mark.parametrize("op, name, inputs", [
    (lambda a, b: a + b, "add", lambda: (tensor(2, 3), on_gpu(tensor(2, 3)))),
    (lambda a, b: a @ b, "MatMul", lambda: (on_gpu(tensor(2, 3)), tensor(3, 4))),
    (F.linear, "linear", lambda: (tensor(5, 3), on_gpu(tensor(2, 3)))),
    (F.conv2d, "conv2d", lambda: (tensor(1, 3, 5, 5), on_gpu(tensor(4, 3, 3, 3)))),
])
def test_an_op_on_two_devices_names_itself_and_the_devices(op, name, inputs):
    with pytest.raises(TypeError, match=rf"^{name}: all inputs must be on the same device, got \['cpu', 'cuda:0'\]$"):
        op(*inputs())


def test_a_model_on_the_gpu_given_a_batch_on_the_cpu():
    model = on_gpu(nn.Conv2d(3, 4, 3, padding=1))
    with pytest.raises(TypeError, match=r"^conv2d: all inputs must be on the same device, got \['cpu', 'cuda:0'\]$"):
        model(tensor(1, 3, 5, 5))


def test_two_gpus_in_one_op():
    with pytest.raises(TypeError, match=r"^add: all inputs must be on the same device, got \['cuda:0', 'cuda:1'\]$"):
        on_gpu(tensor(2), 0) + on_gpu(tensor(2), 1)


@gpu_test
def test_real_arrays_on_two_devices_in_one_op():
    with pytest.raises(TypeError, match=r"^add: all inputs must be on the same device, got \['cpu', 'cuda:0'\]$"):
        tensor(2) + tensor(2).to("cuda")


@gpu_test
def test_labels_on_the_gpu_for_logits_on_the_cpu():
    labels = Tensor(np.array([0, 1])).to("cuda")
    with pytest.raises(TypeError, match=r"^softmax_cross_entropy: the logits are on cpu but the labels on cuda:0$"):
        F.softmax_cross_entropy(tensor(2, 3), labels)


@gpu_test
def test_labels_on_the_host_or_on_the_device_of_the_logits_give_one_loss():
    logits = Tensor(np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=np.float32))
    expected = F.softmax_cross_entropy(logits, np.array([1, 2])).item()
    on_gpu = logits.to("cuda")
    for labels in (np.array([1, 2]), Tensor(np.array([1, 2])).to("cuda")):
        assert F.softmax_cross_entropy(on_gpu, labels).item() == pytest.approx(expected, rel=1e-6)
    out_of_range = Tensor(np.array([1, 3])).to("cuda")
    with pytest.raises(ValueError, match=r"^softmax_cross_entropy: labels must lie in \[0, 3\), got values from 1 to"):
        F.softmax_cross_entropy(on_gpu, out_of_range)
