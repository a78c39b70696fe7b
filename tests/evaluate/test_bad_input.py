"""``python -m evaluate`` on bad numbers, empty sets, unwritable folders and run folders built to hang
or crash a reader: one sentence and a non-zero exit each, and the feature cache where --out says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from evaluate.cli import cli
from tests.cli import assert_clean_failure, run_module
from tests.common.helpers import billion_laughs, run_without_permission_override
from tests.evaluate.helpers import write_checkpoint, write_labelled_set


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sets")
    return {"train": write_labelled_set(root / "train", groups=10, seed=1),
            "val": write_labelled_set(root / "val", groups=5, seed=2),
            "empty": write_labelled_set(root / "empty", groups=0, seed=3),
            "checkpoint": write_checkpoint(root / "run" / "last.pt", weights_backbone="convnet-small")}


def evaluate(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def metric_args(sets: dict[str, Path], metric: str, *extra: object) -> list[object]:
    return [metric, "--checkpoint", sets["checkpoint"], "--train", sets["train"], "--val", sets["val"],
            "--no-progress", *extra]


BAD_NUMBERS = {
    "nan kNN temperature": (["knn", "--temperature", "nan"],
                            "Invalid value for '--temperature': nan is not a finite number in the range x>=0.02."),
    "kNN temperature whose votes overflow": (["knn", "--temperature", "0.001"],
                                             "Invalid value for '--temperature': 0.001 is not in the range x>=0.02."),
    "nan holdout": (["linear", "--holdout", "nan"],
                    "Invalid value for '--holdout': nan is not a finite number in the range 0<x<1."),
    "negative seed": (["linear", "--seed", "-1"], "Invalid value for '--seed': -1 is not in the range 0<=x<="),
}


@pytest.mark.parametrize("case", sorted(BAD_NUMBERS))
def test_a_bad_number_is_refused_before_anything_is_written(sets, case):
    (metric, *flags), message = BAD_NUMBERS[case]
    result = evaluate(*metric_args(sets, metric, *flags))
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (sets["checkpoint"].parent / "eval").exists()


def test_an_empty_set_is_one_sentence(sets, tmp_path):
    result = evaluate("knn", "--checkpoint", sets["checkpoint"], "--train", sets["empty"], "--val", sets["val"],
                      "--out", tmp_path / "eval", "--no-progress")
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {sets['empty']} holds no images, so there is nothing to evaluate on.\n"
    assert not (tmp_path / "eval").exists()


def test_the_feature_cache_goes_under_out_when_it_is_given(sets, tmp_path):
    checkpoint = write_checkpoint(tmp_path / "run" / "last.pt", weights_backbone="convnet-small")
    result = evaluate("knn", "--checkpoint", checkpoint, "--train", sets["train"], "--val", sets["val"], "--k", 3,
                      "--out", tmp_path / "eval", "--no-progress")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "eval" / "features").glob("features-*.npz"))) == 2
    assert (tmp_path / "eval" / "results.json").is_file()
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == ["last.pt"]


def test_an_out_under_a_file_is_one_sentence(sets, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    result = evaluate(*metric_args(sets, "knn", "--k", 3, "--out", tmp_path / "file" / "eval"))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: Cannot write {tmp_path / 'file' / 'eval'}"), result.stderr
    assert "a part of its folder path is a file, not a folder." in result.stderr


def test_an_out_without_write_permission_is_one_sentence(sets, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    result = run_without_permission_override("-m", "evaluate", *metric_args(sets, "knn", "--k", 3,
                                                                             "--out", locked / "eval"))
    assert_clean_failure(result, f"Permission denied while writing {locked / 'eval'}")
    assert list(locked.iterdir()) == []


def test_a_manifest_without_read_permission_is_one_sentence(sets, tmp_path):
    unreadable = tmp_path / "unreadable"
    shutil.copytree(sets["train"], unreadable)
    (unreadable / "manifest.json").chmod(0)
    result = run_without_permission_override("-m", "evaluate", "knn", "--checkpoint", sets["checkpoint"],
                                             "--train", unreadable, "--val", sets["val"], "--out", tmp_path / "eval")
    assert_clean_failure(result, str(unreadable / "manifest.json"), "Permission denied")
    assert not (tmp_path / "eval").exists()


def test_report_refuses_a_billion_laughs_config_at_once(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(billion_laughs())
    result = run_module("evaluate", "report", run, timeout=300)  # generous for a loaded machine: a hang is endless
    assert_clean_failure(result, f"{run / 'config.yaml'} is not usable YAML: it uses a YAML alias (*name)")


BAD_RESULTS = {
    "nested": ("[" * 100_000 + "]" * 100_000, "is nested more deeply than a reader follows."),
    "top1 that is text": (json.dumps({"top1": "99"}), "has a top1 or top1_std that is not a number between 0 and 1."),
    "top1_std that is a list": (json.dumps({"top1": 0.5, "top1_std": [0.1]}),
                                "has a top1 or top1_std that is not a number between 0 and 1."),
}


@pytest.mark.parametrize("case", sorted(BAD_RESULTS))
def test_report_refuses_a_results_json_built_to_crash_it(tmp_path, case):
    text, message = BAD_RESULTS[case]
    results = tmp_path / "run" / "eval" / "knn" / "results.json"
    results.parent.mkdir(parents=True)
    results.write_text(text)
    result = evaluate("report", tmp_path / "run")
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {results} {message}\n"


def test_a_pipe_location_is_read_only_with_allow_pipe(sets, tmp_path):
    def knn_on(val: str, out: Path, *extra: str) -> Result:
        return evaluate("knn", "--checkpoint", sets["checkpoint"], "--train", sets["train"], "--val", val,
                        "--out", out, "--k", 3, "--no-progress", *extra)

    proof = tmp_path / "ran"
    refused = knn_on(f"pipe:touch {proof}; cat {sets['val']}", tmp_path / "refused")
    assert refused.exit_code == 2 and not proof.exists() and "--allow-pipe" in refused.output

    allowed = knn_on(f"pipe:cat {sets['val']}", tmp_path / "allowed", "--allow-pipe")
    assert allowed.exit_code == 0, allowed.output
    assert (tmp_path / "allowed" / "results.json").is_file()
