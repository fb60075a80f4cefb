"""Floor 5: the training loop of the paper, with validation, logs, plots and checkpoints.

One epoch is: for every batch, forward, softmax cross-entropy, backward, one
SGD step.  After each epoch the model is evaluated on the validation set
(top-1 and top-5 error), the learning-rate schedule sees the validation
accuracy, a line is appended to ``log.jsonl``, the curves are redrawn in
``curves.png`` and a checkpoint is written atomically to ``checkpoint.npz``.
The checkpoint comes first and is written only when the weights and the
validation loss are finite; the log then agrees with it: on resume it is
rewritten from the checkpoint's history, and the temporary files of a killed
run are removed.

Randomness has no hidden state: the data order and augmentation are keyed by
(seed, epoch, sample) in the loader, and dropout by (seed, step, layer,
sample) in the kernel.  So a checkpoint needs only the weights, the
velocities, the schedule, the epoch and the step counter to resume a run
exactly, bit for bit.
"""
import json
import math
import numbers
import os
import re
import time

import numpy as np

from . import functional as F
from . import models
from .autograd import Tensor, no_grad
from .backend import get_array_module, move_array
from .metrics import top_k_error
from .nn import read_npz, save_arrays, set_dropout_state
from .parallel import SingleDevice, allreduce_gradients, check_replicas, checksum, even_part, shard_bounds

CHECKPOINT = "checkpoint.npz"
LOG = "log.jsonl"
PLOT = "curves.png"


# what a killed run leaves behind: save_arrays' and plot_curves' temporary files, named after their writer's pid
TEMPORARY = re.compile(r"(checkpoint\.npz|curves\.png|log\.jsonl)\.tmp-(?P<pid>\d+)(\.png)?")


class TrainingDiverged(RuntimeError):
    """The loss, the validation loss or the weights became NaN or infinite."""


class CheckpointError(ValueError):
    """A checkpoint is not one this module wrote, or is damaged; the message names the command and the file."""


class Trainer:
    """Trains ``model`` with ``optimizer`` and ``schedule`` on batches of (x, labels, indices).

    ``train_loader`` and ``val_loader`` yield ``(x, labels, indices)`` and
    have ``set_epoch(e)`` and ``len()`` (see ``minivgg.data.DataLoader``);
    with a ``communicator`` of several ranks, also ``iterate(part)``.
    Everything the run writes goes to ``out_dir``.
    """

    def __init__(self, model, optimizer, schedule, train_loader, val_loader, out_dir, device="cpu", seed=0,
                 progress=True, meta=None, communicator=None, check_every=100):
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.train_loader, self.val_loader = train_loader, val_loader
        self.out_dir, self.device, self.seed = out_dir, device, seed
        self.communicator = communicator or SingleDevice()
        self.check_every = check_every  # steps between checks that the replicas' weights agree
        self.leader = self.communicator.rank == 0  # only rank 0 prints and writes files
        self.progress = progress and self.leader
        self.meta = meta or {}  # how to rebuild the model: stored in the checkpoint
        self.epoch, self.step, self.history = 0, 0, []
        self.stop_reason = None  # set by fit: why the run ended
        self.checkpoint_epoch = None  # the epoch of the checkpoint of this run on disk (written or resumed)
        if self.leader:
            os.makedirs(out_dir, exist_ok=True)

    # --- the loop --------------------------------------------------------------
    def fit(self, epochs):
        """Train until ``epochs`` epochs are done or the schedule stops; returns the history.

        Prints one line per epoch, each cut of the learning rate, and at the
        end why the run stopped (also kept in ``stop_reason``).
        """
        if self.leader:
            remove_stale_temporaries(self.out_dir)
            self.rewrite_log()
        while self.epoch < epochs and not self.schedule.finished:
            lr = self.optimizer.lr  # the rate this epoch trains with; the schedule may cut it after
            train_stats = self.train_epoch()
            val_stats = self.evaluate(self.val_loader, "validation")
            self.check_finite(val_stats["loss"])
            self.epoch += 1
            go_on = self.schedule.step(1.0 - val_stats["top1_error"], epochs_left=epochs - self.epoch)
            record = {"epoch": self.epoch, "lr": lr, **train_stats,
                      **{f"val_{k}": v for k, v in val_stats.items()}}
            self.history.append(record)
            if self.leader:  # the checkpoint first: a log line always has its checkpoint
                self.save_checkpoint()
                self.write_log(record)
                plot_curves(self.history, os.path.join(self.out_dir, PLOT))
            self.checkpoint_epoch = self.epoch
            self.say(epoch_line(record, epochs))
            if self.optimizer.lr != lr:
                self.say(f"{cut_reason(self.schedule)}: learning rate {lr:g} -> {self.optimizer.lr:g} "
                         f"(cut {self.schedule.decreases} of {self.schedule.max_decreases})")
            if not go_on:
                break
        self.stop_reason = self.why_stopped(epochs)
        self.say(self.stop_reason)
        return self.history

    def check_finite(self, val_loss):
        """Raise TrainingDiverged unless the validation loss, the weights and the velocities are all finite."""
        if not math.isfinite(val_loss):
            raise self.diverged(f"the validation loss became {val_loss}")
        state = [p.data for p in self.model.parameters()] + [v for v in self.optimizer.velocities if v is not None]
        if not math.isfinite(checksum(state)):
            raise self.diverged("the weights or the optimiser's velocities became NaN or infinite")

    def diverged(self, what):
        """A TrainingDiverged error saying what went wrong and which checkpoint of this run exists, if any."""
        path = os.path.join(self.out_dir, CHECKPOINT)
        if self.checkpoint_epoch is None:
            earlier = f" ({path} is from an earlier run)" if os.path.exists(path) else ""
            kept = f"No checkpoint of this run was written{earlier}"
        else:
            kept = f"The last good checkpoint is {path}, at epoch {self.checkpoint_epoch}"
        return TrainingDiverged(f"train: {what} at epoch {self.epoch + 1}, step {self.step}; stopping. {kept} "
                                f"(try a smaller --lr)")

    def why_stopped(self, epochs):
        """One line saying why ``fit`` ended."""
        if self.schedule.finished:
            return (f"stopped after epoch {self.epoch}: learning rate cut {plural(self.schedule.decreases, 'time')} "
                    f"and validation accuracy stopped improving again: stopping, as the paper does")
        return f"stopped after epoch {self.epoch}: reached the limit of {plural(epochs, 'epoch')}"

    def say(self, line):
        """Print ``line`` on the leading rank (the only one that writes)."""
        if self.leader:
            print(line, flush=True)

    def train_epoch(self):
        self.model.train()
        self.train_loader.set_epoch(self.epoch)
        totals = {"loss": 0.0, "correct": 0, "seen": 0}
        start = time.perf_counter()
        with progress_bar(len(self.train_loader), f"epoch {self.epoch + 1}", self.progress) as bar:
            for x, labels, _ in self.batches(self.train_loader, shard_bounds):
                loss, correct = self.train_step(x, labels)
                totals["loss"] += loss * len(labels)
                totals["correct"] += correct
                totals["seen"] += len(labels)
                elapsed = time.perf_counter() - start
                bar.update(1, loss=loss, acc=totals["correct"] / totals["seen"], ips=totals["seen"] / elapsed)
        seconds = time.perf_counter() - start
        return {"train_loss": totals["loss"] / totals["seen"], "train_accuracy": totals["correct"] / totals["seen"],
                "images_per_second": totals["seen"] / seconds, "epoch_seconds": seconds}

    def batches(self, loader, split):
        """``loader``'s batches; with several ranks, x holds only this rank's part of each batch, as
        ``split(batch length, ranks, rank)`` gives it (so each rank transforms only its own images)."""
        comm = self.communicator
        if comm.size == 1:
            return iter(loader)
        return loader.iterate(part=lambda length: split(length, comm.size, comm.rank))

    def train_step(self, x, labels):
        """One SGD step on a batch; returns (mean loss, number of correct top-1 predictions).

        With a communicator of several ranks, this rank computes only its
        shard of the batch and the gradients are all-reduced before the step
        (see ``minivgg.parallel``); with one rank the shard is the batch.
        ``x`` holds the whole batch's inputs, or only this shard's
        (``batches``); ``labels`` are the whole batch's.
        """
        comm = self.communicator
        start, stop = shard_bounds(len(labels), comm.size, comm.rank)
        if len(x) == len(labels):
            x = x[start:stop]
        elif len(x) != stop - start:
            raise ValueError(f"train_step: expected the inputs of the batch of {len(labels)} labels, or of rank "
                             f"{comm.rank}'s shard of {stop - start}, got {len(x)}")
        set_dropout_state(self.model, seed=self.seed, step=self.step, sample_offset=start)
        shard_labels = move_array(labels[start:stop], "cpu")  # host labels: the loss checks and uploads them once
        logits = self.model(Tensor(self.to_device(x)))
        loss = F.softmax_cross_entropy(logits, shard_labels)
        if comm.size > 1:
            loss = loss * ((stop - start) / len(labels))
        self.optimizer.zero_grad()
        loss.backward()
        value, predictions = read_loss_and_predictions(loss, logits)
        correct = int((predictions == shard_labels).sum())
        if comm.size > 1:
            value, correct = allreduce_gradients(comm, self.model.parameters(), [value, correct])
        if not math.isfinite(value):
            raise self.diverged(f"the loss became {value}")
        self.optimizer.step()
        self.step += 1
        if comm.size > 1 and self.step % self.check_every == 0:
            state = [p.data for p in self.model.parameters()] + [v for v in self.optimizer.velocities if v is not None]
            check_replicas(comm, state, self.step)
        return float(value), int(correct)

    def evaluate(self, loader, description="test"):
        """Mean loss and top-1 / top-5 error of the model on ``loader``, in evaluation mode.

        The top-5 error is None for five classes or fewer, where it is always 0.
        With several ranks, each evaluates its part of every batch (``even_part``).
        """
        self.model.eval()
        loader.set_epoch(0)
        comm = self.communicator
        totals, classes = np.zeros(4), 0   # loss sum, top-1 and top-5 errors, images seen; logits' classes
        with no_grad(), progress_bar(len(loader), description, self.progress) as bar:
            for x, labels, _ in self.batches(loader, even_part):
                start, stop = even_part(len(labels), comm.size, comm.rank)
                if stop > start:   # a batch of fewer images than ranks leaves some ranks none
                    part, classes = self.evaluate_part(x, labels[start:stop])
                    totals += part
                bar.update(1, top1_error=totals[1] / max(totals[3], 1))
        if comm.size > 1:   # every rank evaluated its part of each batch: add the parts up, in rank order
            totals = np.array([sum(comm.allgather(float(total))) for total in totals])
            classes = max(comm.allgather(classes))
        self.model.train()
        loss_sum, top1, top5, seen = totals
        return {"loss": loss_sum / seen, "top1_error": float(top1 / seen),
                "top5_error": float(top5 / seen) if classes > 5 else None}

    def evaluate_part(self, x, labels):
        """(loss sum, top-1 errors, top-5 errors, images) of the model on a batch or part, and its classes."""
        logits = self.model(Tensor(self.to_device(x)))
        loss = F.softmax_cross_entropy(logits, move_array(labels, self.device)).item()
        errors = [top_k_error(logits.data, labels, k) * len(labels) for k in (1, 5)]
        return np.array([loss * len(labels), *errors, len(labels)]), logits.shape[1]

    def to_device(self, x):
        return x if self.device == "cpu" else move_array(x, self.device)

    # --- what the run leaves behind ------------------------------------------------
    def write_log(self, record):
        with open(os.path.join(self.out_dir, LOG), "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")

    def rewrite_log(self):
        """Make ``log.jsonl`` hold exactly the history so far (that of the checkpoint, on resume), atomically."""
        path = os.path.join(self.out_dir, LOG)
        temporary = f"{path}.tmp-{os.getpid()}"
        with open(temporary, "w", encoding="utf-8") as log:
            log.writelines(json.dumps(record) + "\n" for record in self.history)
        os.replace(temporary, path)

    def save_checkpoint(self, path=None):
        """Weights, velocities, schedule, counters and history, written atomically."""
        write_checkpoint(path or os.path.join(self.out_dir, CHECKPOINT), self.model, self.meta,
                         self.optimizer.state_dict(), self.schedule.state_dict(),
                         epoch=self.epoch, step=self.step, seed=self.seed, history=self.history)

    def load_checkpoint(self, path=None, check=None):
        """Restore a run written by ``save_checkpoint``, to continue it with ``fit``; returns its metadata.

        ``check``, when given, is called with the checkpoint's metadata first,
        to refuse it (by raising) before anything is loaded.  Everything is
        checked before anything changes: a refused checkpoint leaves the
        trainer as it was.
        """
        path = path or os.path.join(self.out_dir, CHECKPOINT)
        model_state, velocities, meta = read_checkpoint(path, "resume")
        if check is not None:
            check(meta)
        if meta["seed"] != self.seed:
            raise CheckpointError(f"resume: the checkpoint {path} was trained with seed {meta['seed']}, "
                                  f"but this run has seed {self.seed}")
        try:
            self.model.load_state_dict(model_state)
        except (KeyError, ValueError) as error:
            raise CheckpointError(f"resume: {path} does not fit this model: {error.args[0]}") from None
        self.optimizer.load_state_dict({**meta["optimizer"], "velocities": velocities})
        self.schedule.load_state_dict(meta["schedule"])
        self.epoch, self.step, self.history = meta["epoch"], meta["step"], meta["history"]
        self.checkpoint_epoch = self.epoch
        return meta


def remove_stale_temporaries(out_dir):
    """Delete the temporary files in ``out_dir`` whose writer (by its process id) is no longer running."""
    for name in os.listdir(out_dir):
        match = TEMPORARY.fullmatch(name)
        if match and not process_is_running(int(match["pid"])):
            os.remove(os.path.join(out_dir, name))


def process_is_running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def read_loss_and_predictions(loss, logits):
    """The loss as a float and each row's top-1 class, read from the device in one transfer.

    On a GPU every read waits for the work queued before it: one read per step, not two.
    float64 holds a float32 loss and every class index exactly.
    """
    xp = get_array_module(logits.data)
    packed = xp.concatenate([loss.data.reshape(1).astype(np.float64),
                             logits.data.argmax(axis=1).astype(np.float64)])
    host = move_array(packed, "cpu")
    return float(host[0]), host[1:].astype(np.int64)


def write_checkpoint(path, model, model_meta, optimizer_state, schedule_state, epoch=0, step=0, seed=0,
                     history=()):
    """Write a checkpoint atomically: the weights, the optimiser's velocities, and JSON metadata.

    ``model_meta`` says how to rebuild the model (for VGG: config, width,
    num_classes, input_size, in_channels, scale, dataset, mean, and
    optionally std and data; train_vgg_a.py adds the class names, a hash of
    the training data and its settings, which ``--resume`` checks);
    ``load_vgg`` reads it back.  With epoch 0 and
    a fresh optimiser and schedule it is the checkpoint of a run about to start,
    which is how weights trained elsewhere become evaluable (``examples/import_torchvision.py``).
    """
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    optimizer_state = dict(optimizer_state)
    for index, velocity in enumerate(optimizer_state.pop("velocities")):
        if velocity is not None:
            arrays[f"velocity/{index}"] = velocity
    meta = {"epoch": epoch, "step": step, "seed": seed, "optimizer": optimizer_state, "schedule": schedule_state,
            "history": list(history), "model": model_meta}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    save_arrays(path, arrays)


META_TYPES = {"epoch": int, "step": int, "seed": int, "optimizer": dict, "schedule": dict, "history": list,
              "model": dict}
OPTIMIZER_KEYS = ("lr", "momentum", "weight_decay")
SCHEDULE_KEYS = ("best", "epochs_since_best", "decreases", "finished")
VGG_META_TYPES = {"config": str, "width": numbers.Real, "num_classes": int, "input_size": int, "in_channels": int,
                  "scale": str, "mean": list}


def read_checkpoint(path, command="resume"):
    """(model state dict, list of velocities or None, metadata) from a checkpoint file, all of it checked.

    ``command`` (resume, warm-start, evaluate) begins every error message,
    which names the file and what is wrong: not a .npz archive (pickles are
    refused), no or unreadable ``meta``, missing keys, velocities whose shapes
    differ from the weights', values that are not finite.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{command}: no checkpoint at {path}")
    arrays = read_npz(path, command)
    where = f"{command}: {path}"
    meta = parse_meta(arrays, where)
    model_state = {name[len("model/"):]: a for name, a in arrays.items() if name.startswith("model/")}
    if not model_state:
        raise CheckpointError(f"{where}: holds no weights (no 'model/...' arrays)")
    velocities = [arrays.get(f"velocity/{i}") for i in range(len(model_state))]
    known = {"meta"} | {f"model/{name}" for name in model_state} | {f"velocity/{i}" for i in range(len(model_state))}
    unknown = sorted(set(arrays) - known)
    if unknown:
        raise CheckpointError(f"{where}: unexpected entries {unknown}; a checkpoint holds meta, model/<name> "
                              f"and velocity/<index> for indices 0..{len(model_state) - 1}")
    for (name, weight), velocity in zip(model_state.items(), velocities):
        if velocity is not None and velocity.shape != weight.shape:
            raise CheckpointError(f"{where}: the velocity of {name} has shape {velocity.shape}, "
                                  f"but the weight has shape {weight.shape}")
    named = list(model_state.items()) + [(f"the velocity of {n}", v) for n, v in zip(model_state, velocities)]
    for name, array in named:
        problem = None if array is None else value_problem(array)
        if problem:
            raise CheckpointError(f"{where}: {name} {problem}")
    return model_state, velocities, meta


def value_problem(array):
    """What is wrong with the values of a checkpoint array (not floating point, or not finite), or None."""
    if array.dtype.kind != "f":
        return f"has dtype {array.dtype}, expected floating point"
    bad = array.size - int(np.isfinite(array).sum())
    return f"holds {bad} NaN or infinite values" if bad else None


def parse_meta(arrays, where):
    """The JSON metadata of a checkpoint, with the keys and types ``save_checkpoint`` writes."""
    if "meta" not in arrays:
        raise CheckpointError(f"{where}: has no 'meta' entry, so it is not a training checkpoint "
                              f"(a file written by Module.save holds weights only)")
    try:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{where}: its 'meta' entry is not JSON text ({error})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: its 'meta' entry should be a JSON object, got {type(meta).__name__}")
    check_types(meta, META_TYPES, "meta", where)
    check_keys(meta["optimizer"], OPTIMIZER_KEYS, "meta.optimizer", where)
    check_keys(meta["schedule"], SCHEDULE_KEYS, "meta.schedule", where)
    lr = meta["optimizer"]["lr"]
    if not (isinstance(lr, numbers.Real) and 0 < lr < math.inf):
        raise CheckpointError(f"{where}: meta.optimizer.lr should be a finite number > 0, got {lr!r}")
    epochs = [record.get("epoch") if isinstance(record, dict) else None for record in meta["history"]]
    if epochs != list(range(1, meta["epoch"] + 1)):
        raise CheckpointError(f"{where}: meta.history should hold the records of epochs 1..{meta['epoch']}, "
                              f"got epochs {epochs}")
    return meta


def check_types(mapping, types, what, where):
    """Raise CheckpointError unless ``mapping`` has every key of ``types`` with a value of that type."""
    check_keys(mapping, types, what, where)
    for key, kind in types.items():
        value = mapping[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise CheckpointError(f"{where}: {what}.{key} should be of type {kind.__name__}, got {value!r}")


def check_keys(mapping, keys, what, where):
    missing = [key for key in keys if key not in mapping]
    if missing:
        raise CheckpointError(f"{where}: {what} lacks the keys {missing}")


def load_vgg(path, command="evaluate", device="cpu"):
    """The VGG network a checkpoint holds, rebuilt from its metadata, and that metadata.

    Used by warm starts and evaluation (``command`` begins every error message).
    """
    state, _, meta = read_checkpoint(path, command)
    where = f"{command}: {path}"
    info = meta["model"]
    check_types(info, VGG_META_TYPES, "meta.model", where)
    try:
        model = models.vgg(info["config"], info["num_classes"], info["in_channels"], info["input_size"],
                           info["width"])
        model.load_state_dict(state)
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"{where}: the weights do not fit the network its metadata describes: "
                              f"{error.args[0]}") from None
    return model.to(device), meta


class progress_bar:
    """A tqdm bar when tqdm is installed and ``enabled``; otherwise nothing is drawn.

    The bar disappears when done: the lines printed after it tell the story.
    """

    def __init__(self, total, description, enabled, unit="batch"):
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=description, unit=unit, dynamic_ncols=True, leave=False)
            except ImportError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()

    def update(self, steps, **values):
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)
            self.bar.update(steps)


def plural(count, word):
    """'1 epoch', '3 epochs'."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def cut_reason(schedule):
    """Why ``schedule`` has just cut the learning rate, for the console."""
    if schedule.last_cut == "final epochs":
        return f"no plateau came before the last {plural(schedule.final_cut, 'epoch')}"
    return "validation accuracy stopped improving"


def epoch_line(record, epochs):
    """The console's line for one epoch: train loss, validation errors, learning rate, speed."""
    top5 = "" if record["val_top5_error"] is None else f", top-5 {100 * record['val_top5_error']:.2f}%"
    return (f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f}, "
            f"validation top-1 error {100 * record['val_top1_error']:.2f}%{top5}, lr {record['lr']:g}, "
            f"{record['images_per_second']:,.0f} images/s ({record['epoch_seconds']:.0f} s)")


def plot_curves(history, path):
    """Loss, error and learning rate per epoch as a PNG (needs matplotlib; skipped quietly without it)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return None
    epochs = [h["epoch"] for h in history]
    figure, (loss, error, rate) = plt.subplots(1, 3, figsize=(14, 4))
    loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    loss.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    loss.set(xlabel="epoch", ylabel="softmax cross-entropy", title="loss")
    error.plot(epochs, [1 - h["train_accuracy"] for h in history], "o-", label="train top-1")
    error.plot(epochs, [h["val_top1_error"] for h in history], "o-", label="validation top-1")
    if all(h["val_top5_error"] is not None for h in history):
        error.plot(epochs, [h["val_top5_error"] for h in history], "o-", label="validation top-5")
    error.set(xlabel="epoch", ylabel="error", title="error")
    rate.plot(epochs, [h["lr"] for h in history], "o-", drawstyle="steps-post")
    rate.set(xlabel="epoch", ylabel="learning rate", title="learning rate (SGD)", yscale="log")
    for axes in (loss, error, rate):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    loss.legend()
    error.legend()
    figure.tight_layout()
    temporary = f"{path}.tmp-{os.getpid()}.png"
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    os.replace(temporary, path)
    return path
