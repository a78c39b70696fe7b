"""The trainer refuses bad numbers, hostile or binary configs and unwritable run folders in one
sentence before anything is written, and stops in one sentence when the loss turns nan or inf,
leaving the checkpoint it already wrote as it was."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner, Result

from tests.cli import assert_clean_failure
from tests.common.helpers import (assert_refused, billion_laughs, not_finite, refusals,
                                  run_without_permission_override)
from tests.train.test_main import FAST, TRAIN, make_set, read_metrics, run_train
from train.checkpoint import save_checkpoint
from train.main import main as train_main

# 24 groups: 3 steps of 8, and the default warm-up, so that the warm-up flags may be tried
QUICK = ["--batch-size", 8, "--workers", 0, "--log-every", 1, "--no-progress", "--backbone", "convnet-small",
         "--epochs", 1]


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return make_set(tmp_path_factory.mktemp("data") / "set")


def train(*args: object) -> Result:
    return CliRunner().invoke(train_main, [str(arg) for arg in args])


BAD_FLAGS = {
    **not_finite("--lr", "x>0", "nan", "inf"),
    **not_finite("--temperature", "x>0", "nan"),
    **not_finite("--weight-decay", "x>=0", "nan"),
    **not_finite("--crop-min-scale", "0.01<=x<=1.0", "nan"),
    **not_finite("--warmup-epochs", "x>=0", "nan", "inf"),
    "huge warm-up epochs": (["--warmup-epochs", "1e300"],
                            "--warmup 1e+300epochs is 3e+300 steps, which leaves no step of the run's 3"),
    "huge warm-up": (["--warmup", "1e400steps"], "'1e400steps' is too large to be a warm-up length."),
    "negative seed": (["--seed", "-1"], "'--seed': -1 is not in the range 0<=x<=9223372036854775807."),
    "huge crop": (["--crop-size", "100000"], "'--crop-size': 100000 is not in the range 8<=x<=2048."),
    "huge projection": (["--projection-dim", "100000000"],
                        "'--projection-dim': 100000000 is not in the range 1<=x<=16384."),
}


@refusals(BAD_FLAGS)
def test_a_bad_number_is_refused_naming_the_option_and_its_range(tmp_path, small_set, given, message):
    result = train("--data", small_set, "--out", tmp_path / "run", *QUICK, *given)
    assert_refused(result, message)
    assert not (tmp_path / "run").exists()


BAD_CONFIGS = {
    "nan lr": ({"lr": math.nan}, "Invalid value for '--lr': nan is not a finite number in the range x>0."),
    "nan temperature": ({"temperature": math.nan}, "'--temperature': nan is not a finite number"),
    "nan weight decay": ({"weight_decay": math.nan}, "'--weight-decay': nan is not a finite number"),
    "fractional epochs": ({"epochs": 1.5}, "Invalid value for '--epochs': 1.5 is not a whole number."),
    "inf epochs": ({"epochs": math.inf}, "Invalid value for '--epochs': inf is not a whole number."),
    "number for a flag": ({"small_images": 5}, "gives small_images the value 5, which is not true or false."),
    "mapping for the data": ({"data": {"sets/a": 1}}, "gives data the value {'sets/a': 1}, which is not text."),
}


@refusals(BAD_CONFIGS)
def test_a_bad_value_in_a_yaml_config_is_refused_in_one_sentence(tmp_path, small_set, given, message):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(given))
    data = [] if "data" in given else ["--data", small_set]
    result = train("--config", config, *data, "--out", tmp_path / "run", *FAST)
    assert_refused(result, message)
    assert not (tmp_path / "run").exists()


def test_a_binary_config_is_one_sentence(tmp_path, small_set):
    config = tmp_path / "run.yaml"
    config.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    result = train("--config", config, "--data", small_set, "--out", tmp_path / "run", *QUICK)
    assert_refused(result, f"Invalid value for '--config': {config} is not a text file (it is not UTF-8).")


def test_a_billion_laughs_config_is_refused_at_once(tmp_path, small_set):
    config = tmp_path / "run.yaml"
    config.write_text(billion_laughs())
    result = run_train("--config", config, "--out", tmp_path / "run", *QUICK, timeout=120)
    assert_clean_failure(result, f"{config} is not usable YAML: it uses a YAML alias (*name)")
    assert not (tmp_path / "run").exists()


def test_an_out_under_a_file_is_one_sentence(tmp_path, small_set):
    (tmp_path / "file").write_text("not a folder")
    result = train("--data", small_set, "--out", tmp_path / "file" / "run", *QUICK)
    assert_refused(result, f"Cannot write {tmp_path / 'file' / 'run'}: a part of its folder path is a file, "
                           "not a folder.")


def test_an_out_without_write_permission_is_one_sentence(tmp_path, small_set):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    result = run_without_permission_override(TRAIN, "--data", small_set, "--out", locked / "run", *QUICK)
    assert_clean_failure(result, f"Permission denied while writing {locked / 'run'}")
    assert list(locked.iterdir()) == []


def test_a_manifest_without_read_permission_is_one_sentence(tmp_path, small_set):
    unreadable = tmp_path / "unreadable"
    shutil.copytree(small_set, unreadable)
    (unreadable / "manifest.json").chmod(0)
    result = run_without_permission_override(TRAIN, "--data", unreadable, "--out", tmp_path / "run", *QUICK)
    assert_clean_failure(result, str(unreadable / "manifest.json"), "Permission denied")
    assert not (tmp_path / "run").exists()


def test_a_loss_that_turns_nan_stops_the_run_before_any_checkpoint(tmp_path, small_set):
    result = train("--data", small_set, "--out", tmp_path / "run", *QUICK, "--lr", "1e30")
    assert_refused(result, "The loss turned nan or inf ")
    assert "so training stopped and no checkpoint was written; lower --lr or raise --temperature." in result.output
    assert not (tmp_path / "run" / "last.pt").exists()
    assert all(math.isfinite(record["loss"]) for record in read_metrics(tmp_path / "run"))


def test_a_loss_that_turns_nan_after_a_resume_leaves_the_checkpoint_as_it_was(tmp_path, small_set):
    run = tmp_path / "run"
    args = ["--data", small_set, "--out", run, *FAST, "--backbone", "convnet-small", "--epochs", 2]
    assert train(*args).exit_code == 0
    # The state at the end of epoch 1, with momentum gone bad: its first step makes the weights nan.
    state = torch.load(run / "last.pt", weights_only=True)
    for buffers in state["optimizer"]["state"].values():
        buffers["momentum_buffer"].fill_(math.nan)
    save_checkpoint(run / "last.pt", {**state, "epoch": 1, "step": 3})
    digest = hashlib.sha256((run / "last.pt").read_bytes()).hexdigest()

    result = train(*args, "--resume")

    assert_refused(result, f"The loss turned nan or inf at step 5, so training stopped and {run / 'last.pt'} "
                           "still holds step 3; lower --lr or raise --temperature.")
    assert hashlib.sha256((run / "last.pt").read_bytes()).hexdigest() == digest
    assert [record["step"] for record in read_metrics(run)] == [1, 2, 3, 4]
    assert all(math.isfinite(json.loads(line)["loss"]) for line in (run / "metrics.jsonl").read_text().splitlines())
