"""The training recipe: SGD, the plateau schedule, and the Trainer on real Fashion-MNIST images."""
import importlib.util
import json
import os
import re
import subprocess
import sys

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


def test_sgd_kernel_shared_between_threads_updates_like_one_thread_bit_for_bit(monkeypatch):
    """A parameter above SHARED_FROM (with a short last chunk) is split between the shard threads."""
    from minivgg.kernels import sgd, shards
    if shards._pool is None:
        pytest.skip("one CPU (or MINIVGG_THREADS=1): there are no shard threads to share the update")
    rng = np.random.default_rng(1)
    size = sgd.SHARED_FROM + sgd.CHUNK // 3
    param, grad, velocity = (rng.standard_normal(size).astype(np.float32) for _ in range(3))
    results = []
    for threads in (1, 2):
        monkeypatch.setattr(shards, "THREADS", threads)
        p, v = param.copy(), velocity.copy()
        sgd.sgd_update(p, grad, v, 0.1, 0.9, 5e-4)
        results.append((p, v))
    (p1, v1), (p2, v2) = results
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(v1, v2)
    expected_v = np.float32(0.9) * velocity - np.float32(0.1) * grad - np.float32(0.1 * 5e-4) * param
    np.testing.assert_allclose(v1, expected_v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p1, param + expected_v, rtol=1e-5, atol=1e-6)


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


def test_a_rate_never_cut_is_cut_when_final_cut_epochs_are_left():
    optimizer = FakeOptimizer()
    schedule = PlateauSchedule(optimizer, patience=2, final_cut=2)
    accuracies = [0.5, 0.6, 0.59, 0.7, 0.69, 0.8, 0.79, 0.85, 0.84, 0.9]   # a new best every other epoch
    rates = []
    for epoch, accuracy in enumerate(accuracies, start=1):
        assert schedule.step(accuracy, epochs_left=len(accuracies) - epoch)
        rates.append(optimizer.lr)
    assert rates == pytest.approx([0.01] * 7 + [0.001] * 3)   # cut after epoch 8: epochs 9 and 10 at 0.001
    assert schedule.decreases == 1 and schedule.last_cut == "final epochs"


def test_the_final_cut_leaves_a_rate_a_plateau_has_cut_and_a_run_without_it_alone():
    for final_cut, accuracies, expected in [
            (2, [0.5, 0.5, 0.5, 0.6, 0.7, 0.8], [0.01, 0.01, 0.001, 0.001, 0.001, 0.001]),  # a plateau came first
            (0, [0.5, 0.6, 0.59, 0.7, 0.69, 0.8], [0.01] * 6)]:                            # the paper's schedule
        optimizer = FakeOptimizer()
        schedule = PlateauSchedule(optimizer, patience=2, final_cut=final_cut)
        rates = []
        for epoch, accuracy in enumerate(accuracies, start=1):
            schedule.step(accuracy, epochs_left=len(accuracies) - epoch)
            rates.append(optimizer.lr)
        assert rates == pytest.approx(expected)


def test_the_schedule_names_a_bad_final_cut():
    with pytest.raises(ValueError, match=r"PlateauSchedule: expected .*final_cut >= 0.*got .*final_cut=-1"):
        PlateauSchedule(FakeOptimizer(), final_cut=-1)


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


SHORT_RUN = {"trainer": {"lr": 0.02, "scale": 32}, "epochs": 3, "best_error_below": 0.75, "loss_ratio_below": 0.9}


def short_run_outcome(history):
    """(the best validation top-1 error of the epochs, the lowest later training loss over the first epoch's)."""
    return (min(h["val_top1_error"] for h in history),
            min(h["train_loss"] for h in history[1:]) / history[0]["train_loss"])


@needs_fashion_mnist
def test_a_short_run_on_real_images_learns(tmp_path, subset):
    """3 epochs on 2,000 images learn, by bounds that hold with a wide margin on any machine.

    How the bounds were chosen: tests/measure_training_margin.py runs this test's training over seeds 0..7,
    which change the initial weights, the data order, the augmentation and dropout (a far larger
    perturbation than another CPU's summation order).  On a 2-core machine the last epoch's validation
    error ranged over 0.455..0.8775 (seed 3 turns unstable in epoch 3 at this learning rate), so it is no
    criterion: the old bound 0.5 failed for 6 of the 8 seeds, and by 0.0125 on another machine with seed 0.
    The best epoch's error ranged over 0.455..0.6375: the bound 0.75 leaves 0.11 above the worst seed and
    0.15 below chance (0.9).  The lowest training loss of epochs 2-3 was at most 0.743 of epoch 1's: the
    bound 0.9 leaves 0.157.
    """
    (images, labels), val = subset
    trainer = make_trainer(tmp_path, images, labels, val, **SHORT_RUN["trainer"])
    history = trainer.fit(SHORT_RUN["epochs"])
    best_error, loss_ratio = short_run_outcome(history)
    assert best_error < SHORT_RUN["best_error_below"]  # chance is 0.9
    assert loss_ratio < SHORT_RUN["loss_ratio_below"]
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
    assert logged_epochs(tmp_path) == [1]  # the log has no line for the epoch whose checkpoint was lost
    assert sorted(os.listdir(tmp_path)) == sorted([CHECKPOINT, LOG, PLOT] if os.path.exists(tmp_path / PLOT)
                                                  else [CHECKPOINT, LOG])  # and no temporary file is left


@needs_fashion_mnist
def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, subset):
    (images, labels), val = subset
    trainer = make_trainer(tmp_path, images[:100], labels[:100], val)
    trainer.fit(1)
    trainer.model.classifier[0].weight.data[0, 0] = np.nan  # poison the weights: the next loss is NaN
    with pytest.raises(TrainingDiverged, match=rf"loss became nan at epoch 2, step \d+; stopping. The last good "
                                               rf"checkpoint is {re.escape(str(tmp_path / CHECKPOINT))}, at epoch 1"):
        trainer.fit(2)
    state, _, meta = read_checkpoint(str(tmp_path / CHECKPOINT))
    assert meta["epoch"] == 1
    assert all(np.isfinite(v).all() for v in state.values())


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        read_checkpoint(str(tmp_path / CHECKPOINT))


# --- what a run leaves behind when it diverges, is killed or resumed (noise images: no dataset needed) ---------

def noise_trainer(out_dir, lr=0.01, count=64):
    """A trainer on ``count`` noise images in 10 classes (2 steps per epoch), to test the run's files."""
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (count + 32, 1, 32, 32), dtype=np.uint8), rng.integers(0, 10, count + 32)
    return make_trainer(out_dir, images[:count], labels[:count], (images[count:], labels[count:]), lr=lr,
                        width=0.0625, scale=32)


def logged_epochs(out_dir):
    return [json.loads(line)["epoch"] for line in (out_dir / LOG).read_text().splitlines()]


def test_a_run_that_diverges_before_its_first_checkpoint_says_none_exists(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"at epoch 1, step \d+; stopping. No checkpoint of this run was "
                                               r"written \(try a smaller --lr\)"):
        noise_trainer(tmp_path, lr=1e6).fit(3)
    assert not (tmp_path / CHECKPOINT).exists()


def test_a_non_finite_validation_loss_is_not_checkpointed(tmp_path, monkeypatch):
    """With one step per epoch and a huge learning rate the weights can stay finite while the validation loss is
    NaN: that state is not a good checkpoint."""
    trainer = noise_trainer(tmp_path)
    trainer.fit(1)
    good = (tmp_path / CHECKPOINT).read_bytes()
    evaluate = trainer.evaluate
    monkeypatch.setattr(trainer, "evaluate", lambda *args: {**evaluate(*args), "loss": float("nan")})
    with pytest.raises(TrainingDiverged, match=r"the validation loss became nan at epoch 2, .*The last good "
                                               r"checkpoint is .*, at epoch 1"):
        trainer.fit(2)
    assert (tmp_path / CHECKPOINT).read_bytes() == good
    assert logged_epochs(tmp_path) == [1]


def test_infinite_velocities_are_not_checkpointed(tmp_path, monkeypatch):
    """A velocity that overflows at the epoch's last step leaves the weights and the validation loss finite, but
    resuming from it would put infinities into the weights at once."""
    trainer = noise_trainer(tmp_path)
    step = trainer.optimizer.step

    def step_then_overflow():
        step()
        if trainer.step == len(trainer.train_loader) - 1:
            trainer.optimizer.velocities[0][0, 0, 0, 0] = np.inf

    monkeypatch.setattr(trainer.optimizer, "step", step_then_overflow)
    with pytest.raises(TrainingDiverged, match=r"the weights or the optimiser's velocities became NaN or infinite at "
                                               r"epoch 1, .*No checkpoint of this run"):
        trainer.fit(1)
    assert not (tmp_path / CHECKPOINT).exists()


def test_resume_makes_the_log_agree_with_the_checkpoint(tmp_path):
    noise_trainer(tmp_path).fit(2)
    with open(tmp_path / LOG, "a", encoding="utf-8") as log:  # a killed run logged epoch 3 but left no checkpoint
        log.write(json.dumps({"epoch": 3}) + "\n")
    resumed = noise_trainer(tmp_path)
    resumed.load_checkpoint()
    resumed.fit(3)
    assert logged_epochs(tmp_path) == [1, 2, 3]
    assert [json.loads(line) for line in (tmp_path / LOG).read_text().splitlines()] == resumed.history


def test_a_new_run_starts_a_new_log(tmp_path):
    noise_trainer(tmp_path).fit(2)
    noise_trainer(tmp_path).fit(1)
    assert logged_epochs(tmp_path) == [1]


def test_temporary_files_of_killed_runs_are_removed(tmp_path):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # its process id is no longer in use: its temporaries are stale
    stale = [f"{CHECKPOINT}.tmp-{finished.pid}", f"{PLOT}.tmp-{finished.pid}.png", f"{LOG}.tmp-{finished.pid}"]
    live = f"{CHECKPOINT}.tmp-{os.getppid()}"  # a running process's file is left alone
    for name in stale + [live, "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    noise_trainer(tmp_path).fit(1)
    left = set(os.listdir(tmp_path))
    assert not left & set(stale)
    assert {live, "notes.txt", CHECKPOINT, LOG} <= left


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


def test_the_console_says_when_the_final_epochs_cut_the_rate(tmp_path, capsys):
    trainer = still_trainer(tmp_path, classes=7)
    trainer.schedule = PlateauSchedule(trainer.optimizer, patience=5, final_cut=1)
    history = trainer.fit(3)
    lines = capsys.readouterr().out.splitlines()
    assert [h["lr"] for h in history] == pytest.approx([1e-12, 1e-12, 1e-13])
    assert "no plateau came before the last 1 epoch: learning rate 1e-12 -> 1e-13 (cut 1 of 3)" in lines


def test_top5_is_left_out_for_five_classes_or_fewer(tmp_path, capsys):
    trainer = still_trainer(tmp_path, classes=5)
    history = trainer.fit(1)
    assert history[0]["val_top5_error"] is None and trainer.evaluate(trainer.val_loader)["top5_error"] is None
    out = capsys.readouterr().out
    assert "validation top-1 error" in out and "top-5" not in out
    assert trainer.stop_reason == "stopped after epoch 1: reached the limit of 1 epoch"
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / PLOT).read_bytes().startswith(b"\x89PNG")
