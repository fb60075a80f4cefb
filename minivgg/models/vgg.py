"""Floor 4: the six VGG configurations of the paper's Table 1, built from the table itself.

Each configuration is one line of Table 1, written as the paper writes it:
``convK-C`` is a KxK convolution with C output channels (stride 1, padding
K//2, so the spatial size is kept), followed by a ReLU; ``LRN`` is local
response normalisation; ``|`` is a 2x2 max-pool with stride 2.  Every
configuration ends with a max-pool and three fully connected layers,

    FC-4096, ReLU, dropout 0.5, FC-4096, ReLU, dropout 0.5, FC-num_classes

(the softmax lives in the loss).  After five pools a ``input_size`` image is
``input_size/32`` pixels wide, so the first FC layer sees
512 * (input_size/32)**2 numbers: 25,088 at 224.

The layers sit in two Sequentials named ``features`` and ``classifier`` in
the same order as torchvision's VGG, so the parameter names match its
``vgg11``/``vgg13``/``vgg16``/``vgg19`` one for one.
"""
import math
import numbers

import numpy as np

from .. import functional as F
from ..backend import move_array
from ..nn import Conv2d, Dropout, Linear, LocalResponseNorm, MaxPool2d, Module, ReLU, Sequential, init

TABLE_1 = {
    "A":     "conv3-64 | conv3-128 | conv3-256 conv3-256 | conv3-512 conv3-512 | conv3-512 conv3-512 |",
    "A-LRN": "conv3-64 LRN | conv3-128 | conv3-256 conv3-256 | conv3-512 conv3-512 | conv3-512 conv3-512 |",
    "B":     "conv3-64 conv3-64 | conv3-128 conv3-128 | conv3-256 conv3-256 | conv3-512 conv3-512 | "
             "conv3-512 conv3-512 |",
    "C":     "conv3-64 conv3-64 | conv3-128 conv3-128 | conv3-256 conv3-256 conv1-256 | "
             "conv3-512 conv3-512 conv1-512 | conv3-512 conv3-512 conv1-512 |",
    "D":     "conv3-64 conv3-64 | conv3-128 conv3-128 | conv3-256 conv3-256 conv3-256 | "
             "conv3-512 conv3-512 conv3-512 | conv3-512 conv3-512 conv3-512 |",
    "E":     "conv3-64 conv3-64 | conv3-128 conv3-128 | conv3-256 conv3-256 conv3-256 conv3-256 | "
             "conv3-512 conv3-512 conv3-512 conv3-512 | conv3-512 conv3-512 conv3-512 conv3-512 |",
}
# Not a row of Table 1: section 4.1's shallower variant of B, in which each pair
# of 3x3 convolutions is replaced by one 5x5 convolution (the same 5x5
# receptive field with half the depth).  At width 1 and 224x224 it has 134.5M
# parameters against B's 133.0M (25 weights per channel pair instead of
# 2 x 9).  The paper measured its top-1 error 7% above B's (centre crop).
VARIANTS = {
    "B-5x5": "conv5-64 | conv5-128 | conv5-256 | conv5-512 | conv5-512 |",
}
CONFIGS = {**TABLE_1, **VARIANTS}
FC_WIDTH = 4096
FINAL_CHANNELS = 512
DOWNSAMPLING = 32  # five 2x2 pools


def scaled(channels, width):
    """A channel count scaled by ``width`` (at least 1)."""
    return max(1, int(round(channels * width)))


def parse_token(token):
    """'conv3-64' -> ('conv', 3, 64); 'LRN' -> ('lrn',); '|' -> ('pool',)."""
    if token == "|":
        return ("pool",)
    if token == "LRN":
        return ("lrn",)
    kernel, channels = token[len("conv"):].split("-")
    return ("conv", int(kernel), int(channels))


def build_features(config, in_channels, width, dtype):
    layers, channels = [], in_channels
    for token in CONFIGS[config].split():
        kind, *arguments = parse_token(token)
        if kind == "conv":
            kernel, out = arguments[0], scaled(arguments[1], width)
            layers += [Conv2d(channels, out, kernel, padding=kernel // 2, dtype=dtype, initialise=False), ReLU()]
            channels = out
        elif kind == "lrn":
            layers.append(LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0))
        else:
            layers.append(MaxPool2d(2, 2))
    return Sequential(*layers), channels


def build_classifier(features_out, fc_width, num_classes, dtype):
    return Sequential(
        Linear(features_out, fc_width, dtype=dtype, initialise=False), ReLU(), Dropout(0.5, layer=0),
        Linear(fc_width, fc_width, dtype=dtype, initialise=False), ReLU(), Dropout(0.5, layer=1),
        Linear(fc_width, num_classes, dtype=dtype, initialise=False),
    )


class VGG(Module):
    """One of the paper's six networks: ``features`` (convolutions and pools), then ``classifier`` (FCs)."""

    def __init__(self, config, num_classes=1000, in_channels=3, input_size=224, width=1.0, dtype=np.float32):
        super().__init__()
        check_config(config, input_size, width, num_classes, in_channels, dtype)
        self.config, self.num_classes, self.in_channels = config, num_classes, in_channels
        self.input_size, self.width = input_size, width
        self.features, channels = build_features(config, in_channels, width, dtype)
        side = input_size // DOWNSAMPLING
        self.classifier = build_classifier(channels * side * side, scaled(FC_WIDTH, width), num_classes, dtype)

    def forward(self, x):
        expected = (self.in_channels, self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"VGG-{self.config}: expected input of shape (N, {expected[0]}, {expected[1]}, "
                             f"{expected[2]}), got {tuple(x.shape)}")
        return self.classifier(F.flatten(self.features(x)))

    def output_shape(self, shape):
        return self.classifier.output_shape(flatten_shape(self.features.output_shape(shape)))

    def conv_stages(self):
        """The convolution layers grouped by stage (the blocks between max-pools)."""
        stages, current = [], []
        for layer in self.features:
            if isinstance(layer, Conv2d):
                current.append(layer)
            elif isinstance(layer, MaxPool2d):
                stages.append(current)
                current = []
        return stages

    def fc_layers(self):
        return [layer for layer in self.classifier if isinstance(layer, Linear)]

    def to_dense(self):
        """The fully convolutional network of the paper's dense evaluation, sharing these weights."""
        return DenseVGG(self)

    def __repr__(self):
        return (f"VGG(config={self.config!r}, num_classes={self.num_classes}, input_size={self.input_size}, "
                f"width={self.width})\nfeatures: {self.features!r}\nclassifier: {self.classifier!r}")


def flatten_shape(shape):
    return (shape[0], int(np.prod(shape[1:])))


def is_integer(value):
    """True for Python and NumPy integers, but not for booleans."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_config(config, input_size, width, num_classes, in_channels, dtype):
    """Refuse, naming the argument and its value, a network that could not be built or would compute nothing."""
    if config not in CONFIGS:
        raise ValueError(f"vgg: unknown configuration {config!r}; valid ones are {', '.join(CONFIGS)}")
    if not is_integer(input_size) or input_size < DOWNSAMPLING or input_size % DOWNSAMPLING:
        raise ValueError(f"vgg: input_size must be a positive multiple of {DOWNSAMPLING} (five 2x2 pools), "
                         f"got {input_size!r}")
    if not (isinstance(width, numbers.Real) and not isinstance(width, bool) and math.isfinite(width) and width > 0):
        raise ValueError(f"vgg: width must be a finite number > 0, got {width!r}")
    if not (is_integer(num_classes) and num_classes >= 1):
        raise ValueError(f"vgg: num_classes must be a positive integer, got {num_classes!r}")
    if not (is_integer(in_channels) and in_channels >= 1):
        raise ValueError(f"vgg: in_channels must be a positive integer, got {in_channels!r}")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"vgg: dtype must be float32 or float64, got {np.dtype(dtype)}")


class DenseVGG(Module):
    """VGG with its FC layers turned into convolutions (section 3.2, "dense evaluation").

    The first FC layer, which saw a 512 x s x s block (s = input_size/32),
    becomes an s x s convolution; the other two become 1x1 convolutions.  The
    convolution weights are views of the FC weights (the same memory).  On an
    input of exactly ``input_size`` the output is the logits as an
    (N, classes, 1, 1) map; on a larger image, a map of class scores, one per
    input_size window, 32 pixels apart.
    """

    def __init__(self, vgg):
        super().__init__()
        self.config, self.num_classes, self.in_channels = vgg.config, vgg.num_classes, vgg.in_channels
        self.input_size = vgg.input_size
        self.features = vgg.features
        side = vgg.input_size // DOWNSAMPLING
        fc1, fc2, fc3 = vgg.fc_layers()
        dropouts = [layer for layer in vgg.classifier if isinstance(layer, Dropout)]
        self.classifier = Sequential(
            conv_from_linear(fc1, side), ReLU(), dropouts[0],
            conv_from_linear(fc2, 1), ReLU(), dropouts[1],
            conv_from_linear(fc3, 1),
        )
        self.train(vgg.training)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels or min(x.shape[2:]) < self.input_size:
            raise ValueError(f"dense VGG-{self.config}: expected input of shape (N, {self.in_channels}, H, W) "
                             f"with H, W >= {self.input_size}, got {tuple(x.shape)}")
        return self.classifier(self.features(x))

    def output_shape(self, shape):
        return self.classifier.output_shape(self.features.output_shape(shape))


def conv_from_linear(linear, side):
    """A side x side convolution computing ``linear`` on each (C, side, side) window; weights shared."""
    out_features, in_features = linear.weight.shape
    channels = in_features // (side * side)
    conv = Conv2d(channels, out_features, side, dtype=linear.weight.dtype, initialise=False)
    conv.weight.data = linear.weight.data.reshape(out_features, channels, side, side)
    conv.bias.data = linear.bias.data
    return conv


def vgg(config, num_classes=1000, in_channels=3, input_size=224, width=1.0, init="paper", seed=0,
        dtype=np.float32):
    """Build configuration ``config`` ('A', 'A-LRN', 'B', 'C', 'D' or 'E') of the paper's Table 1, or 'B-5x5'.

    ``init='paper'`` draws weights from N(0, 0.01**2) (section 3.1);
    ``init='glorot'`` uses Glorot uniform.  Biases start at 0.  ``width``
    scales every channel count and the FC width (1.0 is the paper).
    """
    check_init(init)
    if not (is_integer(seed) and seed >= 0):
        raise ValueError(f"vgg: seed must be a non-negative integer, got {seed!r}")
    model = VGG(config, num_classes, in_channels, input_size, width, dtype)
    initialise(model, init, np.random.default_rng(seed))
    return model


INITIALISERS = {
    "paper": lambda parameter, rng: init.normal_(parameter, 0.01, rng),
    "glorot": init.glorot_uniform_,
}


def check_init(scheme):
    if scheme not in INITIALISERS:
        raise ValueError(f"vgg: unknown init {scheme!r}; valid ones are {', '.join(INITIALISERS)}")


def initialise(model, scheme, rng):
    """Weights by ``scheme``, biases zero, in the order of ``named_parameters``."""
    check_init(scheme)
    for name, parameter in model.named_parameters():
        if name.endswith("bias"):
            init.zeros_(parameter)
        else:
            INITIALISERS[scheme](parameter, rng)


def warm_start(deep, shallow, num_conv=4):
    """Initialise ``deep`` from a trained net A: its first ``num_conv`` conv layers and its three FC layers.

    The paper (section 3.1) does this for the deeper nets.  Net A's layers
    are matched stage by stage: the i-th convolution of a stage of A goes to
    the i-th convolution of the same stage of ``deep``, which is where the
    shapes agree (A's 64->128 convolution is the first of stage 2 in every
    configuration).  The other layers keep their initialisation.
    """
    if not (isinstance(deep, VGG) and isinstance(shallow, VGG)):
        raise TypeError(f"warm_start: expected two VGG models, got {type(deep).__name__} and "
                        f"{type(shallow).__name__}")
    pairs = []
    for deep_stage, shallow_stage in zip(deep.conv_stages(), shallow.conv_stages()):
        pairs += list(zip(deep_stage, shallow_stage))
    pairs = pairs[:num_conv] + list(zip(deep.fc_layers(), shallow.fc_layers()))
    deep_names = {id(module): name for name, module in deep.named_modules()}
    shallow_names = {id(module): name for name, module in shallow.named_modules()}
    for target, source in pairs:  # every shape is checked before anything is copied
        for name in ("weight", "bias"):
            to, source_parameter = getattr(target, name), getattr(source, name)
            if to.shape != source_parameter.shape:
                raise ValueError(f"warm_start: cannot copy net A's {shallow_names[id(source)]} {source!r} into "
                                 f"{deep_names[id(target)]} {target!r}: {name} shapes "
                                 f"{source_parameter.shape} and {to.shape} differ")
    for target, source in pairs:
        copy_layer(target, source)
    return deep


def copy_layer(target, source):
    for name in ("weight", "bias"):
        to, source_parameter = getattr(target, name), getattr(source, name)
        to.data[...] = move_array(source_parameter.data, to.device)
