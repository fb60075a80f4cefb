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

import cli_common as cli
from cli_common import HelpFormatter, fail
from minivgg import data, models, parallel, summary
from minivgg.evaluate import protocol_scales
from minivgg.models.vgg import DOWNSAMPLING
from minivgg.optim import SGD, PlateauSchedule
from minivgg.train import CHECKPOINT, Trainer, load_vgg, plural

DEFAULT_VAL_SIZE = 5000  # at most; a tenth of the training images where that is fewer
# Settings a resumed run must share with its checkpoint (they define the data, the net and the recipe) ...
REFUSED_ON_RESUME = ("config", "width", "init", "dataset", "train_size", "scale", "val_size", "limit", "batch_size",
                     "seed", "patience", "final_cut")
# ... and those the checkpoint's optimiser state carries, so that a new value is ignored.
KEPT_ON_RESUME = ("lr", "momentum", "weight_decay")
# A checkpoint written before a setting existed ran as this value of it.
SETTINGS_BEFORE = {"final_cut": 0}


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--config", default="A", choices=list(models.CONFIGS),
                        help="row of the paper's Table 1, or B-5x5 (section 4.1: B with each pair of 3x3 "
                             "convolutions replaced by one 5x5)")
    parser.add_argument("--width", type=cli.number(0), default=0.25,
                        help="channel multiplier; 1 is the paper's network")
    parser.add_argument("--epochs", type=cli.integer(1), default=10,
                        help="at most this many epochs in all (a resumed run continues up to this many); the "
                             "schedule may stop sooner (lr cut 3 times)")
    parser.add_argument("--batch-size", type=cli.integer(1), default=64, help="images per SGD step (the paper: 256)")
    parser.add_argument("--lr", type=cli.number(0), default=0.01, help="initial learning rate (the paper: 0.01)")
    parser.add_argument("--momentum", type=cli.number(0, 1, low_included=True), default=0.9,
                        help="SGD momentum (the paper: 0.9)")
    parser.add_argument("--weight-decay", type=cli.number(0, low_included=True), default=5e-4,
                        help="L2 penalty on the weights (the paper: 5e-4)")
    parser.add_argument("--patience", type=cli.integer(1), default=2,
                        help="epochs without a new best validation accuracy before lr /= 10 (with 1, a single "
                             "noisy epoch cuts it: the default run then ended at 90.85%% test accuracy against "
                             "91.42-92.12%% with 2, benchmarks/results/default_run.md)")
    parser.add_argument("--final-cut", type=cli.integer(0), default=2, metavar="K",
                        help="if no plateau has cut the learning rate when K epochs are left, cut it then (0: "
                             "never); a short run may see no plateau (benchmarks/results/default_run.md)")
    parser.add_argument("--init", default="glorot", choices=["paper", "glorot"],
                        help="'paper': N(0, 0.01^2); 'glorot': Glorot uniform (trains from scratch)")
    parser.add_argument("--warm-start", metavar="CHECKPOINT", help="initialise from a trained net A (section 3.1)")
    parser.add_argument("--dataset", default="fashion-mnist", choices=data.DATASETS,
                        help="'folder': --data DIR holds DIR/train/<class>/<image> (training; the validation "
                             "set is held out from it) and DIR/val/<class>/<image> (the test set)")
    parser.add_argument("--data", help="data directory (default for Fashion-MNIST: the Debian package's)")
    parser.add_argument("--download", action="store_true", help="fetch Fashion-MNIST if it is missing")
    parser.add_argument("--train-size", type=cli.integer(DOWNSAMPLING), default=32,
                        help=f"side of the training crops (a multiple of {DOWNSAMPLING})")
    parser.add_argument("--scale", type=cli.scale, default="32",
                        help="training scale S, or S_min,S_max for scale jittering")
    parser.add_argument("--val-size", type=cli.integer(1),
                        help=f"training images held out for validation (default: a tenth of them, at most "
                             f"{DEFAULT_VAL_SIZE})")
    parser.add_argument("--limit", type=cli.integer(1),
                        help="train on a random subset of this many images (smoke runs)")
    parser.add_argument("--device", type=cli.device, default="cpu", help="'cpu', 'cuda' or 'cuda:<i>'")
    parser.add_argument("--distributed", action="store_true",
                        help="data parallel over MPI processes: mpiexec -n 4 python examples/train_vgg_a.py "
                             "--distributed (with --device cuda, one GPU per process and NCCL all-reduce)")
    parser.add_argument("--processes", type=cli.integer(1), default=1, metavar="N",
                        help="data parallel over N processes of this machine, each with its share of the cores "
                             "(CPU only; no MPI needed). On 2 cores, 2 processes train the default run 1.1-1.2x as "
                             "fast as 1, but VGG-A at width 1 at 0.72x (benchmarks/results/parallel.md)")
    parser.add_argument("--comm-timeout", type=cli.number(0), default=60.0,
                        help="with --distributed or --processes: seconds a rank waits for the others before the "
                             "job is aborted "
                             "(longer than rank 0 takes to write a checkpoint and the plot)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from --out/checkpoint.npz: its weights, optimiser and schedule state; the "
                             "data and model settings must not change")
    parser.add_argument("--seed", type=cli.integer(0, 2 ** 32 - 1), default=0,
                        help="fixes the initial weights, the split, the data order, augmentation and dropout")
    parser.add_argument("--out", default="runs/vgg_a", help="directory for the log, curves, checkpoint and result")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def parse_args(argv=None):
    """The flags, each checked (with the checks between flags) before any data is read."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.train_size % DOWNSAMPLING:
        parser.error(f"argument --train-size: expected a multiple of {DOWNSAMPLING} (five 2x2 pools), "
                     f"got {args.train_size}")
    if min(parse_values(args.scale)) < args.train_size:
        parser.error(f"argument --scale: the training scale S must be >= --train-size {args.train_size} "
                     f"(crops are cut from the rescaled image), got {args.scale!r}")
    if args.resume and args.warm_start:
        parser.error("argument --warm-start: cannot be combined with --resume (a resumed run has its own weights)")
    if args.processes > 1 and args.distributed:
        parser.error("argument --processes: cannot be combined with --distributed (MPI starts the processes there)")
    if args.processes > args.batch_size:
        parser.error(f"argument --processes: each of the {args.processes} ranks needs an image of every batch, "
                     f"got --batch-size {args.batch_size}")
    if args.processes > 1 and args.device != "cpu":
        parser.error(f"argument --processes: runs CPU ranks, got --device {args.device}; on GPUs use mpiexec "
                     f"with --distributed")
    problem = cli.check_writable_directory("--out", args.out)
    if problem:
        parser.error(f"argument --out: {problem}")
    return args


def parse_values(text):
    return [int(v) for v in text.split(",")]


def parse_scale(text):
    values = parse_values(text)
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
    """The training, validation and test loaders and the training mean; sets args.val_size to the size used."""
    args.val_size = val_size(args, len(train[1]))
    (images, labels), val = data.train_val_split(*train, args.val_size, seed=args.seed)
    if args.limit is not None:
        if args.limit > len(labels):
            fail(f"--limit {args.limit}: only {len(labels)} training images are left after holding out "
                 f"--val-size {args.val_size} of {len(train[1])}")
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
        try:
            models.warm_start(model, shallow)
        except ValueError as error:  # e.g. B-5x5's 5x5 kernels cannot take A's 3x3 ones
            fail(f"--warm-start {args.warm_start}: {error}")
    return model.to(args.device)


def make_communicator(args):
    """None on one device; with --distributed, MPI (and NCCL on GPUs), each rank on its own GPU, or on the
    CPU with its share of the machine's cores (``parallel.share_cores``)."""
    if not args.distributed:
        return None
    mpi = parallel.MpiCommunicator(timeout=args.comm_timeout)
    if not args.device.startswith("cuda"):
        parallel.share_cores(mpi.ranks_here)
        return mpi
    import cupy
    args.device = f"cuda:{mpi.rank % cupy.cuda.runtime.getDeviceCount()}"
    cupy.cuda.Device(int(args.device.split(":")[1])).use()
    return parallel.NcclCommunicator(mpi)


def check_ranks(args, communicator, meta, loader):
    """Every rank has the same settings and data, and every batch gives each rank at least one sample."""
    settings = {f"--{key.replace('_', '-')}": value for key, value in meta["settings"].items()}
    parallel.check_agreement(communicator, {**settings, "the training data (a hash)": meta["data_hash"],
                                            "--epochs": args.epochs, "--resume": args.resume})
    problem = parallel.check_batches_split(len(loader.labels), args.batch_size, communicator.size)
    if problem:
        flag = f"--processes {args.processes}" if args.processes > 1 else "--distributed"
        fail(f"{flag}: {problem}; choose --batch-size and --limit so that every batch has at least "
             f"{communicator.size} images")


def resume(args, trainer, meta):
    """Load --out's checkpoint after checking it fits this run; prints what is kept from it."""
    saved = trainer.load_checkpoint(os.path.join(args.out, CHECKPOINT), check=lambda saved: check_resume(
        args, meta, saved))["model"]
    ignored = [f"--{key.replace('_', '-')} {getattr(args, key)!r}" for key in KEPT_ON_RESUME
               if saved["settings"][key] != getattr(args, key)]
    optimizer = trainer.optimizer
    if trainer.leader:
        print(f"resumed from epoch {trainer.epoch} of {args.out}: kept its weights, velocities, schedule and "
              f"optimiser (lr {optimizer.lr:g}, momentum {optimizer.momentum:g}, weight decay "
              f"{optimizer.weight_decay:g})" + (f"; ignored {', '.join(ignored)}" if ignored else ""))


def check_resume(args, meta, checkpoint):
    """Refuse a checkpoint whose data or model settings differ from this run's, or that has nothing left to do."""
    path, saved = os.path.join(args.out, CHECKPOINT), checkpoint["model"]
    for key in ("settings", "data_hash", "classes"):
        if key not in saved:
            fail(f"--resume: the checkpoint {path} does not record its {key}, so this run cannot be checked "
                 f"against it; start a new run with another --out")
    before = {key: saved["settings"].get(key, SETTINGS_BEFORE.get(key)) for key in REFUSED_ON_RESUME}
    changed = [f"--{key.replace('_', '-')} {before[key]!r} -> {meta['settings'][key]!r}"
               for key in REFUSED_ON_RESUME if before[key] != meta["settings"][key]]
    changed += [f"the {what} differ from the checkpoint's" for what, key in (("training data", "data_hash"),
                                                                               ("classes", "classes"))
                if saved[key] != meta[key]]
    if changed:
        fail(f"--resume: this run's settings differ from those of the checkpoint {path}: {'; '.join(changed)}. "
             f"A resumed run keeps the data and model settings; start a new run with another --out to change them")
    if checkpoint["epoch"] >= args.epochs or checkpoint["schedule"]["finished"]:
        reason = ("its schedule has finished" if checkpoint["schedule"]["finished"]
                  else f"it is at epoch {checkpoint['epoch']}")
        fail(f"--resume: nothing left to train: {reason} and --epochs is {args.epochs}")


def main(argv=None):
    with parallel.abort_on_error():  # under mpiexec, an error on any rank (a bad flag too) ends the whole job
        args = parse_args(argv)
        if args.processes > 1:
            return run_processes(args)
        return run(args, make_communicator(args))


def run_processes(args):
    """``run`` in --processes ranks (``parallel.launch``); returns rank 0's result.json."""
    try:
        parallel.launch(run, (args,), args.processes, args.comm_timeout)
    except parallel.RankFailed as error:
        fail(f"--processes {args.processes}: {error}")
    with open(os.path.join(args.out, "result.json"), encoding="utf-8") as file:
        return json.load(file)


def run(args, communicator):
    """Load the data, build the net, train it (or resume) and write result.json; returns the result."""
    train, num_classes = data.load_split(args.dataset, "train", args.data, args.download)
    test, _ = data.load_split(args.dataset, "test", args.data, args.download)
    loader, val_loader, test_loader, mean = make_loaders(args, train, test)
    model = build_model(args, num_classes, in_channels=train[0][0].shape[0])
    sizes = {"train_images": len(loader.labels), "val_images": len(val_loader.labels),
             "test_images": len(test_loader.labels)}
    meta = {"config": args.config, "width": args.width, "num_classes": num_classes, "input_size": args.train_size,
            "in_channels": model.in_channels, "scale": args.scale, "dataset": args.dataset,
            "data": args.data and os.path.abspath(args.data), "mean": [float(m) for m in mean],
            "classes": data.dataset_classes(args.dataset, args.data), "data_hash": data.fingerprint(*train),
            "settings": {key: getattr(args, key) for key in REFUSED_ON_RESUME + KEPT_ON_RESUME}}
    if communicator is not None:
        check_ranks(args, communicator, meta, loader)
    if communicator is None or communicator.rank == 0:   # what Trainer.leader will say
        print(summary(model, (model.in_channels, args.train_size, args.train_size)))
        print(f"{args.dataset}: {sizes['train_images']} training images, {sizes['val_images']} validation images "
              f"(held out of the training set), {sizes['test_images']} test images")
    optimizer = SGD(model.parameters(), args.lr, args.momentum, args.weight_decay)
    schedule = PlateauSchedule(optimizer, patience=args.patience, final_cut=args.final_cut)
    trainer = Trainer(model, optimizer, schedule, loader, val_loader, args.out, args.device, args.seed,
                      progress=not args.no_progress, meta=meta, communicator=communicator)
    if args.resume:
        resume(args, trainer, meta)
    start = time.perf_counter()
    history = trainer.fit(args.epochs)
    test_stats = trainer.evaluate(test_loader)
    result = {"test_top1_error": test_stats["top1_error"], "test_top5_error": test_stats["top5_error"],
              "test_accuracy": 1 - test_stats["top1_error"], "epochs": trainer.epoch,
              "stop_reason": trainer.stop_reason, "wall_seconds_this_run": time.perf_counter() - start,
              "train_images_per_second": [h["images_per_second"] for h in history], **sizes, **meta}
    if trainer.leader:
        with open(os.path.join(args.out, "result.json"), "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)
        print(final_line(result, args.out))
    if communicator is not None:  # a rank stuck before here ends the job (timeout, abort), not in MPI_Finalize
        communicator.barrier("the end of the run")
    return result


def final_line(result, out):
    """The last line of a run: the test accuracy and errors, and where the curves are."""
    top5 = "" if result["test_top5_error"] is None else f", top-5 error {result['test_top5_error']:.4f}"
    curves = os.path.join(out, "curves.png")  # matplotlib is optional
    return (f"test accuracy {result['test_accuracy']:.4f} on {result['test_images']} test images (top-1 error "
            f"{result['test_top1_error']:.4f}{top5}) after {plural(result['epochs'], 'epoch')}"
            + (f"; curves in {curves}" if os.path.exists(curves) else ""))


if __name__ == "__main__":
    main()
