"""Evaluate trained VGG checkpoints with the paper's test protocol (Tables 3 to 6).

    python examples/evaluate_vgg.py runs/fixed/checkpoint.npz runs/jitter/checkpoint.npz

For each checkpoint: single-scale evaluation (one test scale Q) and
multi-scale evaluation (several Q), each by a central crop, dense
evaluation, multi-crop evaluation, and dense + multi-crop.  The test scales
follow the paper's rule: for a net trained at a fixed S, Q = S single-scale
and {S - d, S, S + d} multi-scale; for a net trained with S jittered in
[S_min, S_max], Q = (S_min + S_max)/2 and {S_min, (S_min + S_max)/2, S_max}.
The paper's d is 32 for its 224 crops; by default d keeps that ratio to the
crop size (4 at 32).  Scales below the training size are dropped.  With
several checkpoints, their multi-scale posteriors are also fused.

The test set comes from the checkpoints: the dataset and data directory they
were trained on (for an image folder, DIR/val: the images training never
saw), unless --dataset or --data say otherwise.  Each net gets its own
preprocessing: its training mean (and, for imported torchvision weights,
its std).  Every row is labelled by its checkpoint's run directory; the top-5
error is shown only for more than five classes.  The table is printed and
written as JSON beside the first checkpoint (evaluation.json) or to --out.
"""
import argparse
import json
import os

import cli_common as cli
from cli_common import HelpFormatter, fail
from minivgg import data
from minivgg.evaluate import METHODS, check_fusable, fuse, posteriors, protocol_scales, top_k_error
from minivgg.train import CHECKPOINT, load_vgg, progress_bar


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
                                     formatter_class=HelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="checkpoint.npz files written by train_vgg_a.py "
                                                       "(or by import_torchvision.py)")
    parser.add_argument("--dataset", choices=data.DATASETS, help="test set (default: the checkpoints' dataset)")
    parser.add_argument("--data", help="data directory (default: the checkpoints'; for Fashion-MNIST, the "
                                       "Debian package's); for 'folder', its val/ is the test set")
    parser.add_argument("--limit", type=cli.integer(1),
                        help="evaluate on N test images drawn at random (the same N each run)")
    parser.add_argument("--scale-step", type=cli.integer(1), help="d in {S-d, S, S+d} for fixed-S nets "
                                                                  "(default: the crop size / 7, the paper's 32 at 224)")
    parser.add_argument("--grid", type=cli.integer(1), default=5, help="multi-crop grid per side (the paper: 5)")
    parser.add_argument("--methods", type=method_list, default=",".join(METHODS),
                        help="comma-separated subset of " + ", ".join(METHODS))
    parser.add_argument("--batch-size", type=cli.integer(1),
                        help="images per batch (default: 250 at 32x32, 5 at 224x224)")
    parser.add_argument("--device", type=cli.device, default="cpu", help="'cpu', 'cuda' or 'cuda:<i>'")
    parser.add_argument("--out", help="JSON file of the table (default: evaluation.json beside the first checkpoint)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    problem = args.out and cli.check_writable_file("--out", args.out)
    if problem:
        parser.error(f"argument --out: {problem}")
    return args


def run_label(path):
    """A checkpoint's name in the table: its run directory (runs/fixed for runs/fixed/checkpoint.npz)."""
    directory, name = os.path.split(os.path.normpath(path))
    return directory if name == CHECKPOINT and directory else path


def shared_setting(infos, key, default, paths, flag):
    """The value of ``key`` that every checkpoint records; a one-line error when they differ."""
    values = {path: info.get(key, default) for path, info in zip(paths, infos)}
    if len(set(values.values())) > 1:
        listed = ", ".join(f"{path}: {value}" for path, value in values.items())
        fail(f"the checkpoints were trained on different {key} settings ({listed}); choose one with {flag}")
    return next(iter(values.values()))


def test_set(args, infos):
    """(images, labels, number of classes, dataset, data directory) of the test split."""
    trained_on = shared_setting(infos, "dataset", "fashion-mnist", args.checkpoints, "--dataset")
    dataset = args.dataset or trained_on
    root = args.data
    if root is None and dataset == trained_on:
        root = shared_setting(infos, "data", None, args.checkpoints, "--data")
    classes = infos[0].get("classes") if dataset == "folder" and dataset == trained_on else None
    try:  # an image folder's labels follow the classes the net was trained on (val/ must have just those)
        (images, labels), num_classes = data.load_split(dataset, "test", root, classes=classes)
    except (FileNotFoundError, ValueError) as error:
        fail(f"cannot read the {dataset} test set: {error}")
    if args.limit is not None:
        if args.limit > len(labels):
            fail(f"--limit {args.limit}: the {dataset} test set has only {len(labels)} images")
        images, labels = data.random_subset(images, labels, args.limit, seed=0)
    return images, labels, num_classes, dataset, root


def check_fits(path, model, info, num_classes, channels, dataset, root):
    """A one-line error unless the net predicts the test set's classes from its kind of images."""
    if model.num_classes != num_classes:
        fail(f"{path} predicts {model.num_classes} classes, but the {dataset} test set has {num_classes}")
    trained, classes = info.get("classes"), data.dataset_classes(dataset, root) if dataset != "folder" else None
    if trained is not None and classes is not None and trained != classes:
        fail(f"{path} was trained on the classes {trained}, but the {dataset} test set has the classes {classes}")
    if model.in_channels != channels:
        fail(f"{path} takes {model.in_channels}-channel images, but the {dataset} test images have {channels}")


def evaluate_checkpoint(label, model, info, images, labels, methods, args, bar):
    """Table rows and the multi-scale posteriors of each method, for one checkpoint."""
    single, multi = protocol_scales(info["scale"], info["input_size"], args.scale_step)
    mean, std = info["mean"], info.get("std")
    rows, kept = [], {}
    for scales in ([single], multi):
        kept = {}
        for method in methods:
            if method == "dense+multi-crop" and {"dense", "multi-crop"} <= kept.keys():
                p = (kept["dense"] + kept["multi-crop"]) / 2  # the average of the two, already computed
                bar.update(len(labels))
            else:
                p = posteriors(model, images, method, scales, mean, args.grid, True, args.device, args.batch_size,
                               std, progress=bar.update)
            kept[method] = p
            rows.append(row(label, f"VGG-{info['config']}", info["scale"], scales, method, p, labels))
    return rows, kept


def row(run, net, train_scale, scales, method, p, labels):
    top5 = top_k_error(p, labels, 5) if p.shape[1] > 5 else None
    return {"run": run, "net": net, "train_scale": str(train_scale), "test_scales": ",".join(map(str, scales)),
            "method": method, "top1_error": top_k_error(p, labels, 1), "top5_error": top5}


def format_table(rows):
    """The rows as a text table; the top-5 column only where there are more than five classes."""
    columns = [("run", "run"), ("net", "net"), ("train S", "train_scale"), ("test Q", "test_scales"),
               ("method", "method")]
    widths = [max(len(title), *(len(r[key]) for r in rows)) for title, key in columns]
    errors = [("top-1 err", "top1_error")] + ([("top-5 err", "top5_error")] if rows[0]["top5_error"] is not None
                                              else [])
    header = " ".join(f"{title:<{w}}" for (title, _), w in zip(columns, widths))
    header += "".join(f" {title:>9}" for title, _ in errors)
    lines = [header, "-" * len(header)]
    for r in rows:
        line = " ".join(f"{r[key]:<{w}}" for (_, key), w in zip(columns, widths))
        lines.append(line + "".join(f" {100 * r[key]:>8.2f}%" for _, key in errors))
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    methods = args.methods
    nets = [load_vgg(path, "evaluate", args.device) for path in args.checkpoints]
    infos = [meta["model"] for _, meta in nets]
    images, labels, num_classes, dataset, root = test_set(args, infos)
    source = f" from {os.path.join(root, 'val')}" if dataset == "folder" else ""
    print(f"{len(labels)} {dataset} test images{source}, {num_classes} classes")
    rows, fused, train_scales = [], {}, []
    for path, (model, _), info in zip(args.checkpoints, nets, infos):
        check_fits(path, model, info, num_classes, images[0].shape[0], dataset, root)
        label = run_label(path)
        with progress_bar(2 * len(methods) * len(labels), f"evaluating {label}", not args.no_progress,
                          unit="image") as bar:
            new_rows, kept = evaluate_checkpoint(label, model.eval(), info, images, labels, methods, args, bar)
        rows += new_rows
        train_scales.append(str(info["scale"]))
        for method, p in kept.items():
            fused.setdefault(method, []).append(p)
    if len(args.checkpoints) > 1:
        check_fusable([model for model, _ in nets])
        configs = " + ".join(f"VGG-{info['config']}" for info in infos)
        for method, sets in fused.items():
            rows.append(row("fusion", configs, " + ".join(train_scales), ["multi"], method, fuse(sets), labels))
    print(format_table(rows))
    out = args.out or os.path.join(os.path.dirname(args.checkpoints[0]), "evaluation.json")
    with open(out, "w", encoding="utf-8") as file:
        json.dump({"images": len(labels), "dataset": dataset, "data": root, "classes": num_classes, "rows": rows,
                   "checkpoints": args.checkpoints}, file, indent=2)
    print(f"written to {out}")
    return rows


if __name__ == "__main__":
    main()
