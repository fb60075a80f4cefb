"""Floor 3: Module (registration, parameters, modes, state dicts, save/load) and the layers."""
import os

import numpy as np
import pytest

from minivgg import Tensor
from minivgg import functional as F
from minivgg.nn import (Conv2d, Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2d, Module, Parameter, ReLU,
                        Sequential, set_dropout_state)


class Net(Module):
    """A small network with a parameter of its own, a child layer and a nested Sequential."""

    def __init__(self, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.scale = Parameter(np.ones(1, np.float32))
        self.conv = Conv2d(1, 2, 3, padding=1, rng=rng)
        self.pool = MaxPool2d(2)
        self.head = Sequential(Flatten(), ReLU(), Dropout(0.5), Linear(2 * 2 * 2, 3, rng=rng))

    def forward(self, x):
        return self.head(self.pool(self.conv(x)) * self.scale)


NET_PARAMETERS = ["scale", "conv.weight", "conv.bias", "head.3.weight", "head.3.bias"]


def net_input(seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal((2, 1, 4, 4)).astype(np.float32))


# --- registration and parameters -------------------------------------------------


def test_parameters_and_modules_are_registered_in_assignment_order():
    net = Net()
    assert [name for name, _ in net.named_parameters()] == NET_PARAMETERS
    assert net.parameters() == [p for _, p in net.named_parameters()]
    assert all(isinstance(p, Parameter) and p.requires_grad for p in net.parameters())
    assert list(net._modules) == ["conv", "pool", "head"]
    assert [name for name, _ in net.named_modules()] == ["", "conv", "pool", "head", "head.0", "head.1",
                                                         "head.2", "head.3"]
    assert net.num_parameters() == 1 + (2 * 9 + 2) + (8 * 3 + 3)
    assert len(net.head) == 4 and isinstance(net.head[3], Linear)


def test_reassigning_an_attribute_replaces_or_unregisters_it():
    net = Net()
    net.scale = None  # no longer a parameter
    assert "scale" not in dict(net.named_parameters())
    net.conv = Conv2d(1, 4, 1)  # replaced in place: the order of registration is kept
    assert [n for n, _ in net.named_parameters()][:2] == ["conv.weight", "conv.bias"]
    assert net.conv.weight.shape == (4, 1, 1, 1)
    net.plain = 3  # neither a Module nor a Parameter: not registered
    assert "plain" not in net._modules and "plain" not in net._parameters


def test_replacing_a_sequential_layer_keeps_its_place_in_the_forward_order():
    model = Sequential(Linear(2, 3), ReLU(), Linear(3, 4))
    setattr(model, "0", Linear(2, 3, bias=False))
    assert list(model._modules) == ["0", "1", "2"]
    assert model(Tensor(np.ones((1, 2), np.float32))).shape == (1, 4)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "2.weight", "2.bias"]


def test_sequential_indexing_slicing_and_item_assignment():
    first, relu, last = Linear(2, 3), ReLU(), Linear(3, 4)
    model = Sequential(first, relu, last)
    assert model[0] is first and model[-1] is last
    head = model[1:]
    assert isinstance(head, Sequential) and list(head) == [relu, last]
    replacement = Linear(3, 4, bias=False)
    model[-1] = replacement
    assert list(model) == [first, relu, replacement] and list(model._modules) == ["0", "1", "2"]
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight"]
    assert model(Tensor(np.ones((1, 2), np.float32))).shape == (1, 4)
    with pytest.raises(IndexError, match=r"Sequential: expected an integer index in -3\.\.2 or a slice, got 3"):
        model[3] = ReLU()
    with pytest.raises(IndexError, match=r"got '0'"):
        model["0"]
    with pytest.raises(TypeError, match=r"Sequential: a layer must be a Module, got function"):
        model[0] = F.relu


def test_every_module_has_a_readable_repr():
    class Scale(Module):
        def __init__(self):
            super().__init__()
            self.gain = Parameter(np.ones(4, np.float32))

        def forward(self, x):
            return x * self.gain

    assert repr(Scale()) == "Scale(gain=(4,))"
    assert repr(Net()) == (
        "Net(\n"
        "  scale=(1,)\n"
        "  (conv): Conv2d(1, 2, kernel_size=3, stride=1, padding=1)\n"
        "  (pool): MaxPool2d(kernel_size=2, stride=2)\n"
        "  (head): Sequential(\n"
        "    (0): Flatten()\n"
        "    (1): ReLU()\n"
        "    (2): Dropout(p=0.5, layer=0)\n"
        "    (3): Linear(8, 3)\n"
        "  )\n"
        ")")


def test_layer_without_bias_has_no_bias_parameter():
    layer = Conv2d(2, 3, 3, bias=False)
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    assert Linear(2, 3, bias=False).num_parameters() == 6


def test_assigning_before_super_init_is_a_clear_error():
    class Broken(Module):
        def __init__(self):
            self.layer = Linear(1, 1)

    with pytest.raises(RuntimeError, match=r"Broken: call super\(\)\.__init__\(\)"):
        Broken()


# --- modes ---------------------------------------------------------------------------


def test_train_and_eval_propagate_to_every_descendant():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    assert net.train() is net
    assert all(m.training for m in net.modules())
    net.train(False)
    assert not any(m.training for m in net.modules())


def test_dropout_is_identity_in_eval_mode():
    layer = Dropout(0.5).eval()
    x = Tensor(np.random.default_rng(0).standard_normal((3, 50)).astype(np.float32))
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    net = Net().eval()  # a whole network in eval mode is deterministic whatever the dropout state
    first = net(net_input()).numpy()
    set_dropout_state(net, seed=123, step=7, sample_offset=11)
    np.testing.assert_array_equal(net(net_input()).numpy(), first)


def test_dropout_in_training_mode_drops_and_rescales():
    x = Tensor(np.ones((4, 1000), np.float32))
    y = Dropout(0.5).train()(x).numpy()
    assert set(np.unique(y)) == {0.0, 2.0}
    assert 0.4 < (y == 0).mean() < 0.6


def test_set_dropout_state_changes_the_mask():
    model = Sequential(Dropout(0.5, layer=0), Dropout(0.5, layer=1))
    x = Tensor(np.ones((2, 500), np.float32))
    base = model(x).numpy()
    np.testing.assert_array_equal(model(x).numpy(), base)  # same state: same mask
    masks = []
    for state in ({"seed": 1}, {"step": 1}, {"sample_offset": 1}):
        set_dropout_state(model, **{"seed": 0, "step": 0, "sample_offset": 0, **state})
        masks.append(model(x).numpy())
        assert all(getattr(m, key) == value for m in model for key, value in state.items())
        assert not np.array_equal(masks[-1], base), state
    set_dropout_state(model, seed=0, step=0, sample_offset=0)
    np.testing.assert_array_equal(model(x).numpy(), base)  # back to the first state: the first mask
    set_dropout_state(model, step=5)  # None leaves a key as it is
    assert [(m.seed, m.step, m.sample_offset) for m in model] == [(0, 5, 0), (0, 5, 0)]


def test_sample_offset_shifts_the_mask_along_the_batch():
    """A shard starting at global sample 2 draws the coins the whole batch drew for its samples 2 and 3."""
    x = Tensor(np.ones((4, 300), np.float32))
    whole = Dropout(0.5)(x).numpy()
    shard = Dropout(0.5)
    set_dropout_state(shard, sample_offset=2)
    np.testing.assert_array_equal(shard(Tensor(np.ones((2, 300), np.float32))).numpy(), whole[2:])


# --- gradients ---------------------------------------------------------------------


def test_zero_grad_clears_every_gradient():
    net = Net().eval()
    F.softmax_cross_entropy(net(net_input()), np.array([0, 2])).backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


# --- state dicts, save and load --------------------------------------------------------


def test_state_dict_is_ordered_plain_numpy_copies():
    net = Net()
    state = net.state_dict()
    assert list(state) == NET_PARAMETERS
    for name, parameter in net.named_parameters():
        assert type(state[name]) is np.ndarray
        np.testing.assert_array_equal(state[name], parameter.numpy())
        assert not np.shares_memory(state[name], parameter.data)
    state["conv.weight"][...] = 42.0  # editing the copy leaves the model alone ...
    assert not np.any(net.conv.weight.numpy() == 42.0)
    net.conv.weight.data[...] = -1.0  # ... and the other way round
    assert not np.any(state["conv.weight"] == -1.0)


def test_load_state_dict_round_trip():
    source, target = Net(seed=1), Net(seed=2)
    assert not np.array_equal(source.conv.weight.numpy(), target.conv.weight.numpy())
    state = source.state_dict()
    assert target.load_state_dict(state) is target
    for name, parameter in target.named_parameters():
        np.testing.assert_array_equal(parameter.numpy(), state[name])
        assert not np.shares_memory(parameter.data, state[name])  # copied in, not aliased
        assert parameter.dtype == np.float32
    np.testing.assert_array_equal(target.eval()(net_input()).numpy(), source.eval()(net_input()).numpy())


def test_load_state_dict_casts_to_the_parameter_dtype():
    net = Net()
    state = {name: value.astype(np.float64) for name, value in Net(seed=5).state_dict().items()}
    net.load_state_dict(state)
    assert all(p.dtype == np.float32 for p in net.parameters())


def test_load_state_dict_names_missing_and_unexpected_keys():
    net = Net()
    state = net.state_dict()
    del state["conv.bias"]
    state["conv.extra"] = np.zeros(2, np.float32)
    with pytest.raises(KeyError, match=r"Net.*missing keys \['conv.bias'\].*unexpected keys \['conv.extra'\]"):
        net.load_state_dict(state)


def test_load_state_dict_names_mis_shaped_keys_and_leaves_the_model_unchanged():
    net = Net(seed=0)
    before = net.state_dict()
    state = Net(seed=1).state_dict()
    state["head.3.weight"] = np.zeros((3, 9), np.float32)
    with pytest.raises(ValueError, match=r"head\.3\.weight has shape \(3, 9\) in the state dict but \(3, 8\)"):
        net.load_state_dict(state)
    for name, value in net.state_dict().items():  # nothing was half-loaded
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_save_and_load_npz_round_trip(tmp_path):
    path = tmp_path / "weights.npz"
    source, target = Net(seed=1), Net(seed=2)
    source.save(path)
    with np.load(path) as arrays:
        assert sorted(arrays.files) == sorted(NET_PARAMETERS)
    assert target.load(path) is target
    for (name, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert os.listdir(tmp_path) == ["weights.npz"]  # no temporary file left behind
    Net(seed=3).save(str(path))  # a str path works too, and overwrites
    np.testing.assert_array_equal(target.load(str(path)).conv.weight.numpy(), Net(seed=3).conv.weight.numpy())


def test_save_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "weights.npz"
    first = Net(seed=1)
    first.save(path)
    original = path.read_bytes()

    def failing_savez(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        Net(seed=2).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == original  # the previous file is intact ...
    loaded = Net(seed=3).load(path)  # ... and loadable
    np.testing.assert_array_equal(loaded.conv.weight.numpy(), first.conv.weight.numpy())
    assert os.listdir(tmp_path) == ["weights.npz"]  # and the half-written temporary file is gone


# --- layers: shapes and FLOPs ----------------------------------------------------------


def test_layer_output_shapes_agree_with_forward():
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32))
    model = Sequential(Conv2d(3, 4, 3, padding=1), ReLU(), LocalResponseNorm(), MaxPool2d(2), Conv2d(4, 5, 1),
                       Flatten(), Linear(5 * 16, 6), Dropout())
    assert model.output_shape(x.shape) == model(x).shape == (2, 6)


def test_layer_flops_count_a_multiply_add_as_two():
    assert Conv2d(3, 4, 3, padding=1).flops((2, 3, 8, 8)) == 2 * 2 * 8 * 8 * 4 * 3 * 9
    assert Linear(10, 7).flops((5, 10)) == 2 * 5 * 10 * 7
    assert ReLU().flops((2, 3)) == MaxPool2d(2).flops((1, 1, 4, 4)) == 0
