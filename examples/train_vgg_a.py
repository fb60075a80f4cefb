"""Train VGG-A (or any configuration of Table 1) with the paper's recipe.

    python examples/train_vgg_a.py                      # VGG-A, width 1/4, Fashion-MNIST
    python examples/train_vgg_a.py --width 1 --epochs 74 # the paper's widths
    python examples/train_vgg_a.py --config D --warm-start runs/vgg_a/checkpoint.npz

The recipe (section 3.1 of the paper): SGD with momentum 0.9 and weight
decay 5e-4, dropout 0.5 on the first two FC layers, the learning rate
divided by 10 when the validation accuracy stops improving (at most three
times), random crops of rescaled images (optionally with the scale S
jittered per image), random horizontal flips, the RGB colour shift on
colour data, and mean subtraction.  The 28x28 Fashion-MNIST images are
zero-padded to 32x32 so that the five max-pools divide them evenly.

Everything is written to --out: log.jsonl, curves.png, checkpoint.npz and
result.json (the final test errors).

Your own images: --dataset folder --data DIR, where DIR/train/<class>/ holds
the training images (--val-size of them are held out as the validation set
that drives the learning-rate schedule) and DIR/val/<class>/ the test images
(used once, for the final test error, and by evaluate_vgg.py), e.g.

    python examples/train_vgg_a.py --dataset folder --data DIR --train-size 64 --scale 72
"""
import argparse
import json
import os
import time

from cli_common import HelpFormatter, fail
from minivgg import data, models, parallel, summary
from minivgg.evaluate import protocol_scales
from minivgg.optim import SGD, PlateauSchedule
from minivgg.train import Trainer, load_vgg, plural

DEFAULT_VAL_SIZE = 5000  # at most; a tenth of the training images where that is fewer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--config", default="A", choices=list(models.TABLE_1), help="row of the paper's Table 1")
    parser.add_argument("--width", type=float, default=0.25, help="channel multiplier; 1 is the paper's network")
    parser.add_argument("--epochs", type=int, default=10,
                        help="at most this many epochs; the schedule may stop sooner (lr cut 3 times)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per SGD step (the paper: 256)")
    parser.add_argument("--lr", type=float, default=0.01, help="initial learning rate (the paper: 0.01)")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (the paper: 0.9)")
    parser.add_argument("--weight-decay", type=float, default=5e-4, help="L2 penalty on the weights (the paper: 5e-4)")
    parser.add_argument("--patience", type=int, default=1, help="epochs without improvement before lr /= 10")
    parser.add_argument("--init", default="glorot", choices=["paper", "glorot"],
                        help="'paper': N(0, 0.01^2); 'glorot': Glorot uniform (trains from scratch)")
    parser.add_argument("--warm-start", metavar="CHECKPOINT", help="initialise from a trained net A (section 3.1)")
    parser.add_argument("--dataset", default="fashion-mnist", choices=data.DATASETS,
                        help="'folder': --data DIR holds DIR/train/<class>/<image> (training; the validation "
                             "set is held out from it) and DIR/val/<class>/<image> (the test set)")
    parser.add_argument("--data", help="data directory (default for Fashion-MNIST: the Debian package's)")
    parser.add_argument("--download", action="store_true", help="fetch Fashion-MNIST if it is missing")
    parser.add_argument("--train-size", type=int, default=32, help="side of the training crops")
    parser.add_argument("--scale", default="32", help="training scale S, or S_min,S_max for scale jittering")
    parser.add_argument("--val-size", type=int,
                        help=f"training images held out for validation (default: a tenth of them, at most "
                             f"{DEFAULT_VAL_SIZE})")
    parser.add_argument("--limit", type=int, help="train on a random subset of this many images (smoke runs)")
    parser.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'cuda:<i>'")
    parser.add_argument("--distributed", action="store_true",
                        help="data parallel over MPI processes: mpiexec -n 4 python examples/train_vgg_a.py "
                             "--distributed (with --device cuda, one GPU per process and NCCL all-reduce)")
    parser.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.npz")
    parser.add_argument("--seed", type=int, default=0,
                        help="fixes the initial weights, the split, the data order, augmentation and dropout")
    parser.add_argument("--out", default="runs/vgg_a", help="directory for the log, curves, checkpoint and result")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def parse_scale(text):
    values = [int(v) for v in text.split(",")]
    return values[0] if len(values) == 1 else tuple(values)


def val_size(args, train_count):
    """--val-size, or its default for ``train_count`` training images; exits with a one-line error if it cannot fit."""
    size = args.val_size if args.val_size is not None else max(1, min(DEFAULT_VAL_SIZE, train_count // 10))
    if train_count < 2:
        fail(f"the training set has {train_count} image(s); at least 2 are needed (one to train on, one to "
             f"validate with)")
    if not 0 < size < train_count:
        fail(f"--val-size {size} does not fit: the training set has {train_count} images, so --val-size must be "
             f"in 1..{train_count - 1}")
    return size


def make_loaders(args, train, test):
    (images, labels), val = data.train_val_split(*train, val_size(args, len(train[1])), seed=args.seed)
    if args.limit:
        images, labels = data.random_subset(images, labels, args.limit, seed=args.seed)
    mean = data.compute_mean(images)
    pca = data.compute_pca(images) if images[0].shape[0] == 3 else None
    train_transform = data.TrainTransform(args.train_size, parse_scale(args.scale), flip=True, pca=pca, mean=mean)
    test_scale, _ = protocol_scales(args.scale, args.train_size)  # the central crop at Q of evaluate_vgg.py
    test_transform = data.TestTransform(args.train_size, mean=mean, scale=test_scale)
    loader = data.DataLoader(images, labels, args.batch_size, train_transform, shuffle=True, seed=args.seed)
    val_loader = data.DataLoader(*val, 256, test_transform, shuffle=False)
    test_loader = data.DataLoader(*test, 256, test_transform, shuffle=False)
    return loader, val_loader, test_loader, mean


def build_model(args, num_classes, in_channels):
    model = models.vgg(args.config, num_classes, in_channels, args.train_size, args.width, args.init, args.seed)
    if args.warm_start:
        shallow, _ = load_vgg(args.warm_start, "warm-start")
        models.warm_start(model, shallow)
    return model.to(args.device)


def make_communicator(args):
    """One device (rank 0 of 1); with --distributed, MPI (and NCCL on GPUs), each rank on its own GPU."""
    if not args.distributed:
        return parallel.SingleDevice()
    mpi = parallel.MpiCommunicator()
    if not args.device.startswith("cuda"):
        return mpi
    import cupy
    args.device = f"cuda:{mpi.rank % cupy.cuda.runtime.getDeviceCount()}"
    cupy.cuda.Device(int(args.device.split(":")[1])).use()
    return parallel.NcclCommunicator(mpi)


def main(argv=None):
    args = parse_args(argv)
    communicator = make_communicator(args)
    train, num_classes = data.load_split(args.dataset, "train", args.data, args.download)
    test, _ = data.load_split(args.dataset, "test", args.data, args.download)
    loader, val_loader, test_loader, mean = make_loaders(args, train, test)
    model = build_model(args, num_classes, in_channels=train[0][0].shape[0])
    sizes = {"train_images": len(loader.labels), "val_images": len(val_loader.labels),
             "test_images": len(test_loader.labels)}
    if communicator.rank == 0:
        print(summary(model, (model.in_channels, args.train_size, args.train_size)))
        print(f"{args.dataset}: {sizes['train_images']} training images, {sizes['val_images']} validation images "
              f"(held out of the training set), {sizes['test_images']} test images")
    optimizer = SGD(model.parameters(), args.lr, args.momentum, args.weight_decay)
    schedule = PlateauSchedule(optimizer, patience=args.patience)
    meta = {"config": args.config, "width": args.width, "num_classes": num_classes, "input_size": args.train_size,
            "in_channels": model.in_channels, "scale": args.scale, "dataset": args.dataset,
            "data": args.data and os.path.abspath(args.data), "mean": [float(m) for m in mean]}
    trainer = Trainer(model, optimizer, schedule, loader, val_loader, args.out, args.device, args.seed,
                      progress=not args.no_progress, meta=meta, communicator=communicator)
    if args.resume:
        trainer.load_checkpoint()
        print(f"resumed from epoch {trainer.epoch} of {args.out}")
    start = time.perf_counter()
    history = trainer.fit(args.epochs)
    test_stats = trainer.evaluate(test_loader)
    result = {"test_top1_error": test_stats["top1_error"], "test_top5_error": test_stats["top5_error"],
              "test_accuracy": 1 - test_stats["top1_error"], "epochs": trainer.epoch,
              "stop_reason": trainer.stop_reason, "wall_seconds_this_run": time.perf_counter() - start,
              "train_images_per_second": [h["images_per_second"] for h in history], **sizes, **meta}
    if not trainer.leader:
        return result
    with open(os.path.join(args.out, "result.json"), "w", encoding="utf-8") as out:
        json.dump(result, out, indent=2)
    print(final_line(result, args.out))
    return result


def final_line(result, out):
    """The last line of a run: the test accuracy and errors, and where the curves are."""
    top5 = "" if result["test_top5_error"] is None else f", top-5 error {result['test_top5_error']:.4f}"
    return (f"test accuracy {result['test_accuracy']:.4f} on {result['test_images']} test images (top-1 error "
            f"{result['test_top1_error']:.4f}{top5}) after {plural(result['epochs'], 'epoch')}; "
            f"curves in {os.path.join(out, 'curves.png')}")


if __name__ == "__main__":
    main()
