"""Turn torchvision's ImageNet VGG weights (a .pth file) into a checkpoint that evaluate_vgg.py reads.

    pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu   # CPU-only, to read .pth
    curl -LO https://download.pytorch.org/models/vgg16-397923af.pth
    python examples/import_torchvision.py vgg16-397923af.pth --data ~/imagenet
    python examples/evaluate_vgg.py runs/vgg16/checkpoint.npz --methods single,dense

torchvision's vgg11, vgg13, vgg16 and vgg19 are the paper's nets A, B, D and
E; the configuration, classes and input size are read off the file's layer
names and shapes.  The file is read with torch.load(weights_only=True).  The
checkpoint records torchvision's preprocessing (RGB / 255, minus the ImageNet
mean, over its std) and the training scale --scale (256: torchvision's
Resize(256) + CenterCrop(224) is then the single-scale test at Q = 256), and
the image folder given by --data, whose val/<class>/ sub-folders are the test
set.  For ImageNet, name the class folders by WordNet id (n01440764, ...):
sorted, they give torchvision's class order.
"""
import argparse
import os

from cli_common import HelpFormatter
from minivgg import data, models
from minivgg.models.torchvision import TORCHVISION_NAMES, numpy_state
from minivgg.optim import SGD, PlateauSchedule
from minivgg.train import CHECKPOINT, write_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("weights", help="a torchvision VGG state dict saved with torch.save (e.g. vgg16-397923af.pth)")
    parser.add_argument("--data", help="ImageNet-style folder (DIR/val/<class>/<image>) to record as the test set")
    parser.add_argument("--scale", default="256", help="the training scale S the test scales Q are chosen from")
    parser.add_argument("--out", help="run directory for checkpoint.npz (default: runs/<vgg11|vgg13|vgg16|vgg19>)")
    return parser.parse_args(argv)


def checkpoint_meta(settings, args):
    """What evaluate_vgg.py needs to rebuild the net and preprocess its images as torchvision does."""
    mean, std = data.torchvision_normalisation()
    return {**settings, "scale": args.scale, "dataset": "folder", "data": args.data and os.path.abspath(args.data),
            "mean": [float(m) for m in mean], "std": [float(s) for s in std],
            "source": os.path.abspath(args.weights)}


def main(argv=None):
    args = parse_args(argv)
    state = numpy_state(args.weights)
    settings = models.torchvision_settings(state)
    model = models.vgg_from_torchvision(state)
    out = args.out or os.path.join("runs", TORCHVISION_NAMES[settings["config"]])
    os.makedirs(out, exist_ok=True)
    optimizer = SGD(model.parameters())  # a run that has not started: epoch 0, fresh optimiser and schedule
    path = os.path.join(out, CHECKPOINT)
    write_checkpoint(path, model, checkpoint_meta(settings, args), optimizer.state_dict(),
                     PlateauSchedule(optimizer).state_dict())
    print(f"VGG-{settings['config']} ({settings['num_classes']} classes, {settings['input_size']}x"
          f"{settings['input_size']} crops, {model.num_parameters():,} parameters) from {args.weights} "
          f"written to {path}")
    return path


if __name__ == "__main__":
    main()
