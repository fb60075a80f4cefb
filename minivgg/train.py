"""Floor 5: the training loop of the paper, with validation, logs, plots and checkpoints.

One epoch is: for every batch, forward, softmax cross-entropy, backward, one
SGD step.  After each epoch the model is evaluated on the validation set
(top-1 and top-5 error), the learning-rate schedule sees the validation
accuracy, a line is appended to ``log.jsonl``, the curves are redrawn in
``curves.png`` and a checkpoint is written atomically to ``checkpoint.npz``.

Randomness has no hidden state: the data order and augmentation are keyed by
(seed, epoch, sample) in the loader, and dropout by (seed, step, layer,
sample) in the kernel.  So a checkpoint needs only the weights, the
velocities, the schedule, the epoch and the step counter to resume a run
exactly, bit for bit.
"""
import json
import math
import os
import time

import numpy as np

from . import functional as F
from . import models
from .autograd import Tensor, no_grad
from .backend import get_array_module, move_array
from .metrics import top_k_error
from .nn import save_arrays, set_dropout_state
from .parallel import SingleDevice, allreduce_gradients, check_replicas, shard_bounds

CHECKPOINT = "checkpoint.npz"
LOG = "log.jsonl"
PLOT = "curves.png"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class Trainer:
    """Trains ``model`` with ``optimizer`` and ``schedule`` on batches of (x, labels, indices).

    ``train_loader`` and ``val_loader`` yield ``(x, labels, indices)`` and
    have ``set_epoch(e)`` and ``len()`` (see ``minivgg.data.DataLoader``).
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
        if self.leader:
            os.makedirs(out_dir, exist_ok=True)

    # --- the loop --------------------------------------------------------------
    def fit(self, epochs):
        """Train until ``epochs`` epochs are done or the schedule stops; returns the history.

        Prints one line per epoch, each cut of the learning rate, and at the
        end why the run stopped (also kept in ``stop_reason``).
        """
        while self.epoch < epochs and not self.schedule.finished:
            lr = self.optimizer.lr  # the rate this epoch trains with; the schedule may cut it after
            train_stats = self.train_epoch()
            val_stats = self.evaluate(self.val_loader, "validation")
            self.epoch += 1
            go_on = self.schedule.step(1.0 - val_stats["top1_error"])
            record = {"epoch": self.epoch, "lr": lr, **train_stats,
                      **{f"val_{k}": v for k, v in val_stats.items()}}
            self.history.append(record)
            if self.leader:
                self.write_log(record)
                self.save_checkpoint()
                plot_curves(self.history, os.path.join(self.out_dir, PLOT))
            self.say(epoch_line(record, epochs))
            if self.optimizer.lr != lr:
                self.say(f"validation accuracy stopped improving: learning rate {lr:g} -> {self.optimizer.lr:g} "
                         f"(cut {self.schedule.decreases} of {self.schedule.max_decreases})")
            if not go_on:
                break
        self.stop_reason = self.why_stopped(epochs)
        self.say(self.stop_reason)
        return self.history

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
            for x, labels, _ in self.train_loader:
                loss, correct = self.train_step(x, labels)
                totals["loss"] += loss * len(labels)
                totals["correct"] += correct
                totals["seen"] += len(labels)
                elapsed = time.perf_counter() - start
                bar.update(1, loss=loss, acc=totals["correct"] / totals["seen"], ips=totals["seen"] / elapsed)
        seconds = time.perf_counter() - start
        return {"train_loss": totals["loss"] / totals["seen"], "train_accuracy": totals["correct"] / totals["seen"],
                "images_per_second": totals["seen"] / seconds, "epoch_seconds": seconds}

    def train_step(self, x, labels):
        """One SGD step on a batch; returns (mean loss, number of correct top-1 predictions).

        With a communicator of several ranks, this rank computes only its
        shard of the batch and the gradients are all-reduced before the step
        (see ``minivgg.parallel``); with one rank the shard is the batch.
        """
        comm = self.communicator
        start, stop = shard_bounds(len(labels), comm.size, comm.rank)
        set_dropout_state(self.model, seed=self.seed, step=self.step, sample_offset=start)
        shard_labels = move_array(labels[start:stop], "cpu")  # host labels: the loss checks and uploads them once
        logits = self.model(Tensor(self.to_device(x[start:stop])))
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
            raise TrainingDiverged(
                f"train: the loss became {value} at epoch {self.epoch + 1}, step {self.step}; stopping. The last "
                f"good checkpoint is {os.path.join(self.out_dir, CHECKPOINT)} (try a smaller --lr)")
        self.optimizer.step()
        self.step += 1
        if comm.size > 1 and self.step % self.check_every == 0:
            state = [p.data for p in self.model.parameters()] + [v for v in self.optimizer.velocities if v is not None]
            check_replicas(comm, state, self.step)
        return float(value), int(correct)

    def evaluate(self, loader, description="test"):
        """Mean loss and top-1 / top-5 error of the model on ``loader``, in evaluation mode.

        The top-5 error is None for five classes or fewer, where it is always 0.
        """
        self.model.eval()
        loader.set_epoch(0)
        loss_sum, errors, seen, classes = 0.0, np.zeros(2), 0, 0
        with no_grad(), progress_bar(len(loader), description, self.progress) as bar:
            for x, labels, _ in loader:
                logits = self.model(Tensor(self.to_device(x)))
                device_labels = move_array(labels, self.device)
                loss_sum += F.softmax_cross_entropy(logits, device_labels).item() * len(labels)
                errors += [top_k_error(logits.data, labels, k) * len(labels) for k in (1, 5)]
                seen, classes = seen + len(labels), logits.shape[1]
                bar.update(1, top1_error=errors[0] / seen)
        self.model.train()
        return {"loss": loss_sum / seen, "top1_error": float(errors[0] / seen),
                "top5_error": float(errors[1] / seen) if classes > 5 else None}

    def to_device(self, x):
        return x if self.device == "cpu" else move_array(x, self.device)

    # --- what the run leaves behind ------------------------------------------------
    def write_log(self, record):
        with open(os.path.join(self.out_dir, LOG), "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")

    def save_checkpoint(self, path=None):
        """Weights, velocities, schedule, counters and history, written atomically."""
        write_checkpoint(path or os.path.join(self.out_dir, CHECKPOINT), self.model, self.meta,
                         self.optimizer.state_dict(), self.schedule.state_dict(),
                         epoch=self.epoch, step=self.step, seed=self.seed, history=self.history)

    def load_checkpoint(self, path=None):
        """Restore a run written by ``save_checkpoint``, to continue it with ``fit``."""
        path = path or os.path.join(self.out_dir, CHECKPOINT)
        model_state, velocities, meta = read_checkpoint(path)
        if meta["seed"] != self.seed:
            raise ValueError(f"resume: the checkpoint {path} was trained with seed {meta['seed']}, "
                             f"but this run has seed {self.seed}")
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict({**meta["optimizer"], "velocities": velocities})
        self.schedule.load_state_dict(meta["schedule"])
        self.epoch, self.step, self.history = meta["epoch"], meta["step"], meta["history"]


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
    optionally std and data); ``load_vgg`` reads it back.  With epoch 0 and
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


def load_vgg(path, command="evaluate", device="cpu"):
    """The VGG network a checkpoint holds, rebuilt from its metadata, on ``device``, and that metadata."""
    state, _, meta = read_checkpoint(path)
    info = meta["model"]
    try:
        model = models.vgg(info["config"], info["num_classes"], info["in_channels"], info["input_size"],
                           info["width"])
        model.load_state_dict(state)
    except (KeyError, ValueError) as error:
        raise ValueError(f"{command}: {path}: the weights do not fit the network its metadata describes: "
                         f"{error.args[0]}") from None
    return model.to(device), meta


def read_checkpoint(path):
    """(model state dict, list of velocities or None, metadata) from a checkpoint file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"resume: no checkpoint at {path}")
    with np.load(path) as arrays:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
        model_state = {name[len("model/"):]: arrays[name] for name in arrays.files if name.startswith("model/")}
        velocities = [arrays[f"velocity/{i}"] if f"velocity/{i}" in arrays.files else None
                      for i in range(len(model_state))]
    return model_state, velocities, meta


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
