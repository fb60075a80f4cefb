"""The training recipe: SGD, the plateau schedule, and the Trainer on real Fashion-MNIST images."""
import importlib.util
import json
import os
import re

import numpy as np
import pytest

from minivgg import data, models
from minivgg.optim import SGD, PlateauSchedule
from minivgg.train import CHECKPOINT, LOG, PLOT, Trainer, TrainingDiverged, read_checkpoint

DEBIAN = "/usr/share/datasets/fashion-mnist"
needs_fashion_mnist = pytest.mark.skipif(
    not os.path.isdir(DEBIAN), reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")


# --- SGD and the schedule ----------------------------------------------------------

def test_sgd_step_follows_the_papers_update_in_place():
    rng = np.random.default_rng(0)
    model = models.vgg("A", num_classes=3, in_channels=1, input_size=32, width=0.0625, init="glorot")
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    before = {id(p): p.data for p in model.parameters()}
    expected_v = {}
    for step in range(2):
        for p in model.parameters():
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
        expected = {}
        for p in model.parameters():
            v = expected_v.get(id(p), np.zeros_like(p.data))
            v = 0.9 * v - 0.1 * (p.grad + 5e-4 * p.data)
            expected_v[id(p)], expected[id(p)] = v, p.data + v
        optimizer.step()
        for p in model.parameters():
            np.testing.assert_allclose(p.data, expected[id(p)], rtol=1e-5, atol=1e-7)
            assert p.data is before[id(p)]  # updated in place, no new array


def test_sgd_rejects_bad_hyper_parameters():
    model = models.vgg("A", num_classes=3, in_channels=1, input_size=32, width=0.0625)
    with pytest.raises(ValueError, match="SGD: expected lr > 0"):
        SGD(model.parameters(), lr=-1)
    with pytest.raises(ValueError, match="empty list"):
        SGD([])


class FakeOptimizer:
    lr = 0.01


def test_plateau_schedule_divides_by_ten_three_times_then_stops():
    optimizer = FakeOptimizer()
    schedule = PlateauSchedule(optimizer, patience=2)
    accuracies = [0.5, 0.6, 0.6, 0.6,   # two epochs without a new best: 1e-3
                  0.7, 0.65, 0.69,      # 1e-4
                  0.69, 0.7,            # 1e-5
                  0.7, 0.7]             # fourth plateau: stop
    go_on = [schedule.step(a) for a in accuracies]
    assert go_on == [True] * 10 + [False]
    assert optimizer.lr == pytest.approx(1e-5)
    assert schedule.decreases == 3 and schedule.finished


# --- the Trainer on real data ----------------------------------------------------------

def fashion_subset(size, seed=0):
    images, labels = data.load_fashion_mnist("train")
    return data.random_subset(images, labels, size, seed=seed)


def make_trainer(out_dir, images, labels, val, lr=0.01, seed=0, width=0.125, scale=(32, 40)):
    mean = data.compute_mean(images)
    transform = data.TrainTransform(32, scale, flip=True, mean=mean)
    loader = data.DataLoader(images, labels, 32, transform, shuffle=True, seed=seed)
    val_loader = data.DataLoader(*val, 200, data.TestTransform(32, mean=mean), shuffle=False)
    model = models.vgg("A", 10, 1, 32, width=width, init="glorot", seed=seed)
    optimizer = SGD(model.parameters(), lr=lr)
    return Trainer(model, optimizer, PlateauSchedule(optimizer), loader, val_loader, str(out_dir), seed=seed,
                   progress=False)


@pytest.fixture(scope="module")
def subset():
    images, labels = fashion_subset(2400)
    return (images[:2000], labels[:2000]), (images[2000:], labels[2000:])


@needs_fashion_mnist
def test_a_short_run_on_real_images_learns(tmp_path, subset):
    (images, labels), val = subset
    trainer = make_trainer(tmp_path, images, labels, val, lr=0.02, scale=32)
    history = trainer.fit(3)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_top1_error"] < 0.5  # chance is 0.9
    lines = (tmp_path / LOG).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    if importlib.util.find_spec("matplotlib") is not None:  # the plot is an optional extra
        assert (tmp_path / PLOT).read_bytes().startswith(b"\x89PNG")


@needs_fashion_mnist
def test_resumed_run_ends_bit_for_bit_where_an_uninterrupted_one_does(tmp_path, subset):
    (images, labels), val = subset
    images, labels = images[:300], labels[:300]
    straight = make_trainer(tmp_path / "straight", images, labels, val)
    straight.fit(2)

    interrupted = make_trainer(tmp_path / "resumed", images, labels, val)
    interrupted.fit(1)
    resumed = make_trainer(tmp_path / "resumed", images, labels, val)
    resumed.load_checkpoint()
    assert resumed.epoch == 1 and resumed.step == interrupted.step
    resumed.fit(2)

    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert np.array_equal(a, b), f"{name} differs after resuming"
    for a, b in zip(straight.optimizer.velocities, resumed.optimizer.velocities):
        assert np.array_equal(a, b)
    timings = ("images_per_second", "epoch_seconds")
    assert [{k: v for k, v in h.items() if k not in timings} for h in straight.history] == \
        [{k: v for k, v in h.items() if k not in timings} for h in resumed.history]


@needs_fashion_mnist
def test_an_interrupted_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, subset, monkeypatch):
    (images, labels), val = subset
    trainer = make_trainer(tmp_path, images[:100], labels[:100], val)
    trainer.fit(1)
    good_state, _, good_meta = read_checkpoint(str(tmp_path / CHECKPOINT))

    def write_half_then_fail(file, **arrays):
        file.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        trainer.fit(2)
    monkeypatch.undo()
    state, _, meta = read_checkpoint(str(tmp_path / CHECKPOINT))
    assert meta["epoch"] == good_meta["epoch"] == 1
    for name in good_state:
        assert np.array_equal(state[name], good_state[name])


@needs_fashion_mnist
def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, subset):
    (images, labels), val = subset
    trainer = make_trainer(tmp_path, images[:100], labels[:100], val)
    trainer.fit(1)
    trainer.model.classifier[0].weight.data[0, 0] = np.nan  # poison the weights: the next loss is NaN
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2.*last good checkpoint"):
        trainer.fit(2)
    state, _, meta = read_checkpoint(str(tmp_path / CHECKPOINT))
    assert meta["epoch"] == 1
    assert all(np.isfinite(v).all() for v in state.values())


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        read_checkpoint(str(tmp_path / CHECKPOINT))


# --- what a run tells the console -------------------------------------------------------


def still_trainer(out_dir, classes):
    """A Trainer whose weights barely move (lr 1e-12): validation accuracy never improves after epoch 1."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 1, 32, 32), dtype=np.uint8)
    labels = np.arange(24) % classes
    loader = data.DataLoader(images[:16], labels[:16], 8, data.TestTransform(32), shuffle=True)
    val_loader = data.DataLoader(images[16:], labels[16:], 8, data.TestTransform(32), shuffle=False)
    model = models.vgg("A", classes, 1, 32, width=0.0625, init="glorot")
    optimizer = SGD(model.parameters(), lr=1e-12)
    schedule = PlateauSchedule(optimizer, patience=1, max_decreases=2)
    return Trainer(model, optimizer, schedule, loader, val_loader, str(out_dir), progress=False)


def test_the_console_tells_each_epoch_each_cut_and_why_the_run_stopped(tmp_path, capsys):
    trainer = still_trainer(tmp_path, classes=7)
    history = trainer.fit(10)
    lines = capsys.readouterr().out.splitlines()
    assert [h["lr"] for h in history] == pytest.approx([1e-12, 1e-12, 1e-13, 1e-14])  # each epoch's own rate
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epoch_lines] == ["epoch 1/10", "epoch 2/10", "epoch 3/10", "epoch 4/10"]
    assert all(re.search(r"train loss \d\.\d{4}, validation top-1 error [\d.]+%, top-5 [\d.]+%, lr 1e-1[234], "
                         r"[\d,]+ images/s \(\d+ s\)$", line) for line in epoch_lines)
    assert "validation accuracy stopped improving: learning rate 1e-12 -> 1e-13 (cut 1 of 2)" in lines
    assert "validation accuracy stopped improving: learning rate 1e-13 -> 1e-14 (cut 2 of 2)" in lines
    reason = ("stopped after epoch 4: learning rate cut 2 times and validation accuracy stopped improving again: "
              "stopping, as the paper does")
    assert lines[-1] == trainer.stop_reason == reason
    logged = [json.loads(line) for line in (tmp_path / LOG).read_text().splitlines()]
    assert [record["lr"] for record in logged] == [h["lr"] for h in history]


def test_top5_is_left_out_for_five_classes_or_fewer(tmp_path, capsys):
    trainer = still_trainer(tmp_path, classes=5)
    history = trainer.fit(1)
    assert history[0]["val_top5_error"] is None and trainer.evaluate(trainer.val_loader)["top5_error"] is None
    out = capsys.readouterr().out
    assert "validation top-1 error" in out and "top-5" not in out
    assert trainer.stop_reason == "stopped after epoch 1: reached the limit of 1 epoch"
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / PLOT).read_bytes().startswith(b"\x89PNG")
