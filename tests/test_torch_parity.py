"""PyTorch as an independent oracle: the same VGG built from plain torch.nn, the same weights in,
the same logits and the same gradient of every parameter out.

The torch network is written here, from torchvision's ``cfgs`` layout (``features`` then
``classifier``, without the adaptive average pool, which is the identity at 224 and would upsample
at 32), so its state-dict keys are torchvision's.  Both sides run in eval mode: the two libraries'
dropout masks differ, so dropout is compared nowhere here.  Relative error is
max|ours - torch| / max|torch|, per tensor.
"""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is an optional test dependency (pip install torch==2.13.0)")
nn = torch.nn

from minivgg import Tensor  # noqa: E402
from minivgg import functional as F  # noqa: E402
from minivgg.models import VGG, load_torchvision_state_dict  # noqa: E402
from minivgg.nn import MaxPool2d, ReLU  # noqa: E402

# torchvision's cfgs: conv widths and 'M' for a max-pool; 'LRN' marks net A-LRN's normalisation
CFGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}
TOLERANCE = 1e-4
MEASURED = {}  # name -> (logits error, worst gradient error, its parameter): printed with pytest -s


class TorchVGG(nn.Module):
    def __init__(self, config, num_classes, input_size, width):
        super().__init__()
        layers, channels = [], 3
        for item in CFGS[config]:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            elif item == "LRN":
                # torch divides alpha by size; the paper's (and minivgg's) alpha=1e-4 does not
                layers.append(nn.LocalResponseNorm(5, alpha=1e-4 * 5, beta=0.75, k=2.0))
            else:
                out = max(1, round(item * width))
                layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU()]
                channels = out
        fc, side = max(1, round(4096 * width)), input_size // 32
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(channels * side * side, fc), nn.ReLU(), nn.Dropout(0.5),
                                        nn.Linear(fc, fc), nn.ReLU(), nn.Dropout(0.5), nn.Linear(fc, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def torch_vgg(config, num_classes, input_size, width):
    """Built on the meta device: no time spent on torch's own initialisation (weights are loaded)."""
    with torch.device("meta"):
        return TorchVGG(config, num_classes, input_size, width)


def random_weights(shapes, seed):
    """He-uniform weights (activations keep their scale through the ReLUs) and small non-zero biases."""
    rng, state = np.random.default_rng(seed), {}
    for name, shape in shapes.items():
        values = rng.random(shape, dtype=np.float32)
        values -= 0.5
        if name.endswith("weight"):
            values *= 2 * np.sqrt(6.0 / int(np.prod(shape[1:])))
        else:
            values *= 0.2
        state[name] = values
    return state


def relative_error(ours, reference):
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def pool_winners(x):
    """Each 2x2 window's winner (0..3, the first on a tie) and its value, of an NCHW array."""
    n, c, h, w = x.shape
    windows = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    winner = windows.argmax(axis=-1)
    return windows, winner


NEAR_TIE = 1e-5   # of the largest input of the layer: where float32 rounding may decide the outcome


def count_near_ties(ours_inputs, torch_inputs):
    """Max-pool windows and ReLUs where the two libraries decide differently; each must be a near-tie.

    Where two inputs of a max-pool window are equal up to float32 rounding, the rounding decides which
    one wins, and the gradient then flows to a different pixel: both answers are right to float32
    precision, yet they differ by a whole pixel's contribution (about 1e-3 of the largest gradient
    of the layers below, measured on VGG-A at 224).  A ReLU input that is zero up to rounding is the
    same: the rounding decides whether its gradient passes (one such flip after VGG-D's 128->256
    convolution, with Winograd F(4x4, 3x3)'s rounding, moved the gradients below by 0.5-2%).  Such
    an input cannot be compared at 1e-4, so ``compare`` draws another; every disagreement is checked
    to be a genuine near-tie, not a bug.
    """
    assert len(ours_inputs["pool"]) == len(torch_inputs["pool"]) == 5
    assert len(ours_inputs["relu"]) == len(torch_inputs["relu"]) > 0
    flips = 0
    for ours_x, torch_x in zip(ours_inputs["pool"], torch_inputs["pool"]):
        ours_windows, ours_winner = pool_winners(ours_x)
        torch_windows, torch_winner = pool_winners(torch_x)
        positive = (ours_windows.max(-1) > 0) | (torch_windows.max(-1) > 0)  # ties at 0 are cut by the ReLU
        differ = (ours_winner != torch_winner) & positive
        if differ.any():
            values = torch_windows[differ]
            gap = np.abs(np.take_along_axis(values, ours_winner[differ][:, None], 1) -
                         np.take_along_axis(values, torch_winner[differ][:, None], 1))
            assert gap.max() <= NEAR_TIE * np.abs(torch_x).max(), "max-pool winners differ beyond a near-tie"
            flips += int(differ.sum())
    for ours_x, torch_x in zip(ours_inputs["relu"], torch_inputs["relu"]):
        differ = (ours_x > 0) != (torch_x > 0)
        if differ.any():
            assert np.abs(torch_x[differ]).max() <= NEAR_TIE * np.abs(torch_x).max(), \
                "ReLUs differ beyond a near-tie at zero"
            flips += int(differ.sum())
    return flips


def record_decisions(ours, reference):
    """Wrap both models' max-pools and ReLUs (features and classifier) so that each forward pass
    records their inputs, by kind: {'pool': [...], 'relu': [...]} for each library."""
    ours_inputs, torch_inputs = {"pool": [], "relu": []}, {"pool": [], "relu": []}
    for layer in [*ours.features, *ours.classifier]:
        kind = "pool" if isinstance(layer, MaxPool2d) else "relu" if isinstance(layer, ReLU) else None
        if kind:
            layer.forward = lambda x, forward=layer.forward, kind=kind: (ours_inputs[kind].append(x.numpy()),
                                                                          forward(x))[1]
    for layer in [*reference.features, *reference.classifier]:
        kind = "pool" if isinstance(layer, nn.MaxPool2d) else "relu" if isinstance(layer, nn.ReLU) else None
        if kind:
            layer.register_forward_hook(lambda module, args, out, kind=kind:
                                        torch_inputs[kind].append(args[0].detach().numpy()))
    return ours_inputs, torch_inputs


def compare(config, batch, input_size, width, num_classes, via_torchvision_loader=False, seed=0, tries=8):
    ours = VGG(config, num_classes=num_classes, input_size=input_size, width=width)
    reference = torch_vgg(config, num_classes, input_size, width)
    ours_keys = [name for name, _ in ours.named_parameters()]
    assert ours_keys == list(reference.state_dict())  # the same names, in the same order
    state = random_weights({name: p.shape for name, p in ours.named_parameters()}, seed)
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True, assign=True)
    if via_torchvision_loader:
        load_torchvision_state_dict(ours, reference.state_dict())
    else:
        ours.load_state_dict(state)
    del state
    ours.eval(), reference.eval()
    ours_inputs, torch_inputs = record_decisions(ours, reference)

    skipped = 0
    for input_seed in range(seed + 1, seed + 1 + tries):
        rng = np.random.default_rng(input_seed)
        x = rng.standard_normal((batch, 3, input_size, input_size)).astype(np.float32)
        labels = rng.integers(0, num_classes, batch)
        for recorded in (*ours_inputs.values(), *torch_inputs.values()):
            recorded.clear()
        logits = ours(Tensor(x))
        torch_logits = reference(torch.from_numpy(x))
        logits_error = relative_error(logits.numpy(), torch_logits.detach().numpy())
        assert logits_error <= TOLERANCE, f"logits differ: relative error {logits_error:.2e}"
        flips = count_near_ties(ours_inputs, torch_inputs)
        if flips == 0:
            break
        skipped += flips
    else:
        pytest.fail(f"every one of {tries} inputs had a max-pool or ReLU near-tie decided differently by the "
                    f"two libraries")
    loss = F.softmax_cross_entropy(logits, labels)
    loss.backward()
    torch_loss = nn.functional.cross_entropy(torch_logits, torch.from_numpy(labels))
    torch_loss.backward()

    expected_logits = torch_logits.detach().numpy()
    assert np.abs(expected_logits).max() > 0.1  # a meaningful signal reached the logits
    errors = {"logits": relative_error(logits.numpy(), expected_logits),
              "loss": relative_error(np.array(loss.item()), np.array(torch_loss.item()))}
    torch_parameters = dict(reference.named_parameters())
    for name, parameter in ours.named_parameters():
        expected = torch_parameters[name].grad.numpy()
        assert parameter.grad is not None and parameter.grad.shape == expected.shape, name
        assert np.abs(expected).max() > 0, name
        errors[name] = relative_error(parameter.grad, expected)
    worst = max((e, n) for n, e in errors.items() if n not in ("logits", "loss"))
    MEASURED[f"{config} {input_size}x{input_size} batch {batch} width {width}"] = (errors["logits"], *worst)
    print(f"\nparity {config} {input_size}x{input_size} batch {batch} width {width} (input seed {input_seed}, "
          f"{input_seed - seed - 1} inputs with {skipped} near-tie flips skipped): logits {errors['logits']:.2e}, "
          f"loss {errors['loss']:.2e}, worst gradient {worst[0]:.2e} ({worst[1]})")
    bad = {name: error for name, error in errors.items() if not error <= TOLERANCE}
    assert not bad, f"relative errors above {TOLERANCE}: {bad}"


@pytest.mark.parametrize("config", ["A", "D", "A-LRN"])
def test_parity_at_32x32_full_width(config):
    compare(config, batch=4, input_size=32, width=1.0, num_classes=10)


def test_parity_of_vgg_a_at_224x224():
    """The real network A, 1000 classes, weights passed through the torchvision loader."""
    compare("A", batch=1, input_size=224, width=1.0, num_classes=1000, via_torchvision_loader=True)


# --- load_torchvision_state_dict -------------------------------------------------------------


def small_torch_model(config="A", seed=0):
    model = torch_vgg(config, 10, 32, 0.25)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    model.load_state_dict({k: torch.from_numpy(v) for k, v in random_weights(shapes, seed).items()}, assign=True)
    return model.eval()


def assert_loaded(ours, reference):
    state = reference.state_dict()
    for name, parameter in ours.named_parameters():
        np.testing.assert_array_equal(parameter.numpy(), state[name].numpy(), err_msg=name)
    x = np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    assert relative_error(ours.eval()(Tensor(x)).numpy(), expected) <= TOLERANCE


@pytest.mark.parametrize("config", ["A", "D"])
def test_load_torchvision_state_dict_from_a_dict(config):
    reference = small_torch_model(config)
    ours = VGG(config, num_classes=10, input_size=32, width=0.25)
    assert load_torchvision_state_dict(ours, reference.state_dict()) is ours
    assert_loaded(ours, reference)


def test_load_torchvision_state_dict_from_a_pth_file(tmp_path):
    reference = small_torch_model("A", seed=5)
    path = tmp_path / "vgg11.pth"
    torch.save(reference.state_dict(), path)
    for where in (path, str(path)):
        ours = VGG("A", num_classes=10, input_size=32, width=0.25)
        load_torchvision_state_dict(ours, where)
        assert_loaded(ours, reference)


def test_load_torchvision_state_dict_errors():
    state = small_torch_model("A").state_dict()
    with pytest.raises(ValueError, match=r"torchvision has no counterpart of configuration 'C'; "
                                         r"it has A \(vgg11\), B \(vgg13\), D \(vgg16\), E \(vgg19\)"):
        load_torchvision_state_dict(VGG("C", num_classes=10, input_size=32, width=0.25), state)
    ours = VGG("A", num_classes=10, input_size=32, width=0.25)
    missing = dict(state)
    del missing["classifier.6.bias"]
    with pytest.raises(KeyError, match=r"missing keys \['classifier.6.bias'\], unexpected keys \[\]"):
        load_torchvision_state_dict(ours, missing)
    extra = dict(state, **{"features.21.weight": torch.zeros(3)})
    with pytest.raises(KeyError, match=r"missing keys \[\], unexpected keys \['features.21.weight'\]"):
        load_torchvision_state_dict(ours, extra)
    wrong = dict(state, **{"features.3.weight": torch.zeros(32, 16, 1, 1)})
    with pytest.raises(ValueError, match=r"features\.3\.weight has shape \(32, 16, 1, 1\) in the state dict "
                                         r"but \(32, 16, 3, 3\) in the model"):
        load_torchvision_state_dict(ours, wrong)
    vgg16 = small_torch_model("D").state_dict()  # the right format, the wrong network
    with pytest.raises(KeyError, match=r"missing keys \[.*\], unexpected keys \[.*'features.28.weight'"):
        load_torchvision_state_dict(ours, vgg16)
    assert np.all(ours.features[0].weight.numpy() == 0)  # no failed load touched the model


# --- the pretrained path: a torchvision .pth file -> a minivgg checkpoint -> evaluate_vgg.py ----------------

# torchvision's vgg11 state-dict keys (torchvision/models/vgg.py, cfgs["A"]): a conv at each of these indices
# of ``features``, and the three Linear layers of ``classifier``
VGG11_KEYS = [f"features.{i}.{p}" for i in (0, 3, 6, 8, 11, 13, 16, 18) for p in ("weight", "bias")] + \
             [f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")]
WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331", "n01498041",
         "n01514668", "n01514859", "n01518878")  # the first ten ImageNet classes, in torchvision's order


def test_a_torchvision_pth_becomes_a_checkpoint_that_evaluate_vgg_runs(tmp_path):
    from image_folders import run_script, write_image_folder
    from minivgg import data
    from minivgg.train import load_vgg

    reference = torch_vgg("A", 10, 32, 0.0625)  # vgg11 at 1/16 of the widths, 10 classes, 32x32 crops
    shapes = {name: tuple(t.shape) for name, t in reference.state_dict().items()}
    assert list(shapes) == VGG11_KEYS
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in random_weights(shapes, 7).items()}, assign=True)
    weights = tmp_path / "vgg11-small.pth"
    torch.save(reference.state_dict(), weights)
    folder = write_image_folder(tmp_path / "imagenet", WNIDS, train_per_class=0, val_per_class=1)

    imported = run_script("import_torchvision.py", weights, "--data", folder, "--scale", "40",
                          "--out", tmp_path / "vgg11")
    assert "VGG-A (10 classes, 32x32 crops, 113,090 parameters)" in imported.stdout
    model, meta = load_vgg(str(tmp_path / "vgg11" / "checkpoint.npz"), "evaluate")
    mean, std = data.torchvision_normalisation()
    assert meta["model"]["mean"] == pytest.approx(mean.tolist()) and meta["model"]["std"] == pytest.approx(std.tolist())

    image = data.ImageFolder(f"{folder}/val").images[3]  # torchvision's pipeline, computed by torch
    central = torch.from_numpy(data.center_crop(data.rescale(image, 40), 32).astype(np.float32)) / 255
    channel_mean, channel_std = (torch.tensor(v)[:, None, None] for v in (data.IMAGENET_MEAN, data.IMAGENET_STD))
    normalised = (central - channel_mean) / channel_std
    with torch.no_grad():
        expected = reference.eval()(normalised[None]).numpy()
    ours = model.eval()(Tensor(data.torchvision_transform(32, 40)(image)[None])).numpy()
    assert relative_error(ours, expected) <= TOLERANCE

    evaluated = run_script("evaluate_vgg.py", tmp_path / "vgg11" / "checkpoint.npz", "--grid", "2", "--no-progress")
    assert evaluated.stdout.startswith(f"10 folder test images from {folder}/val, 10 classes")
    assert "top-5 err" in evaluated.stdout
    rows = json.loads((tmp_path / "vgg11" / "evaluation.json").read_text())["rows"]
    assert [(r["test_scales"], r["method"]) for r in rows] == [
        (q, m) for q in ("40", "36,40,44") for m in ("single", "dense", "multi-crop", "dense+multi-crop")]
    assert all(r["run"] == str(tmp_path / "vgg11") and r["net"] == "VGG-A" and 0 <= r["top5_error"] <= 1
               for r in rows)


def test_torchvision_settings_are_read_off_the_names_and_shapes():
    from minivgg.models import torchvision_settings, vgg_from_torchvision

    state = small_torch_model("D").state_dict()
    assert torchvision_settings(state) == {"config": "D", "num_classes": 10, "in_channels": 3, "input_size": 32,
                                           "width": 0.25}
    model = vgg_from_torchvision(state)
    assert model.config == "D" and np.array_equal(model.features[0].weight.numpy(), state["features.0.weight"].numpy())
    with pytest.raises(ValueError, match=r"expected the weights of torchvision's vgg11, vgg13, vgg16 or vgg19 .* "
                                         r"got 1 convolutions"):
        torchvision_settings({"features.0.weight": np.zeros((4, 3, 3, 3)), "classifier.0.weight": np.zeros((2, 4))})
