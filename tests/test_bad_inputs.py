"""The table of bad inputs: each one is refused with a message that names the flag, the operation or the
file, and the offending value.

One parametrised test per family: the training script's flags (checked before any data is read), its
checks that need the data or a checkpoint, the evaluation script's flags, damaged checkpoints (through
each command that reads them), library calls, and data files that try to run code.  The scripts run
in-process through their ``main(argv)`` / ``parse_args(argv)``; tests/test_mpi_faults.py runs them under
mpiexec.
"""
import json
import os
import pickle
import re

import numpy as np
import pytest
from PIL import Image

import minivgg.functional as F
from minivgg import Tensor, data, models, summary
from minivgg.data import ImageFolder, load_cifar10
from minivgg.optim import SGD
from minivgg.train import load_vgg, read_checkpoint
from scripts import load_example

TRAIN = load_example("train_vgg_a")
EVALUATE = load_example("evaluate_vgg")
CLASSES = ("a", "b")


def write_images(directory, count, rng):
    os.makedirs(directory, exist_ok=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(os.path.join(directory, f"{i}.png"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """An image folder: train/ with 24 noise images in each of 2 classes, val/ with 4 per class."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name in CLASSES:
        write_images(root / "train" / name, 24, rng)
        write_images(root / "val" / name, 4, rng)
    return root


def tiny_run(folder, out, *changes):
    """Flags of a one-epoch run on ``folder`` that takes about a second, with ``changes`` (see ``override``)."""
    return override(["--dataset", "folder", "--data", str(folder), "--val-size", "8", "--limit", "32",
                     "--width", "0.0625", "--batch-size", "16", "--epochs", "1", "--no-progress", "--out", str(out)],
                    *changes)


def override(flags, *changes):
    """``flags`` with each (flag, value) of ``changes`` put in place of the flag's value, or added; (switch,) adds."""
    flags = list(flags)
    for flag, *value in changes:
        if flag in flags and value:
            flags[flags.index(flag) + 1] = value[0]
        else:
            flags += [flag, *value]
    return flags


@pytest.fixture(scope="module")
def run_dir(folder, tmp_path_factory):
    """The output folder of one finished tiny run: checkpoint.npz, log.jsonl, result.json."""
    out = tmp_path_factory.mktemp("run")
    TRAIN.main(tiny_run(folder, out))
    return out


def refused_flag(parse_args, argv, capsys):
    """The error argparse prints for ``argv`` (it must exit with status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


# --- train_vgg_a.py: flags refused before any data is read -------------------------------------------

TRAIN_FLAGS = [
    (["--limit", "0"], r"argument --limit: expected an integer >= 1, got '0'"),
    (["--limit", "-5"], r"argument --limit: expected an integer >= 1, got '-5'"),
    (["--limit", "ten"], r"argument --limit: expected an integer >= 1, got 'ten'"),
    (["--epochs", "-1"], r"argument --epochs: expected an integer >= 1, got '-1'"),
    (["--epochs", "0"], r"argument --epochs: expected an integer >= 1, got '0'"),
    (["--width", "inf"], r"argument --width: expected a finite number > 0, got 'inf'"),
    (["--width", "0"], r"argument --width: expected a finite number > 0, got '0'"),
    (["--width", "nan"], r"argument --width: expected a finite number > 0, got 'nan'"),
    (["--width", "abc"], r"argument --width: expected a finite number > 0, got 'abc'"),
    (["--lr", "nan"], r"argument --lr: expected a finite number > 0, got 'nan'"),
    (["--lr", "inf"], r"argument --lr: expected a finite number > 0, got 'inf'"),
    (["--lr", "-0.1"], r"argument --lr: expected a finite number > 0, got '-0.1'"),
    (["--lr", "0"], r"argument --lr: expected a finite number > 0, got '0'"),
    (["--momentum", "1"], r"argument --momentum: expected a finite number >= 0 and < 1, got '1'"),
    (["--momentum", "-0.5"], r"argument --momentum: expected a finite number >= 0 and < 1, got '-0.5'"),
    (["--weight-decay", "-1"], r"argument --weight-decay: expected a finite number >= 0, got '-1'"),
    (["--weight-decay", "inf"], r"argument --weight-decay: expected a finite number >= 0, got 'inf'"),
    (["--batch-size", "0"], r"argument --batch-size: expected an integer >= 1, got '0'"),
    (["--patience", "0"], r"argument --patience: expected an integer >= 1, got '0'"),
    (["--val-size", "0"], r"argument --val-size: expected an integer >= 1, got '0'"),
    (["--train-size", "48"], r"argument --train-size: expected a multiple of 32 .*, got 48"),
    (["--train-size", "0"], r"argument --train-size: expected an integer >= 32, got '0'"),
    (["--scale", "abc"], r"argument --scale: expected a positive integer S or S_min,S_max .*, got 'abc'"),
    (["--scale", "40,32"], r"argument --scale: expected a positive integer S or S_min,S_max .*, got '40,32'"),
    (["--scale", "32,40,48"], r"argument --scale: expected .*, got '32,40,48'"),
    (["--scale", "-40"], r"argument --scale: expected .*, got '-40'"),
    (["--scale", "16"], r"argument --scale: the training scale S must be >= --train-size 32 .*, got '16'"),
    (["--seed", "-1"], r"argument --seed: expected an integer in 0..4294967295, got '-1'"),
    (["--seed", "4294967296"], r"argument --seed: expected an integer in 0..4294967295, got '4294967296'"),
    (["--device", "gpu"], r"argument --device: expected 'cpu', 'cuda' or 'cuda:<index>', got 'gpu'"),
    (["--device", "cuda:x"], r"argument --device: expected .*, got 'cuda:x'"),
    (["--config", "F"], r"argument --config: invalid choice: 'F'"),
    (["--dataset", "mnist"], r"argument --dataset: invalid choice: 'mnist'"),
    (["--init", "zeros"], r"argument --init: invalid choice: 'zeros'"),
    (["--comm-timeout", "0"], r"argument --comm-timeout: expected a finite number > 0, got '0'"),
    (["--resume", "--warm-start", "a.npz"], r"argument --warm-start: cannot be combined with --resume"),
    (["--processes", "0"], r"argument --processes: expected an integer >= 1, got '0'"),
    (["--final-cut", "-1"], r"argument --final-cut: expected an integer >= 0, got '-1'"),
    (["--processes", "2", "--distributed"], r"argument --processes: cannot be combined with --distributed"),
    (["--processes", "3", "--batch-size", "2"], r"argument --processes: each of the 3 ranks needs an image of every "
                                                r"batch, got --batch-size 2"),
    (["--processes", "2", "--device", "cuda"], r"argument --processes: runs CPU ranks, got --device cuda; on "
                                               r"GPUs use mpiexec with --distributed"),
]


@pytest.mark.parametrize("argv, message", TRAIN_FLAGS, ids=[" ".join(argv) for argv, _ in TRAIN_FLAGS])
def test_train_flags_are_refused_before_any_data_is_read(tmp_path, capsys, argv, message):
    assert re.search(message, refused_flag(TRAIN.parse_args, [*argv, "--out", str(tmp_path)], capsys))


@pytest.mark.parametrize("where, message", [
    ("file", r"argument --out: --out {out} is a file, expected a directory"),
    ("file/run", r"argument --out: --out {out}: cannot write there \(Not a directory\)"),
])
def test_train_out_must_be_a_writable_directory(tmp_path, capsys, where, message):
    (tmp_path / "file").write_text("not a directory")
    out = str(tmp_path / where)
    assert re.search(message.format(out=re.escape(out)), refused_flag(TRAIN.parse_args, ["--out", out], capsys))


# --- train_vgg_a.py: checks that need the data or a checkpoint -------------------------------------------

def copy_run(run_dir, tmp_path):
    """A copy of the finished tiny run's output folder, to resume without touching the original."""
    for name in ("checkpoint.npz", "log.jsonl"):
        (tmp_path / name).write_bytes((run_dir / name).read_bytes())
    return tmp_path


TRAIN_RUNS = [
    ("limit-above-the-data", ("--limit", "1000"), SystemExit,
     r"error: --limit 1000: only 40 training images are left after holding out --val-size 8 of 48"),
    ("val-size-above-the-data", ("--val-size", "48"), SystemExit,
     r"error: --val-size 48 does not fit: the training set has 48 images, so --val-size must be in 1..47"),
    ("no-data-folder", ("--data", "/nonexistent"), FileNotFoundError, r"ImageFolder: /nonexistent/train is not a"),
    ("warm-start-missing", ("--warm-start", "/nonexistent.npz"), FileNotFoundError,
     r"^warm-start: no checkpoint at /nonexistent.npz"),
    ("resume-without-checkpoint", ("--resume",), FileNotFoundError, r"^resume: no checkpoint at .*checkpoint.npz"),
]


@pytest.mark.parametrize("change, kind, message", [row[1:] for row in TRAIN_RUNS], ids=[row[0] for row in TRAIN_RUNS])
def test_train_settings_that_do_not_fit_the_data(folder, tmp_path, change, kind, message):
    with pytest.raises(kind, match=message):
        TRAIN.main(tiny_run(folder, tmp_path, change))
    assert not (tmp_path / "log.jsonl").exists()  # refused before training


def test_a_warm_start_into_a_net_of_other_kernel_sizes_is_a_one_line_error(folder, run_dir, tmp_path):
    message = (r"error: --warm-start .*checkpoint.npz: warm_start: cannot copy net A's features.0 .* into "
               r"features.0 .*weight shapes \(4, 3, 3, 3\) and \(4, 3, 5, 5\) differ")
    with pytest.raises(SystemExit, match=message):
        TRAIN.main(tiny_run(folder, tmp_path, ("--config", "B-5x5"), ("--warm-start", str(run_dir / "checkpoint.npz"))))
    assert not (tmp_path / "log.jsonl").exists()


@pytest.mark.parametrize("change, message", [
    (("--scale", "32,40"), r"--scale '32' -> '32,40'"),
    (("--limit", "24"), r"--limit 32 -> 24"),
    (("--width", "0.125"), r"--width 0.0625 -> 0.125"),
    (("--batch-size", "8"), r"--batch-size 16 -> 8"),
    (("--seed", "3"), r"--seed 0 -> 3"),
    (("--config", "B"), r"--config 'A' -> 'B'"),
    (("--final-cut", "1"), r"--final-cut 2 -> 1"),
    (("--epochs", "1"), r"--resume: nothing left to train: it is at epoch 1 and --epochs is 1"),
])
def test_resume_refuses_changed_data_and_model_settings(folder, run_dir, tmp_path, change, message):
    out = copy_run(run_dir, tmp_path)
    before = (out / "checkpoint.npz").read_bytes()
    with pytest.raises(SystemExit, match=message):
        TRAIN.main(tiny_run(folder, out, ("--resume",), ("--epochs", "2"), change))
    assert (out / "checkpoint.npz").read_bytes() == before


def test_a_checkpoint_from_before_final_cut_resumes_as_final_cut_0(folder, run_dir, tmp_path):
    out = copy_run(run_dir, tmp_path)
    arrays = dict(np.load(out / "checkpoint.npz"))
    meta = json.loads(arrays["meta"].tobytes())
    del meta["model"]["settings"]["final_cut"]    # as written before the flag existed
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    np.savez(out / "checkpoint.npz", **arrays)
    with pytest.raises(SystemExit, match=r"--final-cut 0 -> 2"):
        TRAIN.main(tiny_run(folder, out, ("--resume",), ("--epochs", "2")))
    TRAIN.main(tiny_run(folder, out, ("--resume",), ("--epochs", "2"), ("--final-cut", "0")))
    assert [json.loads(line)["epoch"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2]


def test_resume_says_what_it_keeps_and_ignores(folder, run_dir, tmp_path, capsys):
    out = copy_run(run_dir, tmp_path)
    TRAIN.main(tiny_run(folder, out, ("--resume",), ("--epochs", "2"), ("--lr", "0.5")))
    printed = capsys.readouterr().out
    assert re.search(r"resumed from epoch 1 of .*: kept its weights, velocities, schedule and optimiser "
                     r"\(lr 0.01, momentum 0.9, weight decay 0.0005\); ignored --lr 0.5", printed)


@pytest.mark.parametrize("val_classes, message", [
    (("a",), r"missing \['b'\], not among the training classes \[\]"),
    (("a", "b", "c"), r"missing \[\], not among the training classes \['c'\]"),
    (("a", "c"), r"missing \['b'\], not among the training classes \['c'\]"),
])
def test_val_classes_must_be_the_training_classes(tmp_path, val_classes, message):
    rng = np.random.default_rng(1)
    for name in CLASSES:
        write_images(tmp_path / "data" / "train" / name, 20, rng)
    for name in val_classes:
        write_images(tmp_path / "data" / "val" / name, 2, rng)
    with pytest.raises(ValueError, match=rf"ImageFolder: the class folders of .*val must be the training classes "
                                         rf"\['a', 'b'\]; {message}"):
        TRAIN.main(tiny_run(tmp_path / "data", tmp_path / "out"))
    assert not (tmp_path / "out" / "log.jsonl").exists()


def test_the_checkpoint_records_the_training_classes(run_dir):
    _, _, meta = read_checkpoint(str(run_dir / "checkpoint.npz"))
    assert meta["model"]["classes"] == list(CLASSES)


# --- evaluate_vgg.py --------------------------------------------------------------------------------------------

EVALUATE_FLAGS = [
    (["--limit", "0"], r"argument --limit: expected an integer >= 1, got '0'"),
    (["--limit", "-5"], r"argument --limit: expected an integer >= 1, got '-5'"),
    (["--scale-step", "-40"], r"argument --scale-step: expected an integer >= 1, got '-40'"),
    (["--scale-step", "0"], r"argument --scale-step: expected an integer >= 1, got '0'"),
    (["--grid", "0"], r"argument --grid: expected an integer >= 1, got '0'"),
    (["--methods", "dense,bogus"], r"argument --methods: unknown methods \['bogus'\] in 'dense,bogus'"),
    (["--device", "tpu"], r"argument --device: expected 'cpu', 'cuda' or 'cuda:<index>', got 'tpu'"),
    (["--dataset", "imagenet"], r"argument --dataset: invalid choice: 'imagenet'"),
    (["--out", "/nonexistent/folder/e.json"], r"argument --out: --out /nonexistent/folder/e.json: the folder "
                                              r"/nonexistent/folder does not exist"),
    (["--out", "/"], r"argument --out: --out / is a directory, expected a file name"),
]


@pytest.mark.parametrize("argv, message", EVALUATE_FLAGS, ids=[" ".join(argv) for argv, _ in EVALUATE_FLAGS])
def test_evaluate_flags_are_refused_before_any_data_is_read(tmp_path, capsys, argv, message):
    argv = argv if "--out" in argv else [*argv, "--out", str(tmp_path / "e.json")]
    assert re.search(message, refused_flag(EVALUATE.parse_args, ["c.npz", *argv], capsys))


def test_evaluate_limit_above_the_test_set(folder, run_dir, tmp_path):
    with pytest.raises(SystemExit, match=r"error: --limit 100: the folder test set has only 8 images"):
        EVALUATE.main([str(run_dir / "checkpoint.npz"), "--dataset", "folder", "--data", str(folder),
                       "--limit", "100", "--out", str(tmp_path / "e.json")])


def test_evaluate_labels_a_folder_by_the_nets_classes(run_dir, tmp_path):
    rng = np.random.default_rng(2)
    for name in ("cat", "dog", "owl"):
        write_images(tmp_path / "train" / name, 1, rng)
        write_images(tmp_path / "val" / name, 1, rng)
    with pytest.raises(SystemExit, match=r"cannot read the folder test set: ImageFolder: the class folders of .*val "
                                         r"must be the training classes \['a', 'b'\]; missing \['a', 'b'\], not "
                                         r"among the training classes \['cat', 'dog', 'owl'\]"):
        EVALUATE.main([str(run_dir / "checkpoint.npz"), "--dataset", "folder", "--data", str(tmp_path),
                       "--out", str(tmp_path / "e.json")])


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"), reason="Fashion-MNIST is not installed")
def test_evaluate_refuses_a_net_of_other_classes(run_dir, tmp_path):
    with pytest.raises(SystemExit, match=r"error: .*checkpoint.npz predicts 2 classes, but the fashion-mnist test set "
                                         r"has 10"):
        EVALUATE.main([str(run_dir / "checkpoint.npz"), "--dataset", "fashion-mnist",
                       "--out", str(tmp_path / "e.json")])


# --- damaged checkpoints, through every command that reads one ------------------------------------------------

def rewrite(source, target, meta_change=None, arrays_change=None):
    """Copy the checkpoint ``source`` to ``target``, its metadata changed by ``meta_change(meta)``, then its
    arrays (the encoded metadata among them) by ``arrays_change(arrays)``."""
    with np.load(source) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(arrays["meta"].tobytes())
    if meta_change:
        meta_change(meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    if arrays_change:
        arrays_change(arrays)
    np.savez(target, **arrays)


class RunsCode:
    """A pickled object that would create the file ``path`` while it is unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def with_bytes(content):
    return lambda good, bad: bad.write_bytes(content)


def with_meta(change):
    return lambda good, bad: rewrite(good, bad, meta_change=change)


def with_arrays(change):
    return lambda good, bad: rewrite(good, bad, arrays_change=change)


def set_meta(text):
    return with_arrays(lambda arrays: arrays.update(meta=np.frombuffer(text, dtype=np.uint8)))


def change_first_weight(change):
    """A damage that replaces the first weight array by ``change(array)``."""
    def damage(arrays):
        name = next(name for name in arrays if name.startswith("model/"))
        arrays[name] = change(arrays[name].copy())
    return with_arrays(damage)


def set_first_to_nan(array):
    array.flat[0] = np.nan
    return array


def save_npy(good, bad):
    with open(bad, "wb") as file:  # np.save(path) would add ".npy" to the name
        np.save(file, np.zeros(3))


def truncate(good, bad):
    bad.write_bytes(good.read_bytes()[:2000])


def pickled_object(good, bad):
    rewrite(good, bad, arrays_change=lambda arrays: arrays.update(
        extra=np.array([RunsCode(str(bad) + ".ran")], dtype=object)))


DAMAGE = {  # name: (how to damage a copy of a good checkpoint, what the message says)
    "truncated": (truncate, r"is not a readable .npz archive: it is truncated or damaged"),
    "zero-bytes": (with_bytes(b""), r"is not a .npz archive: the file is empty \(0 bytes\)"),
    "random-bytes": (with_bytes(np.random.default_rng(0).bytes(4096)),
                     r"is not a .npz archive: it does not start like a zip archive"),
    "a-pickle": (with_bytes(pickle.dumps({"model": 1})), r"is not a .npz archive: it is a Python pickle, which is "
                                                         r"refused"),
    "a-npy-file": (save_npy, r"is not a .npz archive: it holds a single array \(.npy\)"),
    "weights-only": (lambda good, bad: models.vgg("A", 2, 3, 32, 0.0625).save(str(bad)),
                     r"has no 'meta' entry, so it is not a training checkpoint"),
    "meta-not-json": (set_meta(b"{epoch: 1"), r"its 'meta' entry is not JSON text"),
    "meta-a-list": (set_meta(b"[1, 2]"), r"its 'meta' entry should be a JSON object, got list"),
    "meta-without-step": (with_meta(lambda meta: meta.pop("step")), r"meta lacks the keys \['step'\]"),
    "meta-epoch-a-string": (with_meta(lambda meta: meta.update(epoch="1")),
                            r"meta.epoch should be of type int, got '1'"),
    "lr-nan": (with_meta(lambda meta: meta["optimizer"].update(lr=float("nan"))),
               r"meta.optimizer.lr should be a finite number > 0, got nan"),
    "history-short": (with_meta(lambda meta: meta.update(history=[])),
                      r"meta.history should hold the records of epochs 1..1, got epochs \[\]"),
    "no-weights": (with_arrays(lambda arrays: [arrays.pop(name) for name in list(arrays) if "/" in name]),
                   r"holds no weights"),
    "velocity-wrong-shape": (with_arrays(lambda arrays: arrays.update({"velocity/0": np.zeros(3)})),
                             r"the velocity of features.0.weight has shape \(3,\), but the weight has shape"),
    "nan-weight": (change_first_weight(set_first_to_nan), r"features.0.weight holds 1 NaN or infinite values"),
    "integer-weight": (change_first_weight(lambda array: array.astype(np.int64)),
                       r"features.0.weight has dtype int64"),
    "unexpected-entry": (with_arrays(lambda arrays: arrays.update(extra=np.zeros(1))),
                         r"unexpected entries \['extra'\]"),
    "pickled-object-inside": (pickled_object, r"it holds pickled Python objects, which are refused"),
    "a-directory": (lambda good, bad: os.mkdir(bad), r"is a directory, expected a .npz file"),
}


def read_as(command, path, folder):
    """Read the checkpoint ``path`` the way ``command`` does: the scripts' resume, warm start and evaluation."""
    if command == "resume":
        out = os.path.dirname(path)
        return TRAIN.main(tiny_run(folder, out, ("--resume",), ("--epochs", "2")))
    if command == "warm-start":
        return TRAIN.main(tiny_run(folder, os.path.join(os.path.dirname(path), "deeper"), ("--config", "B"),
                                   ("--warm-start", path)))
    return EVALUATE.main([path, "--dataset", "folder", "--data", str(folder), "--out", path + ".json"])


# one reader serves the three commands: every damage goes through resume, a few through the other two
DAMAGED_READS = [(damage, "resume") for damage in DAMAGE] + [
    (damage, command) for command in ("warm-start", "evaluate") for damage in ("truncated", "a-pickle", "nan-weight")]


@pytest.mark.parametrize("damage, command", DAMAGED_READS, ids=[f"{c}-{d}" for d, c in DAMAGED_READS])
def test_a_damaged_checkpoint_is_refused_naming_the_command_and_the_file(folder, run_dir, tmp_path, damage,
                                                                         command):
    path = tmp_path / "checkpoint.npz"
    make, message = DAMAGE[damage]
    make(run_dir / "checkpoint.npz", path)
    with pytest.raises((ValueError, FileNotFoundError), match=rf"^{command}: {re.escape(str(path))}:? .*{message}"):
        read_as(command, str(path), folder)
    assert not os.path.exists(str(path) + ".ran")  # the pickled object never ran


def test_load_vgg_names_the_command(run_dir):
    model, meta = load_vgg(str(run_dir / "checkpoint.npz"), "evaluate")
    assert model.num_classes == 2 and meta["epoch"] == 1


# --- the library --------------------------------------------------------------------------------------------------

def uint8(*shape):
    return Tensor(np.full(shape, 120, dtype=np.uint8))


def floats(*shape, dtype=np.float32):
    return Tensor(np.ones(shape, dtype=dtype))


def vgg_a(**options):
    return models.vgg(**{"config": "A", "num_classes": 2, "in_channels": 1, "input_size": 32, "width": 0.0625,
                         **options})


def load_nan_weights():
    model = vgg_a()
    state = model.state_dict()
    state["classifier.6.bias"][1] = np.nan
    model.load_state_dict(state)


def load_inf_file(tmp_path):
    model = vgg_a()
    state = model.state_dict()
    state["features.0.weight"][...] = np.inf
    np.savez(tmp_path / "w.npz", **state)
    model.load(str(tmp_path / "w.npz"))


LIBRARY = [
    ("uint8-convolution", lambda tmp: F.conv2d(uint8(1, 3, 5, 5), uint8(1, 3, 3, 3)), TypeError,
     r"^conv2d: expected float32 or float64 inputs, got dtype uint8"),
    ("uint8-input-float-weight", lambda tmp: F.conv2d(uint8(1, 3, 5, 5), floats(1, 3, 3, 3)), TypeError,
     r"^conv2d: expected float32 or float64 inputs, got dtype uint8 \(shape \(1, 3, 5, 5\)\)"),
    ("integer-logits", lambda tmp: F.softmax_cross_entropy(Tensor(np.array([[3, 1], [0, 2]])), np.array([0, 1])),
     TypeError, r"^softmax_cross_entropy: expected float32 or float64 inputs, got dtype int64"),
    ("empty-batch-loss", lambda tmp: F.softmax_cross_entropy(floats(0, 10), np.zeros(0, dtype=np.int64)),
     ValueError, r"^softmax_cross_entropy: the mean loss of an empty batch is undefined; .*got logits of shape "
                 r"\(0, 10\)"),
    ("integer-relu", lambda tmp: F.relu(Tensor(np.arange(4))), TypeError,
     r"^relu: expected float32 or float64 inputs, got dtype int64"),
    ("uint8-linear", lambda tmp: F.linear(uint8(2, 3), uint8(4, 3)), TypeError,
     r"^linear: expected float32 or float64 inputs, got dtype uint8"),
    ("bool-max-pool", lambda tmp: F.max_pool2d(Tensor(np.ones((1, 1, 4, 4), dtype=bool))), TypeError,
     r"^max_pool2d: expected float32 or float64 inputs, got dtype bool"),
    ("float16-arithmetic", lambda tmp: floats(3, dtype=np.float16) * 2.0, TypeError,
     r"^multiply: expected float32 or float64 inputs, got dtype float16"),
    ("object-tensor", lambda tmp: Tensor(np.array([object(), 1], dtype=object)), TypeError,
     r"^Tensor: expected numbers \(bool, integer or floating point\), got dtype object"),
    ("string-tensor", lambda tmp: Tensor(["a", "b"]), TypeError,
     r"^Tensor: expected numbers \(bool, integer or floating point\), got dtype <U1 from \['a', 'b'\]"),
    ("complex-tensor", lambda tmp: Tensor(np.ones(2, dtype=complex)), TypeError,
     r"^Tensor: expected numbers .*, got dtype complex128"),
    ("none-tensor", lambda tmp: Tensor(None), TypeError, r"^Tensor: expected numbers .*, got dtype object from None"),
    ("ragged-list", lambda tmp: Tensor([[1.0, 2.0], [3.0]]), TypeError,
     r"^Tensor: cannot make a numeric array of \[\[1.0, 2.0\], \[3.0\]\]: .*inhomogeneous"),
    ("add-shape-mismatch", lambda tmp: floats(3) + floats(4), ValueError,
     r"^add: shapes \(3,\) and \(4,\) do not broadcast together"),
    ("subtract-shape-mismatch", lambda tmp: floats(2, 3) - np.ones((3, 2), dtype=np.float32), ValueError,
     r"^subtract: shapes \(2, 3\) and \(3, 2\) do not broadcast together"),
    ("multiply-shape-mismatch", lambda tmp: floats(5) * floats(2, 4), ValueError,
     r"^multiply: shapes \(5,\) and \(2, 4\) do not broadcast together"),
    ("divide-shape-mismatch", lambda tmp: floats(2) / floats(3), ValueError,
     r"^divide: shapes \(2,\) and \(3,\) do not broadcast together"),
    ("vgg-in-channels-0", lambda tmp: vgg_a(in_channels=0), ValueError,
     r"^vgg: in_channels must be a positive integer, got 0"),
    ("vgg-width-string", lambda tmp: vgg_a(width="0.5"), ValueError, r"^vgg: width must be a finite number > 0, "
                                                                     r"got '0.5'"),
    ("vgg-width-inf", lambda tmp: vgg_a(width=float("inf")), ValueError, r"^vgg: width must be .*, got inf"),
    ("vgg-seed-negative", lambda tmp: vgg_a(seed=-1), ValueError, r"^vgg: seed must be a non-negative integer, "
                                                                  r"got -1"),
    ("vgg-seed-float", lambda tmp: vgg_a(seed=1.5), ValueError, r"^vgg: seed must be .*, got 1.5"),
    ("vgg-num-classes-bool", lambda tmp: vgg_a(num_classes=True), ValueError,
     r"^vgg: num_classes must be a positive integer, got True"),
    ("vgg-input-size-48", lambda tmp: vgg_a(input_size=48), ValueError,
     r"^vgg: input_size must be a positive multiple of 32 .*, got 48"),
    ("vgg-integer-dtype", lambda tmp: vgg_a(dtype=np.int32), ValueError, r"^vgg: dtype must be float32 or float64, "
                                                                         r"got int32"),
    ("vgg-unknown-init", lambda tmp: vgg_a(init="zeros"), ValueError, r"^vgg: unknown init 'zeros'"),
    ("nan-weights-loaded", lambda tmp: load_nan_weights(), ValueError,
     r"^load_state_dict: classifier.6.bias holds 1 non-finite values"),
    ("inf-weights-file", load_inf_file, ValueError, r"^load: .*w.npz: load_state_dict: features.0.weight holds 36 "
                                                    r"non-finite values"),
    ("summary-wrong-channels", lambda tmp: summary(vgg_a(), (3, 32, 32)), ValueError,
     r"^summary: layer features.0 Conv2d\(1, 4, .*\) expects 1 input channels, but input_shape \(3, 32, 32\) "
     r"gives it 3"),
    ("summary-wrong-size", lambda tmp: summary(vgg_a(), (1, 64, 64)), ValueError,
     r"^summary: layer classifier.0 Linear\(32, 256\) expects 32 input features, but input_shape \(1, 64, 64\) "
     r"gives it 128"),
    ("sgd-lr-nan", lambda tmp: SGD(vgg_a().parameters(), lr=float("nan")), ValueError,
     r"^SGD: expected lr > 0, .* all finite, got lr=nan"),
    ("sgd-lr-inf", lambda tmp: SGD(vgg_a().parameters(), lr=float("inf")), ValueError, r"^SGD: .*got lr=inf"),
    ("sgd-weight-decay-nan", lambda tmp: SGD(vgg_a().parameters(), weight_decay=float("nan")), ValueError,
     r"^SGD: .*weight_decay=nan"),
]


@pytest.mark.parametrize("call, kind, message", [row[1:] for row in LIBRARY], ids=[row[0] for row in LIBRARY])
def test_library_inputs_outside_the_contract_are_refused(tmp_path, call, kind, message):
    with pytest.raises(kind, match=message):
        call(tmp_path)


# --- data files that try to run code ------------------------------------------------------------------------------

def test_a_cifar_batch_that_calls_a_function_is_refused_and_the_function_never_runs(tmp_path):
    ran = tmp_path / "ran"
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        with open(tmp_path / name, "wb") as f:
            pickle.dump({b"data": RunsCode(ran), b"labels": [0]}, f, protocol=2)
    with pytest.raises(ValueError, match=rf"^load_cifar10: {re.escape(str(tmp_path / 'data_batch_1'))} was refused: "
                                         rf"it asks for posix.system, but a CIFAR batch holds only dicts"):
        data.load_split("cifar10", "train", str(tmp_path))
    assert not ran.exists()


def test_a_cifar_batch_of_real_arrays_still_loads_with_every_pickle_protocol(tmp_path):
    images = np.arange(2 * 3072, dtype=np.uint64).astype(np.uint8).reshape(2, 3072)
    for protocol in (2, 4, 5):
        with open(tmp_path / "test_batch", "wb") as f:
            pickle.dump({b"data": images, b"labels": [3, 7], b"batch_label": b"x"}, f, protocol=protocol)
        got, labels = load_cifar10(str(tmp_path), "test")
        assert np.array_equal(got.reshape(2, 3072), images) and labels.tolist() == [3, 7]


def test_a_pth_file_that_calls_a_function_is_refused_and_the_function_never_runs(tmp_path):
    torch = pytest.importorskip("torch")
    ran = tmp_path / "ran"
    torch.save({"features.0.weight": RunsCode(ran)}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match=r"^load_torchvision_state_dict: .*evil.pth was refused or is unreadable "
                                         r"\(torch.load with weights_only=True: .*GLOBAL posix.system"):
        models.load_torchvision_state_dict(models.vgg("A", 10, 3, 32, 0.0625), str(tmp_path / "evil.pth"))
    assert not ran.exists()


def test_image_folder_with_other_classes_than_expected(folder):
    with pytest.raises(ValueError, match=r"^ImageFolder: the class folders of .*val must be the training classes "
                                         r"\['a', 'b', 'c'\]; missing \['c'\]"):
        ImageFolder(str(folder / "val"), classes=["a", "b", "c"])
