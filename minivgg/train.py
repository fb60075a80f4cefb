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
from .autograd import Tensor, no_grad
from .backend import get_array_module, move_array
from .metrics import top_k_error
from .nn import save_arrays, set_dropout_state
from .parallel import allreduce_gradients, check_replicas, shard_bounds

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
        self.communicator = communicator or SingleProcess()
        self.check_every = check_every  # steps between checks that the replicas' weights agree
        self.leader = self.communicator.rank == 0  # only rank 0 prints and writes files
        self.progress = progress and self.leader
        self.meta = meta or {}  # how to rebuild the model: stored in the checkpoint
        self.epoch, self.step, self.history = 0, 0, []
        if self.leader:
            os.makedirs(out_dir, exist_ok=True)

    # --- the loop --------------------------------------------------------------
    def fit(self, epochs):
        """Train until ``epochs`` epochs are done or the schedule stops; returns the history."""
        while self.epoch < epochs and not self.schedule.finished:
            train_stats = self.train_epoch()
            val_stats = self.evaluate(self.val_loader)
            self.epoch += 1
            go_on = self.schedule.step(1.0 - val_stats["top1_error"])
            record = {"epoch": self.epoch, "lr": self.optimizer.lr, **train_stats,
                      **{f"val_{k}": v for k, v in val_stats.items()}}
            self.history.append(record)
            if self.leader:
                self.write_log(record)
                self.save_checkpoint()
                plot_curves(self.history, os.path.join(self.out_dir, PLOT))
            if not go_on:
                break
        return self.history

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

    def evaluate(self, loader):
        """Mean loss and top-1 / top-5 error of the model on ``loader``, in evaluation mode."""
        self.model.eval()
        loader.set_epoch(0)
        loss_sum, errors, seen = 0.0, np.zeros(2), 0
        with no_grad():
            for x, labels, _ in loader:
                logits = self.model(Tensor(self.to_device(x)))
                device_labels = move_array(labels, self.device)
                loss_sum += F.softmax_cross_entropy(logits, device_labels).item() * len(labels)
                errors += [top_k_error(logits.data, labels, k) * len(labels) for k in (1, 5)]
                seen += len(labels)
        self.model.train()
        return {"loss": loss_sum / seen, "top1_error": float(errors[0] / seen), "top5_error": float(errors[1] / seen)}

    def to_device(self, x):
        return x if self.device == "cpu" else move_array(x, self.device)

    # --- what the run leaves behind ------------------------------------------------
    def write_log(self, record):
        with open(os.path.join(self.out_dir, LOG), "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")

    def save_checkpoint(self, path=None):
        """Weights, velocities, schedule, counters and history, written atomically."""
        arrays = {f"model/{name}": value for name, value in self.model.state_dict().items()}
        optimizer_state = self.optimizer.state_dict()
        for index, velocity in enumerate(optimizer_state.pop("velocities")):
            if velocity is not None:
                arrays[f"velocity/{index}"] = velocity
        meta = {"epoch": self.epoch, "step": self.step, "seed": self.seed, "optimizer": optimizer_state,
                "schedule": self.schedule.state_dict(), "history": self.history, "model": self.meta}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        save_arrays(path or os.path.join(self.out_dir, CHECKPOINT), arrays)

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


class SingleProcess:
    """The communicator of a run on one device: rank 0 of 1."""

    rank, size = 0, 1


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
    """A tqdm bar when tqdm is installed and ``enabled``; otherwise nothing is drawn."""

    def __init__(self, total, description, enabled):
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=description, unit="batch", dynamic_ncols=True)
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


def plot_curves(history, path):
    """Loss and error curves per epoch as a PNG (needs matplotlib; skipped quietly without it)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    epochs = [h["epoch"] for h in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    left.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    left.set(xlabel="epoch", ylabel="softmax cross-entropy", title="loss")
    right.plot(epochs, [1 - h["train_accuracy"] for h in history], "o-", label="train top-1")
    right.plot(epochs, [h["val_top1_error"] for h in history], "o-", label="validation top-1")
    right.plot(epochs, [h["val_top5_error"] for h in history], "o-", label="validation top-5")
    right.set(xlabel="epoch", ylabel="error", title="error")
    for axes in (left, right):
        axes.legend()
        axes.grid(alpha=0.3)
    figure.tight_layout()
    temporary = f"{path}.tmp-{os.getpid()}.png"
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    os.replace(temporary, path)
    return path
