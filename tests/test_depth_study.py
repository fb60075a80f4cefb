"""benchmarks/depth_study.py: which runs it starts, in which order, what it skips or resumes, and its table.

The training and evaluation scripts are replaced by a stand-in that writes the
files they would write (a few epochs' log, result.json, checkpoint.npz,
evaluation.json), so the study's bookkeeping is tested in a second; the
scripts themselves are tested in test_train.py and test_evaluate.py.
"""
import importlib.util
import json
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("depth_study", ROOT / "benchmarks" / "depth_study.py")
depth_study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(depth_study)


def flag(command, name):
    return command[command.index(name) + 1]


class FakeScripts:
    """Stands in for subprocess.call: records each command and writes what the script would have written."""

    def __init__(self, fail_on=None):
        self.commands, self.fail_on = [], fail_on

    def __call__(self, command, stdout, stderr, env):
        self.commands.append(command)
        if self.fail_on and self.fail_on in command:
            return 3
        if command[1] == depth_study.TRAIN:
            self.train(command)
        else:
            self.evaluate(command)
        return 0

    def train(self, command):
        out, config = pathlib.Path(flag(command, "--out")), flag(command, "--config")
        errors = {"A": [0.3, 0.2, 0.15]}.get(config, [0.25, 0.14, 0.12])
        (out / "checkpoint.npz").write_bytes(b"weights")
        (out / "log.jsonl").write_text("".join(json.dumps({"epoch": i + 1, "val_top1_error": e}) + "\n"
                                               for i, e in enumerate(errors)))
        (out / "result.json").write_text(json.dumps({"test_top1_error": errors[-1], "test_top5_error": 0.01,
                                                     "epochs": len(errors), "train_images_per_second": [90, 100, 110]}))

    def evaluate(self, command):
        rows = [{"method": "multi-crop", "test_scales": "32", "top1_error": 0.5, "top5_error": 0.5},
                {"method": "multi-crop", "test_scales": "32,40", "top1_error": 0.11, "top5_error": 0.002}]
        pathlib.Path(flag(command, "--out")).write_text(json.dumps({"rows": rows}))

    def runs_trained(self):
        return [os.path.basename(flag(c, "--out")) for c in self.commands if c[1] == depth_study.TRAIN]


@pytest.fixture
def scripts(monkeypatch):
    fake = FakeScripts()
    monkeypatch.setattr(depth_study.subprocess, "call", fake)
    return fake


def test_every_run_is_trained_and_evaluated_once_and_a_second_study_repeats_nothing(tmp_path, scripts):
    depth_study.main(["--out", str(tmp_path), "--limit", "500", "--grid", "3"])
    names = [name for name, *_ in depth_study.RUNS]
    assert sorted(scripts.runs_trained()) == sorted(names)
    assert scripts.runs_trained()[0] == "A"   # the warm starts need it
    evaluations = [c for c in scripts.commands if c[1] == depth_study.EVALUATE]
    assert len(evaluations) == len(names)
    assert all(flag(c, "--methods") == "multi-crop" and flag(c, "--scale-step") == "8" and flag(c, "--grid") == "3"
               for c in evaluations)
    for command in scripts.commands:
        if command[1] == depth_study.TRAIN:
            assert flag(command, "--limit") == "500" and "--resume" not in command
            warm = flag(command, "--out").endswith("-warm")
            assert ("--warm-start" in command) == warm
            if warm:
                assert flag(command, "--warm-start") == str(tmp_path / "A" / "checkpoint.npz")
    scripts.commands.clear()
    depth_study.main(["--out", str(tmp_path)])
    assert scripts.commands == []


def test_a_run_cut_short_is_resumed_and_an_unevaluated_one_is_evaluated(tmp_path, scripts):
    (tmp_path / "B").mkdir(parents=True)
    (tmp_path / "B" / "checkpoint.npz").write_bytes(b"epoch 3 of 10")
    depth_study.main(["--out", str(tmp_path), "--only", "B"])
    train, evaluate = scripts.commands
    assert "--resume" in train and "--warm-start" not in train and flag(train, "--config") == "B"
    assert flag(evaluate, "--out") == str(tmp_path / "B" / "evaluation.json") + ".tmp"
    assert (tmp_path / "B" / "evaluation.json").exists() and not (tmp_path / "B" / "evaluation.json.tmp").exists()
    times = json.loads((tmp_path / "B" / "times.json").read_text())
    assert set(times) == {"train", "evaluate"} and set(times["train"][0]) == {"seconds", "load_before", "load_after"}


def test_train_only_trains_and_a_later_study_evaluates(tmp_path, scripts):
    depth_study.main(["--out", str(tmp_path), "--only", "A,B-warm", "--train-only"])
    assert scripts.runs_trained() == ["A", "B-warm"] and len(scripts.commands) == 2
    scripts.commands.clear()
    depth_study.main(["--out", str(tmp_path), "--only", "A,B-warm"])
    assert scripts.runs_trained() == [] and [c[1] for c in scripts.commands] == [depth_study.EVALUATE] * 2
    assert "| — |" not in (tmp_path / "depth_study_table.md").read_text()


def test_the_table_has_a_row_per_finished_run_with_its_errors(tmp_path, scripts):
    depth_study.main(["--out", str(tmp_path), "--only", "A,E,B-5x5"])
    table = (tmp_path / "depth_study_table.md").read_text()
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[1:-1]]
            for line in table.splitlines() if line.startswith("| ") and not line.startswith("| run")}
    assert set(rows) == {"A", "E", "B-5x5"}
    name, config, layers, parameters, init, seed, single, multi, epochs, reach = rows["E"][:10]
    assert (config, layers, init, seed) == ("E", "19", "Glorot", "0")
    assert single == "12.00 / 1.00" and multi == "11.00 / 0.20" and epochs == "3"
    assert reach == "2"            # E's validation error 0.14 after epoch 2 is below A's final 0.15
    assert rows["B-5x5"][2] == "8"  # five 5x5 convolutions and three FC layers
    assert "3 of 13 runs finished" in table


def test_a_failed_script_stops_the_study_naming_its_log(tmp_path, monkeypatch):
    monkeypatch.setattr(depth_study.subprocess, "call", FakeScripts(fail_on="A-LRN"))
    with pytest.raises(RuntimeError, match=r"exit code 3; see .*A-LRN.*train\.out"):
        depth_study.main(["--out", str(tmp_path), "--only", "A-LRN"])


def test_an_unknown_run_name_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        depth_study.main(["--out", str(tmp_path), "--only", "A,F"])
    assert "unknown run(s) F" in capsys.readouterr().err
