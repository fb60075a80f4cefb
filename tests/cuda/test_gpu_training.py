"""Training on a real GPU (skipped with 'no CUDA device' where CuPy sees none).

* ``Tensor.to`` and ``Module.to`` move data to the GPU and back unchanged.
* VGG-A (1/16 width) computes the same forward and backward pass on the GPU
  as on the CPU, dropout included: in float64 to 1e-10; in float32 to 1e-4 on
  the outputs and 1e-3 on the gradients.  The gradients get more room because
  ReLU and max-pool have kinks: a value that rounding moves across one changes
  a gradient by more than rounding.  The small net and batch make that
  unlikely in float32, and float64 rules it out.
* A training step copies nothing between host and device but the batch, its
  labels, and one read (the loss with the predictions).  ``TransferLog``
  counts the copies at CuPy's Python entry points.
"""
import numpy as np
import pytest
from gpu_support import GPU_MARKS

import minivgg.functional as F
from minivgg import Tensor, models
from minivgg.backend import move_array
from minivgg.nn import set_dropout_state
from minivgg.optim import SGD, PlateauSchedule
from minivgg.train import Trainer

pytestmark = GPU_MARKS


@pytest.fixture(scope="module")
def cupy():
    import cupy
    return cupy


def small_vgg_a(in_channels=3, dtype=np.float32):
    """VGG-A at 1/16 width (4 to 32 channels, FC-256) for 32x32 inputs."""
    return models.vgg("A", num_classes=10, in_channels=in_channels, input_size=32, width=1 / 16,
                      init="glorot", seed=1, dtype=dtype)


def batch(n, in_channels=3, dtype=np.float32, seed=0):
    """NumPy inputs on the scale of mean-subtracted pixels, and integer labels."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, in_channels, 32, 32)) * 50).astype(dtype), rng.integers(0, 10, n)


def relative_error(actual, expected):
    """max |actual - expected| over max |expected|."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-300))


def make_trainer(model, device, out_dir):
    optimizer = SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    return Trainer(model, optimizer, PlateauSchedule(optimizer), None, None, out_dir, device=device,
                   seed=7, progress=False)


# ---- moving to the GPU and back ----------------------------------------------------------------

def test_tensor_round_trip(cupy):
    host = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = Tensor(host, requires_grad=True)
    on_gpu = x.to("cuda")
    assert type(on_gpu.data) is cupy.ndarray and on_gpu.device == "cuda:0"
    assert on_gpu.requires_grad and on_gpu.dtype == np.float32 and on_gpu.shape == (3, 4)
    assert x.to("cuda:0").device == "cuda:0"
    back = on_gpu.to("cpu")
    assert type(back.data) is np.ndarray and back.device == "cpu"
    np.testing.assert_array_equal(back.data, host)
    (on_gpu * on_gpu).sum().backward()
    assert type(on_gpu.grad) is cupy.ndarray
    np.testing.assert_array_equal(cupy.asnumpy(on_gpu.grad), 2 * host)


def test_module_round_trip(cupy):
    model = small_vgg_a()
    before = model.state_dict()
    parameters = model.parameters()
    parameters[0].grad = np.ones(parameters[0].shape, dtype=np.float32)
    assert model.to("cuda") is model and model.device == "cuda:0"
    assert all(a is b for a, b in zip(model.parameters(), parameters)), "the Parameters stay the same objects"
    assert all(type(p.data) is cupy.ndarray for p in parameters)
    assert type(parameters[0].grad) is cupy.ndarray
    for name, value in model.state_dict().items():
        assert type(value) is np.ndarray
        np.testing.assert_array_equal(value, before[name])
    model.to("cpu")
    assert model.device == "cpu" and all(type(p.data) is np.ndarray for p in parameters)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


# ---- the GPU computes what the CPU computes ------------------------------------------------------

def forward_backward(model, x, labels):
    """Logits, loss and every parameter's gradient (as NumPy) of one pass in training mode."""
    set_dropout_state(model, seed=2014, step=3, sample_offset=0)
    logits = model(Tensor(x))
    loss = F.softmax_cross_entropy(logits, labels)
    model.zero_grad()
    loss.backward()
    grads = {name: move_array(p.grad, "cpu") for name, p in model.named_parameters()}
    return logits.numpy(), loss.item(), grads


@pytest.mark.parametrize("dtype, output_tolerance, grad_tolerance", [
    (np.float32, 1e-4, 1e-3),
    (np.float64, 1e-10, 1e-10),
])
def test_vgg_a_forward_and_backward_match_the_cpu(cupy, dtype, output_tolerance, grad_tolerance):
    x, labels = batch(4, dtype=dtype)
    cpu_logits, cpu_loss, cpu_grads = forward_backward(small_vgg_a(dtype=dtype), x, labels)
    gpu_logits, gpu_loss, gpu_grads = forward_backward(small_vgg_a(dtype=dtype).to("cuda"),
                                                       move_array(x, "cuda"), labels)
    assert relative_error(gpu_logits, cpu_logits) <= output_tolerance
    assert abs(gpu_loss - cpu_loss) <= output_tolerance * abs(cpu_loss)
    assert gpu_grads.keys() == cpu_grads.keys()
    errors = {name: relative_error(gpu_grads[name], grad) for name, grad in cpu_grads.items()}
    assert max(errors.values()) <= grad_tolerance, errors


def test_three_training_steps_follow_the_cpu(cupy, tmp_path):
    cpu = make_trainer(small_vgg_a(in_channels=1), "cpu", tmp_path / "cpu")
    gpu = make_trainer(small_vgg_a(in_channels=1).to("cuda"), "cuda", tmp_path / "gpu")
    for step in range(3):
        x, labels = batch(8, in_channels=1, seed=step)
        cpu_loss, _ = cpu.train_step(x, labels)
        gpu_loss, _ = gpu.train_step(x, labels)
        assert abs(gpu_loss - cpu_loss) <= 1e-4 * abs(cpu_loss), step
    weights = {name: move_array(p.data, "cpu") for name, p in gpu.model.named_parameters()}
    errors = {name: relative_error(weights[name], p.data) for name, p in cpu.model.named_parameters()}
    assert max(errors.values()) <= 1e-3, errors


# ---- a training step stays on the device ----------------------------------------------------------

class TransferLog:
    """Records host<->device copies made through CuPy's Python entry points while installed.

    Uploads: ``cupy.asarray``, ``cupy.array`` and ``cupy.ascontiguousarray`` of
    anything that is not already a CuPy array, and ``ndarray.set``.  Downloads:
    ``ndarray.get`` and everything else that reads values back (``cupy.asnumpy``,
    ``item``, ``tolist``, ``int()``, ``float()``, ``bool()``, ...).  A call made
    inside another recorded call (``asnumpy`` calls ``get``) is not recorded again.
    Each record is (entry point, shape of the data copied).
    """

    UPLOADS = ("asarray", "array", "ascontiguousarray")
    DOWNLOADS = ("get", "item", "tolist", "__int__", "__float__", "__complex__", "__bool__", "__index__",
                 "__array__", "__format__", "__repr__", "__str__")

    def __init__(self, cupy, monkeypatch):
        self.uploads, self.downloads, self.depth = [], [], 0
        on_host = lambda value: not isinstance(value, cupy.ndarray)  # noqa: E731
        for name in self.UPLOADS:
            monkeypatch.setattr(cupy, name, self.recorder(getattr(cupy, name), f"cupy.{name}", self.uploads,
                                                          source=lambda args: args[0], when=on_host))
        monkeypatch.setattr(cupy.ndarray, "set", self.recorder(cupy.ndarray.set, "ndarray.set", self.uploads,
                                                               source=lambda args: args[1]))
        monkeypatch.setattr(cupy, "asnumpy", self.recorder(cupy.asnumpy, "cupy.asnumpy", self.downloads,
                                                           source=lambda args: args[0],
                                                           when=lambda value: not on_host(value)))
        for name in self.DOWNLOADS:
            if hasattr(cupy.ndarray, name):
                monkeypatch.setattr(cupy.ndarray, name, self.recorder(getattr(cupy.ndarray, name),
                                                                      f"ndarray.{name}", self.downloads,
                                                                      source=lambda args: args[0]))

    def recorder(self, original, entry, records, source, when=lambda value: True):
        """``original``, recording (entry, shape) in ``records`` when ``when(source(args))`` holds."""
        def recorded(*args, **kwargs):
            if self.depth == 0 and when(source(args)):
                records.append((entry, np.shape(source(args))))
            self.depth += 1
            try:
                return original(*args, **kwargs)
            finally:
                self.depth -= 1
        return recorded


def test_the_transfer_log_sees_every_kind_of_copy(cupy):
    on_device = cupy.arange(3, dtype=cupy.float32)
    scalar = cupy.ones((), dtype=cupy.float32)
    with pytest.MonkeyPatch.context() as patch:
        log = TransferLog(cupy, patch)
        cupy.asarray(np.zeros(5))
        cupy.asarray(on_device)  # already on the device: no copy
        on_device.set(np.zeros(3, dtype=np.float32))
        on_device.get()
        cupy.asnumpy(on_device)
        int(scalar), float(scalar), bool(scalar), scalar.item(), on_device.tolist()
    assert log.uploads == [("cupy.asarray", (5,)), ("ndarray.set", (3,))]
    assert [entry for entry, _ in log.downloads] == ["ndarray.get", "cupy.asnumpy", "ndarray.__int__",
                                                     "ndarray.__float__", "ndarray.__bool__", "ndarray.item",
                                                     "ndarray.tolist"]


def test_a_training_step_copies_only_the_batch_the_labels_and_one_read(cupy, tmp_path):
    trainer = make_trainer(small_vgg_a(in_channels=1).to("cuda"), "cuda", tmp_path)
    x, labels = batch(8, in_channels=1)
    trainer.train_step(x, labels)  # warm-up: compiles the kernels and creates the velocities
    with pytest.MonkeyPatch.context() as patch:
        log = TransferLog(cupy, patch)
        loss, correct = trainer.train_step(x, labels)
    assert sorted(shape for _, shape in log.uploads) == sorted([x.shape, labels.shape]), log.uploads
    assert log.downloads == [("ndarray.get", (1 + len(labels),))], log.downloads
    assert np.isfinite(loss) and 0 <= correct <= len(labels)
    parameters = trainer.model.parameters()
    arrays = [p.data for p in parameters] + [p.grad for p in parameters] + trainer.optimizer.velocities
    assert all(type(a) is cupy.ndarray and a.device.id == 0 for a in arrays)
