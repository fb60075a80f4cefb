"""Evaluate trained VGG checkpoints with the paper's test protocol (Tables 3 to 6).

    python examples/evaluate_vgg.py runs/fixed/checkpoint.npz runs/jitter/checkpoint.npz

For each checkpoint: single-scale evaluation (one test scale Q) and
multi-scale evaluation (several Q), each by a central crop, dense
evaluation, multi-crop evaluation, and dense + multi-crop.  The test scales
follow the paper's rule: for a net trained at a fixed S, Q = S single-scale
and {S - d, S, S + d} multi-scale; for a net trained with S jittered in
[S_min, S_max], Q = (S_min + S_max)/2 and {S_min, (S_min + S_max)/2, S_max}.
The paper's d is 32 at S = 256..384; --scale-step sets it for smaller
images.  Scales below the training size are dropped.  With several
checkpoints, their multi-scale posteriors are also fused.

The table is printed and written as JSON to --out.
"""
import argparse
import json

import numpy as np

from minivgg import cli, data
from minivgg.evaluate import METHODS, check_fusable, fuse, posteriors, top_k_error
from minivgg.train import load_vgg


def method_list(text):
    """An argparse type: a comma-separated list of evaluation methods."""
    names = text.split(",")
    unknown = [name for name in names if name not in METHODS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown methods {unknown} in {text!r}; "
                                         f"valid ones are {', '.join(METHODS)}")
    return names


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="checkpoint.npz files written by train_vgg_a.py")
    parser.add_argument("--dataset", default="fashion-mnist", choices=data.DATASETS)
    parser.add_argument("--data", help="data directory (default for Fashion-MNIST: the Debian package's)")
    parser.add_argument("--limit", type=cli.integer(1), help="evaluate on the first N test images only")
    parser.add_argument("--scale-step", type=cli.integer(1), default=4, help="d in {S-d, S, S+d} for fixed-S nets")
    parser.add_argument("--grid", type=cli.integer(1), default=5, help="multi-crop grid per side (the paper: 5)")
    parser.add_argument("--methods", type=method_list, default=",".join(METHODS),
                        help="comma-separated subset of " + ", ".join(METHODS))
    parser.add_argument("--device", type=cli.device, default="cpu")
    parser.add_argument("--out", default="evaluation.json")
    args = parser.parse_args(argv)
    problem = cli.check_writable_file("--out", args.out)
    if problem:
        parser.error(f"argument --out: {problem}")
    return args


def load_net(path, device):
    """The model, its training mean and its metadata from a checkpoint."""
    model, meta = load_vgg(path, "evaluate", device)
    return model.eval(), np.asarray(meta["model"]["mean"], dtype=np.float32), meta["model"]


def load_test_set(args, info):
    """The test images and labels, and their class names: for an image folder, labelled by the net's classes."""
    classes = info.get("classes") if args.dataset == "folder" else None
    (images, labels), _ = data.load_split(args.dataset, "test", args.data, classes=classes)
    if args.limit is not None:
        if args.limit > len(labels):
            raise ValueError(f"--limit {args.limit}: the test set has only {len(labels)} images")
        images, labels = images[:args.limit], labels[:args.limit]
    return images, labels, classes or data.dataset_classes(args.dataset, args.data)


def check_classes(path, info, classes):
    """The net of checkpoint ``path`` was trained on the test set's ``classes``."""
    trained = info.get("classes")  # older checkpoints record only the number of classes
    if (trained is not None and trained != classes) or info["num_classes"] != len(classes):
        raise ValueError(f"evaluate: {path} was trained on {info['num_classes']} classes {trained or ''}, but the "
                         f"test set has the {len(classes)} classes {classes}")


def test_scales(train_scale, train_size, step):
    """(single-scale Q, multi-scale Qs) by the paper's rule, at least the training size."""
    values = [int(v) for v in str(train_scale).split(",")]
    if len(values) == 1:
        s = values[0]
        single, multi = s, [s - step, s, s + step]
    else:
        low, high = values
        single = (low + high) // 2
        multi = [low, single, high]
    return single, [q for q in multi if q >= train_size]


def evaluate_net(net, images, labels, methods, args):
    """Table rows and the multi-scale posteriors of each method, for one (model, mean, info) of ``load_net``."""
    model, mean, info = net
    single, multi = test_scales(info["scale"], info["input_size"], args.scale_step)
    rows, kept = [], {}
    for scales in ([single], multi):
        for method in methods:
            p = posteriors(model, images, method, scales, mean, args.grid, True, args.device)
            rows.append(row(f"VGG-{info['config']}", info["scale"], scales, method, p, labels))
            kept[method] = p
    return rows, kept


def row(net, train_scale, scales, method, p, labels):
    return {"net": net, "train_scale": str(train_scale), "test_scales": ",".join(map(str, scales)),
            "method": method, "top1_error": top_k_error(p, labels, 1), "top5_error": top_k_error(p, labels, 5)}


def format_table(rows):
    header = f"{'net':<12} {'train S':<9} {'test Q':<12} {'method':<18} {'top-1 err':>9} {'top-5 err':>9}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['net']:<12} {r['train_scale']:<9} {r['test_scales']:<12} {r['method']:<18} "
                     f"{100 * r['top1_error']:>8.2f}% {100 * r['top5_error']:>8.2f}%")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    nets = [load_net(path, args.device) for path in args.checkpoints]  # every checkpoint checked first
    images, labels, classes = load_test_set(args, nets[0][2])
    for path, (_, _, info) in zip(args.checkpoints, nets):
        check_classes(path, info, classes)
    rows, fused, train_scales = [], {}, []
    for net in nets:
        new_rows, kept = evaluate_net(net, images, labels, args.methods, args)
        rows += new_rows
        train_scales.append(new_rows[0]["train_scale"])
        for method, p in kept.items():
            fused.setdefault(method, []).append(p)
    if len(nets) > 1:
        check_fusable([model for model, _, _ in nets])
        for method, sets in fused.items():
            rows.append(row("fusion", " + ".join(train_scales), ["multi"], method, fuse(sets), labels))
    table = format_table(rows)
    print(f"{len(labels)} {args.dataset} test images\n{table}")
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump({"images": len(labels), "rows": rows, "checkpoints": args.checkpoints}, out, indent=2)
    return rows


if __name__ == "__main__":
    main()
