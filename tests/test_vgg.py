"""Floor 4: the six configurations of Table 1, their initialisation, warm start, dense evaluation, summary.

Table 1 is transcribed here independently of ``minivgg.models.TABLE_1``: per
configuration, the kernel sizes of the convolutions of each of the five
stages (a stage ends with a 2x2 max-pool); the stages have 64, 128, 256, 512
and 512 channels.  Full-width networks are built without initialisation
(``VGG(config)``) wherever only their shapes matter.
"""
import re

import numpy as np
import pytest

from minivgg import Tensor, no_grad, summary
from minivgg import functional as F
from minivgg.models import VGG, DenseVGG, vgg, warm_start
from minivgg.nn import Conv2d, Dropout, Linear, LocalResponseNorm, MaxPool2d, Module, ReLU

STAGES = {
    "A": [[3], [3], [3, 3], [3, 3], [3, 3]],
    "A-LRN": [[3], [3], [3, 3], [3, 3], [3, 3]],
    "B": [[3, 3], [3, 3], [3, 3], [3, 3], [3, 3]],
    "C": [[3, 3], [3, 3], [3, 3, 1], [3, 3, 1], [3, 3, 1]],
    "D": [[3, 3], [3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
    "E": [[3, 3], [3, 3], [3, 3, 3, 3], [3, 3, 3, 3], [3, 3, 3, 3]],
}
CONFIGS = list(STAGES)
# Section 4.1's variant of B: each of B's pairs of 3x3 convolutions becomes one 5x5.
VARIANT_STAGES = {"B-5x5": [[5], [5], [5], [5], [5]]}
STAGE_CHANNELS = [64, 128, 256, 512, 512]
PAPER_PARAMETERS = {"A": 132_863_336, "A-LRN": 132_863_336, "B": 133_047_848, "C": 133_638_952,
                    "D": 138_357_544, "E": 143_667_240}
SMALL = dict(num_classes=10, input_size=32, width=0.25)  # a quick network: 16..128 channels, FC-1024


def width_of(channels, width):
    return max(1, int(round(channels * width)))


def expected_layers(config, num_classes=1000, in_channels=3, input_size=224, width=1.0):
    """The layer sequence of Table 1, as tuples: features, then classifier."""
    features, channels = [], in_channels
    for stage, kernels in enumerate({**STAGES, **VARIANT_STAGES}[config]):
        for index, kernel in enumerate(kernels):
            out = width_of(STAGE_CHANNELS[stage], width)
            features += [("conv", channels, out, kernel, kernel // 2), ("relu",)]
            if config == "A-LRN" and stage == 0 and index == 0:
                features.append(("lrn", 5, 1e-4, 0.75, 2.0))
            channels = out
        features.append(("pool", 2, 2))
    fc = width_of(4096, width)
    first = width_of(512, width) * (input_size // 32) ** 2
    classifier = [("linear", first, fc), ("relu",), ("dropout", 0.5), ("linear", fc, fc), ("relu",),
                  ("dropout", 0.5), ("linear", fc, num_classes)]
    return features, classifier


def describe(layer):
    if isinstance(layer, Conv2d):
        out, cin, kh, kw = layer.weight.shape
        assert kh == kw and layer.stride == 1 and layer.bias.shape == (out,)
        return ("conv", cin, out, kh, layer.padding)
    if isinstance(layer, Linear):
        assert layer.bias.shape == (layer.weight.shape[0],)
        return ("linear", layer.weight.shape[1], layer.weight.shape[0])
    if isinstance(layer, LocalResponseNorm):
        return ("lrn", layer.size, layer.alpha, layer.beta, layer.k)
    if isinstance(layer, MaxPool2d):
        return ("pool", layer.kernel_size, layer.stride)
    if isinstance(layer, Dropout):
        return ("dropout", layer.p)
    if isinstance(layer, ReLU):
        return ("relu",)
    raise AssertionError(f"unexpected layer {layer!r}")


def expected_parameters(config, **kwargs):
    features, classifier = expected_layers(config, **kwargs)
    convs = sum(cin * out * k * k + out for kind, *rest in features if kind == "conv"
                for cin, out, k, _ in [rest])
    fcs = sum(i * o + o for kind, *rest in classifier if kind == "linear" for i, o in [rest])
    return convs + fcs


def conv_names(config):
    """Dotted names of the convolutions of each stage ('features.<i>', torchvision's indices)."""
    names, index = [], 0
    for stage, kernels in enumerate(STAGES[config]):
        names.append([])
        for position in range(len(kernels)):
            names[-1].append(f"features.{index}")
            index += 2 + (config == "A-LRN" and stage == 0 and position == 0)
        index += 1  # the pool
    return names


def weights(model):
    return {name: p.numpy() for name, p in model.named_parameters() if name.endswith("weight")}


def random_input(shape, seed=0, dtype=np.float32):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


# --- Table 1 --------------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_layer_sequence_matches_table_1(config):
    model = VGG(config)
    features, classifier = expected_layers(config)
    assert [describe(layer) for layer in model.features] == features
    assert [describe(layer) for layer in model.classifier] == classifier
    stages = STAGES[config]
    convs = [layer for layer in model.features if isinstance(layer, Conv2d)]
    assert sum(k == 3 for s in stages for k in s) == sum(c.weight.shape[2] == 3 for c in convs)
    assert sum(k == 1 for s in stages for k in s) == sum(c.weight.shape[2] == 1 for c in convs)
    assert sum(isinstance(layer, MaxPool2d) for layer in model.features) == 5
    lrns = [i for i, layer in enumerate(model.features) if isinstance(layer, LocalResponseNorm)]
    assert lrns == ([2] if config == "A-LRN" else [])  # after the first conv's ReLU, once
    assert model.classifier[0].weight.shape == (4096, 512 * 7 * 7)
    assert model.output_shape((2, 3, 224, 224)) == (2, 1000)


@pytest.mark.parametrize("config", CONFIGS)
def test_width_input_size_classes_and_channels_scale_the_layers(config):
    kwargs = dict(num_classes=10, in_channels=1, input_size=64, width=0.5)
    model = VGG(config, **kwargs)
    features, classifier = expected_layers(config, **kwargs)
    assert [describe(layer) for layer in model.features] == features
    assert [describe(layer) for layer in model.classifier] == classifier
    assert model.classifier[0].weight.shape == (2048, 256 * 2 * 2)  # 512*width * (input_size/32)**2
    assert model.num_parameters() == expected_parameters(config, **kwargs)


def test_parameter_counts_of_the_six_networks():
    counts = {config: VGG(config).num_parameters() for config in CONFIGS}
    assert counts == PAPER_PARAMETERS
    assert counts == {config: expected_parameters(config) for config in CONFIGS}
    # the paper's Table 2 in millions: 133, 133, 134, 138, 144
    assert [round(counts[c] / 1e6) for c in ("A", "B", "C", "D", "E")] == [133, 133, 134, 138, 144]


def test_parameter_names_follow_torchvision_layout():
    model = VGG("D")
    names = [name for name, _ in model.named_parameters()]
    convs = [name for stage in conv_names("D") for name in stage]
    assert names == [f"{c}.{p}" for c in convs for p in ("weight", "bias")] + \
        [f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")]
    assert convs[-1] == "features.28"  # torchvision's vgg16: features.28, then the pool at 30


@pytest.mark.parametrize("config", ["A", "A-LRN", "C"])
def test_forward_output_shape_and_float64(config):
    model = vgg(config, **SMALL, init="glorot", dtype=np.float64).eval()
    assert all(p.dtype == np.float64 for p in model.parameters())
    with no_grad():
        out = model(random_input((2, 3, 32, 32), dtype=np.float64))
    assert out.shape == (2, 10) and out.dtype == np.float64 and np.all(np.isfinite(out.numpy()))


# --- initialisation ------------------------------------------------------------------------


def test_paper_init_is_normal_with_std_0_01_and_zero_biases():
    model = vgg("A", **SMALL, init="paper", seed=0)
    for name, p in model.named_parameters():
        values = p.numpy()
        if name.endswith("bias"):
            assert np.all(values == 0), name
        elif values.size >= 10_000:
            assert abs(values.std() - 0.01) < 0.03 * 0.01, name
            assert abs(values.mean()) < 5 * 0.01 / np.sqrt(values.size), name
    everything = np.concatenate([w.ravel() for w in weights(model).values()])
    assert abs(everything.std() - 0.01) < 0.002 * 0.01
    assert abs(everything.mean()) < 5 * 0.01 / np.sqrt(everything.size)
    assert abs(np.mean(np.abs(everything) > 0.02) - 0.0455) < 0.002  # a normal's two-sigma tails


def test_glorot_init_is_uniform_within_the_glorot_bound():
    model = vgg("A", **SMALL, init="glorot", seed=0)
    for name, layer in model.named_modules():
        if not isinstance(layer, (Conv2d, Linear)):
            continue
        w = layer.weight.numpy()
        receptive = w[0, 0].size if w.ndim == 4 else 1
        bound = np.sqrt(6.0 / (w.shape[1] * receptive + w.shape[0] * receptive))
        assert np.abs(w).max() <= bound, name
        assert np.all(layer.bias.numpy() == 0), name
        if w.size >= 10_000:
            assert np.abs(w).max() > 0.99 * bound, name
            assert abs(w.var() / (bound ** 2 / 3) - 1) < 0.05, name  # the variance of U(-a, a) is a**2/3


@pytest.mark.parametrize("init", ["paper", "glorot"])
def test_same_seed_same_weights_different_seed_different_weights(init):
    first, again, other = (weights(vgg("B", **SMALL, init=init, seed=s)) for s in (3, 3, 4))
    for name in first:
        np.testing.assert_array_equal(first[name], again[name], err_msg=name)
        assert not np.array_equal(first[name], other[name]), name


def test_paper_and_glorot_differ():
    assert not np.array_equal(vgg("A", **SMALL, init="paper").classifier[0].weight.numpy(),
                              vgg("A", **SMALL, init="glorot").classifier[0].weight.numpy())


def test_unknown_init_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown init 'he'; valid ones are paper, glorot"):
        vgg("A", **SMALL, init="he")


def test_b_5x5_is_b_with_each_pair_of_3x3_convolutions_made_one_5x5():
    assert all(kernels == [3, 3] for kernels in STAGES["B"])
    model = VGG("B-5x5")
    features, classifier = expected_layers("B-5x5")
    assert [describe(layer) for layer in model.features] == features
    assert [describe(layer) for layer in model.classifier] == classifier
    assert model.num_parameters() == expected_parameters("B-5x5") == 134_503_528
    small = vgg("B-5x5", **SMALL, in_channels=1)
    assert small(random_input((2, 1, 32, 32))).shape == (2, 10)


# --- warm start ----------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["B", "C", "D", "E"])
def test_warm_start_copies_four_convs_and_the_fcs_of_net_a(config):
    shallow = vgg("A", **SMALL, seed=1)
    deep = vgg(config, **SMALL, seed=2)
    before = deep.state_dict()
    assert warm_start(deep, shallow) is deep
    # A's convolutions 1..4 are stage 1 #1, stage 2 #1, stage 3 #1 and #2: the same places in ``deep``
    a_stages, deep_stages = conv_names("A"), conv_names(config)
    pairs = [(deep_stages[s][i], a_stages[s][i]) for s, i in ((0, 0), (1, 0), (2, 0), (2, 1))]
    pairs += [(f"classifier.{i}", f"classifier.{i}") for i in (0, 3, 6)]
    source, after = shallow.state_dict(), deep.state_dict()
    copied = set()
    for target, origin in pairs:
        for kind in ("weight", "bias"):
            np.testing.assert_array_equal(after[f"{target}.{kind}"], source[f"{origin}.{kind}"])
            copied.add(f"{target}.{kind}")
    assert not np.array_equal(after[f"{pairs[0][0]}.weight"], before[f"{pairs[0][0]}.weight"])
    for name in after.keys() - copied:  # every other layer keeps its initialisation
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert len(after) - len(copied) == 2 * (sum(map(len, STAGES[config])) - 4)
    # a copy, not a shared array: training the deep net leaves net A alone
    deep.classifier[0].weight.data[...] = 7.0
    assert not np.any(shallow.classifier[0].weight.numpy() == 7.0)


def test_warm_start_with_mismatched_shapes_names_the_layer_and_copies_nothing():
    shallow = vgg("A", **SMALL, seed=1)
    deep = vgg("B", num_classes=10, input_size=32, width=0.5, seed=2)
    before = deep.state_dict()
    with pytest.raises(ValueError, match=r"warm_start: .*features\.0.*features\.0.*weight shapes "
                                         r"\(16, 3, 3, 3\) and \(32, 3, 3, 3\) differ"):
        warm_start(deep, shallow)
    for name, value in deep.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    other_classes = vgg("B", num_classes=7, input_size=32, width=0.25)
    before = other_classes.state_dict()
    with pytest.raises(ValueError, match=r"net A's classifier\.6 Linear\(1024, 10\) into classifier\.6 "
                                         r"Linear\(1024, 7\): weight shapes \(10, 1024\) and \(7, 1024\)"):
        warm_start(other_classes, shallow)
    for name, value in other_classes.state_dict().items():  # the matching layers were not half-copied
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_warm_start_needs_two_vgg_models():
    with pytest.raises(TypeError, match="expected two VGG models"):
        warm_start(vgg("B", **SMALL), Linear(2, 2))


# --- dense evaluation ------------------------------------------------------------------------


def dense_model(dtype=np.float32):
    model = vgg("A", **SMALL, init="glorot", seed=0, dtype=dtype)
    for name, p in model.named_parameters():  # non-zero biases, so that the bias path is checked too
        if name.endswith("bias"):
            p.data[...] = np.random.default_rng(len(name)).uniform(-0.1, 0.1, p.shape)
    return model.eval()


def test_dense_shares_the_weights():
    model = dense_model()
    dense = model.to_dense()
    assert isinstance(dense, DenseVGG) and dense.features is model.features
    convs = [layer for layer in dense.classifier if isinstance(layer, Conv2d)]
    assert [c.weight.shape for c in convs] == [(1024, 128, 1, 1), (1024, 1024, 1, 1), (10, 1024, 1, 1)]
    for conv, fc in zip(convs, model.fc_layers()):
        assert np.shares_memory(conv.weight.data, fc.weight.data)
        assert np.shares_memory(conv.bias.data, fc.bias.data)
    model.classifier[0].weight.data[5, 3] = 123.0  # in place, as SGD does
    model.classifier[6].bias.data[2] = -4.0
    assert convs[0].weight.data[5, 3, 0, 0] == 123.0
    assert convs[2].bias.data[2] == -4.0
    assert dense.num_parameters() == model.num_parameters()


def test_dense_of_a_larger_input_size_reshapes_the_first_fc():
    model = VGG("A", num_classes=5, input_size=96, width=0.25)  # a 3x3 final map: FC-1 becomes a 3x3 conv
    dense = model.to_dense()
    assert dense.classifier[0].weight.shape == (1024, 128, 3, 3)
    assert dense.output_shape((2, 3, 96, 96)) == (2, 5, 1, 1)
    assert dense.output_shape((2, 3, 160, 224)) == (2, 5, 3, 5)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_dense_on_input_size_equals_the_logits(dtype, rtol):
    model = dense_model(dtype)
    x = random_input((3, 3, 32, 32), dtype=dtype)
    with no_grad():
        logits = model(x).numpy()
        dense = model.to_dense()(x).numpy()
    assert dense.shape == (3, 10, 1, 1) and dense.dtype == dtype
    np.testing.assert_allclose(dense[:, :, 0, 0], logits, rtol=rtol, atol=rtol * np.abs(logits).max())


def test_dense_on_a_larger_input_gives_a_class_score_map():
    """Each position (i, j) of the map is the classifier on the input_size window at offset 32*(i, j).

    Exactly: the plain network's FC layers applied to the s x s block (s = input_size/32) of the last
    feature map at (i, j), which is the part of the computation that sees the crop at 32*(i, j).  It is
    NOT equal to the plain network run on that crop cut out of the image: inside the whole image the
    convolutions near the crop's border see the neighbouring pixels instead of zero padding (the paper,
    section 3.2, makes this point about dense versus multi-crop evaluation).  So the crop is compared
    exactly only where the two computations are the same: on a 32x32 image, the single position.
    """
    model = dense_model(np.float64)
    dense = model.to_dense()
    x = random_input((2, 3, 96, 64), dtype=np.float64)
    with no_grad():
        scores = dense(x).numpy()
        maps = model.features(x)
        assert scores.shape == (2, 10, (96 - 32) // 32 + 1, (64 - 32) // 32 + 1) == (2, 10, 3, 2)
        for i in range(3):
            for j in range(2):
                window = Tensor(np.ascontiguousarray(maps.numpy()[:, :, i:i + 1, j:j + 1]))
                expected = model.classifier(F.flatten(window)).numpy()
                np.testing.assert_allclose(scores[:, :, i, j], expected, rtol=1e-12, atol=1e-14)
        crop = Tensor(np.ascontiguousarray(x.numpy()[:, :, 32:64, 32:64]))
        on_crop = dense(crop).numpy()[:, :, 0, 0]
        np.testing.assert_allclose(on_crop, model(crop).numpy(), rtol=1e-12, atol=1e-14)
    assert not np.allclose(scores[:, :, 1, 1], on_crop)  # the border effect is real, not zero


def test_dense_shares_the_mode_and_rejects_small_inputs():
    model = dense_model()
    dense = model.to_dense()
    assert not any(m.training for m in dense.modules())
    dense.train()
    shared = model.features.modules() + [layer for layer in model.classifier if isinstance(layer, Dropout)]
    assert all(m.training for m in shared)  # the same feature and dropout layers
    with pytest.raises(ValueError, match=r"dense VGG-A: .*H, W >= 32, got \(1, 3, 16, 40\)"):
        dense(random_input((1, 3, 16, 40)))
    with pytest.raises(ValueError, match=r"dense VGG-A: expected input of shape \(N, 3, H, W\)"):
        dense(random_input((1, 1, 32, 32)))


# --- summary ---------------------------------------------------------------------------------


def summary_rows(text):
    """{layer name: (params, FLOPs)} from the table."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^(features\.\d+|classifier\.\d+)\s.*?\s([\d,]+)\s+([\d,]+)$", line)
        if match:
            rows[match.group(1)] = tuple(int(g.replace(",", "")) for g in match.group(2, 3))
    return rows


def test_summary_of_vgg_a_at_224():
    model = VGG("A")
    text = summary(model, (3, 224, 224))
    rows = summary_rows(text)
    assert len(rows) == len(model.features) + len(model.classifier)
    total_params = int(re.search(r"total: ([\d,]+) parameters", text).group(1).replace(",", ""))
    total_flops = int(re.search(r"parameters, ([\d,]+) FLOPs", text).group(1).replace(",", ""))
    assert total_params == model.num_parameters() == sum(p for p, _ in rows.values()) == 132_863_336
    # independently: a KxK conv producing (C_out, H, W) from C_in channels costs H*W*C_out*C_in*K*K
    # multiply-adds; a multiply-add counts as two FLOPs
    features, classifier = expected_layers("A")
    conv_macs, size, index, names = 0, 224, 0, conv_names("A")
    for stage, kernels in enumerate(STAGES["A"]):
        for position in range(len(kernels)):
            _, cin, out, k, _ = [f for f in features if f[0] == "conv"][index]
            macs = size * size * out * cin * k * k
            assert rows[names[stage][position]][1] == 2 * macs
            conv_macs += macs
            index += 1
        size //= 2
    fc_macs = sum(i * o for kind, *rest in classifier if kind == "linear" for i, o in [rest])
    assert 7.45e9 < conv_macs < 7.55e9  # VGG-A: 7.5 G multiply-adds in its convolutions ...
    assert 7.55e9 < conv_macs + fc_macs < 7.65e9  # ... 7.6 G in all (torchvision's 7.61 "GFLOPS" for vgg11)
    conv_flops = sum(f for name, (_, f) in rows.items() if name.startswith("features"))
    assert conv_flops == 2 * conv_macs  # ~15.0 GFLOPs
    assert total_flops == 2 * (conv_macs + fc_macs)  # ~15.2 GFLOPs
    assert f"({total_flops / 1e9:.3f} GFLOPs)" in text and "(15.2" in text
    # the share lines: FC layers hold most parameters, convolutions do most of the arithmetic
    conv_params, conv_share = map(float, re.search(r"convolutions: ([\d.]+)% of parameters, ([\d.]+)% of FLOPs",
                                                   text).groups())
    fc_params, fc_share = map(float, re.search(r"fully connected: ([\d.]+)% of parameters, ([\d.]+)% of FLOPs",
                                               text).groups())
    assert fc_params > 90 and conv_share > 95
    fc_count = sum(i * o + o for kind, *rest in classifier if kind == "linear" for i, o in [rest])
    assert fc_params == pytest.approx(100 * fc_count / total_params, abs=0.05)
    assert conv_params == pytest.approx(100 * (total_params - fc_count) / total_params, abs=0.05)
    assert fc_share == pytest.approx(100 * fc_macs / (conv_macs + fc_macs), abs=0.05)


def test_summary_of_lrn_net_and_dense_net_and_bad_shape():
    model = VGG("A-LRN", **SMALL)
    text = summary(model, (2, 3, 32, 32))
    assert "LocalResponseNorm(size=5" in text
    assert f"total: {model.num_parameters():,} parameters" in text
    dense_text = summary(model.to_dense(), (3, 32, 32))
    assert f"total: {model.num_parameters():,} parameters" in dense_text
    plain_flops = sum(f for _, f in summary_rows(summary(model, (3, 32, 32))).values())
    assert sum(f for _, f in summary_rows(dense_text).values()) == plain_flops
    with pytest.raises(ValueError, match=r"summary: expected input_shape \(C, H, W\) or \(N, C, H, W\), "
                                         r"got \(32, 32\)"):
        summary(model, (32, 32))


def test_summary_lists_a_layer_it_cannot_count_instead_of_failing():
    class Halve(Module):  # no output_shape, no flops: a user's own layer
        def forward(self, x):
            return F.max_pool2d(x, 2, 2)

    model = VGG("A", **SMALL)
    model.features[2] = Halve()  # in place of the first max-pool
    text = summary(model, (3, 32, 32))
    halve = next(line for line in text.splitlines() if line.startswith("features.2 "))
    assert re.search(r"Halve\(\)\s+\(1, 16, 16, 16\)\s+0\s+\?$", halve)  # shape measured, FLOPs unknown
    assert "FLOPs not counted (no flops/output_shape methods): features.2" in text
    counted = summary_rows(summary(VGG("A", **SMALL), (3, 32, 32)))
    assert summary_rows(text) == {name: row for name, row in counted.items() if name != "features.2"}


# --- bad input -------------------------------------------------------------------------------


def test_unknown_configuration_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown configuration 'F'; valid ones are A, A-LRN, B, C, D, E"):
        vgg("F")
    with pytest.raises(ValueError, match=r"unknown configuration 'vgg16'"):
        VGG("vgg16")


@pytest.mark.parametrize("size", [100, 16, 0, 224.0])
def test_input_size_must_be_a_multiple_of_32(size):
    with pytest.raises(ValueError, match=rf"input_size must be a positive multiple of 32 .*got {size!r}"):
        VGG("A", input_size=size)


def test_bad_width_and_num_classes():
    with pytest.raises(ValueError, match=r"width must be a finite number > 0, got 0"):
        VGG("A", width=0)
    with pytest.raises(ValueError, match=r"num_classes must be a positive integer, got 0"):
        VGG("A", num_classes=0)


def test_forward_rejects_a_wrong_input_shape():
    model = vgg("A", **SMALL)
    with pytest.raises(ValueError, match=r"VGG-A: expected input of shape \(N, 3, 32, 32\), got \(2, 1, 32, 32\)"):
        model(random_input((2, 1, 32, 32)))
    with pytest.raises(ValueError, match=r"got \(2, 3, 64, 64\)"):
        model(random_input((2, 3, 64, 64)))
    with pytest.raises(ValueError, match=r"got \(3, 32, 32\)"):
        model(random_input((3, 32, 32)))


def test_state_dict_errors_name_what_differs():
    model = vgg("A", **SMALL)
    state = model.state_dict()
    missing = dict(state)
    del missing["features.3.weight"]
    with pytest.raises(KeyError, match=r"VGG: missing keys \['features.3.weight'\], unexpected keys \[\]"):
        model.load_state_dict(missing)
    extra = dict(state, **{"features.1.weight": np.zeros(1)})
    with pytest.raises(KeyError, match=r"missing keys \[\], unexpected keys \['features.1.weight'\]"):
        model.load_state_dict(extra)
    wrong = dict(state, **{"classifier.6.weight": np.zeros((10, 4096), np.float32)})
    with pytest.raises(ValueError, match=r"classifier\.6\.weight has shape \(10, 4096\) in the state dict "
                                         r"but \(10, 1024\) in the model"):
        model.load_state_dict(wrong)
    # the state dict of another configuration
    with pytest.raises(KeyError, match=r"missing keys \['features.3.weight', 'features.3.bias'"):
        vgg("A", **SMALL).load_state_dict(vgg("A-LRN", **SMALL).state_dict())
