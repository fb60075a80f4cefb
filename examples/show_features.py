"""Draw what a trained VGG learned: its first layer's filters and one test image's feature maps at each stage.

    python examples/show_features.py runs/vgg_a/checkpoint.npz            # writes runs/vgg_a/features.png
    python examples/show_features.py runs/vgg_a/checkpoint.npz --image 7 --maps 12 --out shirt.png

The top row shows the test image as the net sees it (rescaled to the
single-scale test Q and cropped to the training size) and the filters of the
first convolution, each scaled to its own range (in colour for an RGB net).
Each row below is one stage, the convolutions between two max-pools: the
--maps most active feature maps after the stage's last ReLU, brightest where
the filters respond.  The test image comes from the checkpoint's test set
unless --dataset or --data say otherwise.  Needs matplotlib.
"""
import argparse
import os

import numpy as np

from cli_common import HelpFormatter, fail
from minivgg import Tensor, data, no_grad
from minivgg.evaluate import protocol_scales
from minivgg.nn import MaxPool2d
from minivgg.train import load_vgg

FILTER_COLUMNS = 16  # first-layer filters per row of the top panel


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint.npz written by train_vgg_a.py or import_torchvision.py")
    parser.add_argument("--image", type=int, default=0, help="index of the test image to show")
    parser.add_argument("--maps", type=int, default=8, help="feature maps shown per stage (the most active)")
    parser.add_argument("--dataset", choices=data.DATASETS, help="test set (default: the checkpoint's dataset)")
    parser.add_argument("--data", help="data directory (default: the checkpoint's)")
    parser.add_argument("--out", help="PNG file (default: features.png beside the checkpoint)")
    return parser.parse_args(argv)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or a one-line error saying how to install it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("drawing needs matplotlib: pip install matplotlib (or pip install -e '.[train]')")
    return plt


def test_image(args, info):
    """(uint8 CHW image, its label) of test image --image, from the checkpoint's test set."""
    dataset = args.dataset or info.get("dataset", "fashion-mnist")
    root = args.data or (info.get("data") if dataset == info.get("dataset") else None)
    try:
        (images, labels), _ = data.load_split(dataset, "test", root)
    except (FileNotFoundError, ValueError) as error:
        fail(f"cannot read the {dataset} test set: {error}")
    if not 0 <= args.image < len(labels):
        fail(f"--image {args.image} is out of range: the {dataset} test set has {len(labels)} images")
    return images[args.image], int(labels[args.image])


def stage_maps(model, x):
    """The activations (C, H, W) after the last ReLU of each stage, for one input batch of one image."""
    maps, h = [], Tensor(x)
    with no_grad():
        for layer in model.features:
            if isinstance(layer, MaxPool2d):
                maps.append(h.numpy()[0])
            h = layer(h)
    return maps


def filter_images(weight):
    """Each first-layer filter (out, in, k, k) as a k x k picture scaled to [0, 1]: RGB for 3 inputs, else grey."""
    pictures = []
    for kernel in weight:
        low, high = kernel.min(), kernel.max()
        scaled = (kernel - low) / (high - low) if high > low else np.zeros_like(kernel)
        pictures.append(scaled.transpose(1, 2, 0) if scaled.shape[0] == 3 else scaled.mean(axis=0))
    return pictures


def show(axes, picture, title=None):
    axes.imshow(picture, cmap=None if picture.ndim == 3 else "gray", interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])
    if title:
        axes.set_title(title, fontsize=8)


def draw(plt, crop, title, filters, maps, count):
    """The figure: the image and the filters on top, then ``count`` feature maps per stage."""
    columns = min(FILTER_COLUMNS, len(filters))
    filter_rows = -(-len(filters) // columns)
    figure = plt.figure(figsize=(max(8, 1.2 * count), 2.4 + 0.5 * filter_rows + 1.3 * len(maps)))
    top, *rows = figure.subfigures(1 + len(maps), 1, height_ratios=[1.8 + 0.4 * filter_rows] + [1.2] * len(maps))
    image_part, filter_part = top.subfigures(1, 2, width_ratios=[1, 3])
    show(image_part.subplots(), crop.transpose(1, 2, 0) if crop.shape[0] == 3 else crop[0], title)
    for axes, picture in zip(filter_part.subplots(filter_rows, columns, squeeze=False).flat,
                             filters + [None] * (filter_rows * columns - len(filters))):
        if picture is None:
            axes.axis("off")
        else:
            show(axes, picture)
    filter_part.suptitle(f"the {len(filters)} filters of the first convolution", fontsize=9)
    for stage, (row, activation) in enumerate(zip(rows, maps), start=1):
        strongest = list(np.argsort(activation.mean(axis=(1, 2)))[::-1][:count])
        for axes, channel in zip(row.subplots(1, count, squeeze=False)[0], strongest + [None] * count):
            if channel is None:
                axes.axis("off")
            else:
                show(axes, activation[channel], f"map {channel}")
        row.subplots_adjust(top=0.72)  # room for the stage's title above the maps' own
        row.suptitle(f"stage {stage}: {activation.shape[0]} maps of {activation.shape[1]}x{activation.shape[2]}, "
                     f"the {len(strongest)} most active", fontsize=9)
    return figure


def main(argv=None):
    args = parse_args(argv)
    plt = pyplot()
    model, meta = load_vgg(args.checkpoint, "show-features")
    info = meta["model"]
    image, label = test_image(args, info)
    if image.shape[0] != model.in_channels:
        fail(f"{args.checkpoint} takes {model.in_channels}-channel images, but this test image has {image.shape[0]}")
    scale, _ = protocol_scales(info["scale"], info["input_size"])
    crop = data.center_crop(data.rescale(image, scale), info["input_size"])
    x = data.normalise(crop.astype(np.float32), info["mean"], info.get("std"))[None]
    maps = stage_maps(model.eval(), x)
    filters = filter_images(model.features[0].weight.numpy())
    title = f"VGG-{info['config']}, test image {args.image} (class {label})"
    figure = draw(plt, crop, title, filters, maps, max(1, args.maps))
    out = args.out or os.path.join(os.path.dirname(args.checkpoint), "features.png")
    figure.savefig(out, dpi=100)
    plt.close(figure)
    print(f"{out}: the {len(filters)} first-layer filters and the feature maps of test image {args.image} "
          f"at {len(maps)} stages")
    return out


if __name__ == "__main__":
    main()
