"""train/main.py as a user runs it: one process on CPU, real shard sets, real checkpoints."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from generate.cli import main as generate_main
from train.main import main as train_main
from tests.cli import PLUGIN, REPO, assert_clean_failure, cli_env, run_in_process

TRAIN = REPO / "train" / "main.py"
FAST = ["--batch-size", "8", "--backbone", "convnet-small", "--workers", "0", "--log-every", "1", "--no-progress",
        "--warmup", "0"]
SMALL = ["--backbone", "convnet-small", "--workers", "0", "--log-every", "1", "--no-progress"]


def make_set(out: Path, generator: str = "make_conditional", anchors: int = 24) -> Path:
    result = CliRunner().invoke(generate_main, [
        "--generator", f"{PLUGIN}:{generator}", "--n-anchors", str(anchors), "--views", "3",
        "--groups-per-shard", "8", "--out", str(out), "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def run_train(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TRAIN), *map(str, args)], env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def train_in_process(*args: object) -> subprocess.CompletedProcess:
    """train/main.py's command in this process (no interpreter start-up), its result read as a
    process's: for refusals and short runs whose shell adds nothing that run_train does not test."""
    return run_in_process(train_main, "train/main.py", *args)


def torchrun_train(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    """Two ranks on CPU (gloo), as tests/e2e runs them."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(TRAIN), *map(str, args)], env=cli_env(), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def labelled_set(tmp_path_factory) -> Path:
    return make_set(tmp_path_factory.mktemp("data") / "labelled")


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_writes_run_folder_and_a_loadable_checkpoint(tmp_path, labelled_set):
    result = run_train("--data", labelled_set, "--out", tmp_path / "run", "--epochs", 2, *FAST)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    metrics = read_metrics(run)
    assert [record["step"] for record in metrics] == [1, 2, 3, 4, 5, 6]  # 24 groups / 8 per step
    assert all(record["loss"] > 0 and record["images_per_s"] > 0 for record in metrics)
    assert all(0 <= record["data_wait_share"] <= 1 for record in metrics)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["crop_size"] == 32 and config["small_images"] is True and config["lr"] == 0.05
    provenance = json.loads((run / "provenance.json").read_text())
    manifest = (labelled_set / "manifest.json").read_bytes()
    assert provenance["data"][0]["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 6
    assert any(key.startswith("encoder.") for key in state["model"])


def test_yaml_config_supplies_options_and_flags_win(tmp_path, labelled_set):
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump({"data": [str(labelled_set)], "epochs": 1, "temperature": 0.3,
                                           "batch_size": 4, "backbone": "convnet-small"}))
    result = train_in_process("--config", config_file, "--out", tmp_path / "run", "--batch-size", 8,
                       "--workers", 0, "--no-progress")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["temperature"] == 0.3 and config["batch_size"] == 8 and config["epochs"] == 1
    assert config["backbone"] == "convnet-small"


def test_supcon_and_multipos_train(tmp_path, labelled_set):
    for method, views in (("supcon", 2), ("multipos", 3)):
        result = train_in_process("--data", labelled_set, "--out", tmp_path / method, "--epochs", 1,
                                  "--method", method, "--views", views, *FAST)
        assert result.returncode == 0, result.stderr
        assert len(read_metrics(tmp_path / method)) == 3


def test_corrupt_sample_stops_with_the_shard_name_or_is_skipped_and_counted(tmp_path, labelled_set):
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in labelled_set.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    shard = broken / "shard-000001.tar"
    data = bytearray(shard.read_bytes())
    at = data.index(b"0000000009.latents.npy")  # damage one member's name: the sample loses it
    data[at:at + 10] = b"0000000009"[::-1]
    shard.write_bytes(bytes(data))

    stopped = train_in_process("--data", broken, "--out", tmp_path / "stop", "--epochs", 1, *FAST)
    assert_clean_failure(stopped, "shard-000001.tar")

    skipped = train_in_process("--data", broken, "--out", tmp_path / "skip", "--epochs", 1,
                               "--skip-corrupt", *FAST)
    assert skipped.returncode == 0, skipped.stderr
    assert sum(record["skipped"] for record in read_metrics(tmp_path / "skip")) >= 1


BAD_INPUT = {
    "unknown method": (["--method", "byol"], "byol"),
    "unknown backbone": (["--backbone", "vgg11"], "vgg11"),
    "missing set": (["--data", "/no/such/set"], "/no/such/set"),
    "batch larger than data": (["--batch-size", "64"], "larger than the data"),
    "simclr with many views": (["--views", "4"], "multipos"),
    "bf16 on cpu": (["--precision", "bf16"], "CUDA"),
    "epochs and steps": (["--steps", "5"], "--epochs and --steps both set the training length"),
    "warm-up as long as the run": (["--warmup", "3epochs"], "--warmup 3epochs is 9 steps, which leaves no step"),
    "warm-up that is not a length": (["--warmup", "10"], "write 10epochs or 10steps"),
    "warm-up given twice": (["--warmup", "0.1", "--warmup-epochs", "1"], "give one"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_one_sentence(tmp_path, labelled_set, case):
    flags, fragment = BAD_INPUT[case]
    args = ["--data", labelled_set, "--out", tmp_path / "run", "--epochs", 1, "--workers", 0,
            "--no-progress", "--batch-size", 8]
    result = CliRunner().invoke(train_main, [*map(str, args), *flags])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert fragment in result.output
    assert not (tmp_path / "run").exists()


def test_supcon_refuses_a_set_without_classes(tmp_path):
    unlabelled = make_set(tmp_path / "unlabelled", generator="make_unconditional", anchors=16)
    result = train_in_process("--data", unlabelled, "--out", tmp_path / "run", "--method", "supcon", *FAST)
    assert_clean_failure(result, "no class labels")


def test_a_manifest_of_another_version_is_refused(tmp_path, labelled_set):
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in labelled_set.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["version"] = 7
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = train_in_process("--data", copy, "--out", tmp_path / "run", *FAST)
    assert_clean_failure(result, "version 7")


def test_resume_refuses_other_settings_and_a_new_run_refuses_an_old_folder(tmp_path, labelled_set):
    run = tmp_path / "run"
    assert train_in_process("--data", labelled_set, "--out", run, "--epochs", 1, *FAST).returncode == 0
    before = (run / "last.pt").read_bytes()
    other = train_in_process("--data", labelled_set, "--out", run, "--epochs", 1, "--temperature", 0.5,
                             "--resume", *FAST)
    assert_clean_failure(other, "temperature")
    again = train_in_process("--data", labelled_set, "--out", run, "--epochs", 1, *FAST)
    assert_clean_failure(again, "--resume")
    assert (run / "last.pt").read_bytes() == before


def test_resume_survives_a_torn_metrics_line_and_refuses_data_changed_in_place(tmp_path):
    data, run = make_set(tmp_path / "data"), tmp_path / "run"
    assert train_in_process("--data", data, "--out", run, "--epochs", 1, *FAST).returncode == 0
    with open(run / "metrics.jsonl", "a") as metrics:
        metrics.write('{"step": 4, "epo')  # a write cut off by a crash
    resumed = train_in_process("--data", data, "--out", run, "--epochs", 1, "--resume", *FAST)
    assert resumed.returncode == 0, resumed.stderr
    assert [record["step"] for record in read_metrics(run)] == [1, 2, 3]

    shutil.rmtree(data)
    make_set(data, anchors=32)  # the same path now holds other groups
    changed = train_in_process("--data", data, "--out", run, "--epochs", 2, "--resume", *FAST)
    assert_clean_failure(changed, "data_manifests")


def test_the_default_schedule_warms_up_then_decays_over_a_short_run(tmp_path, labelled_set):
    run = tmp_path / "run"
    result = train_in_process("--data", labelled_set, "--out", run, "--epochs", 8, "--batch-size", 8, *SMALL)
    assert result.returncode == 0, result.stderr
    lrs = [record["lr"] for record in read_metrics(run)]
    peak = 0.05 * 8 / 256
    assert len(lrs) == 24  # 24 groups / 8 per step x 8 epochs; the default warm-up is 5% of it: 2 steps
    assert lrs[0] == pytest.approx(peak / 2) and lrs[1] == pytest.approx(peak) == max(lrs)
    decay = lrs[2:]  # the cosine starts at the peak the warm-up reached, then falls at every step
    assert decay[0] == pytest.approx(peak) and all(later < earlier for earlier, later in zip(decay, decay[1:]))
    assert lrs[-1] < 0.02 * peak
    schedule = yaml.safe_load((run / "config.yaml").read_text())["schedule"]
    assert schedule == {"total_steps": 24, "steps_per_epoch": 3, "epochs": 8, "warmup_steps": 2,
                        "peak_lr": pytest.approx(peak)}
    assert "Schedule: 24 steps (8 epochs of 3 steps); linear warm-up over 2 steps (--warmup 0.05)" in result.stdout


def test_steps_are_the_same_on_sets_of_any_size_on_every_rank_and_a_resume_reaches_them(tmp_path):
    """--steps 12 on two ranks with 4 groups each per step: 40 groups are 2 epochs of 5 steps and 2
    steps of a third (the last pass cut short); a run killed after its first epoch resumes to 12."""
    larger = make_set(tmp_path / "larger", anchors=40)
    run = tmp_path / "larger"
    result = torchrun_train("--data", larger, "--out", run, "--steps", 12, "--batch-size", 4, "--save-every", 1,
                            *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Trained to step 12 on each of 2 ranks" in result.stdout  # every rank counted its steps
    assert [record["step"] for record in read_metrics(run)] == list(range(1, 13))
    state = torch.load(run / "last.pt", weights_only=True)
    assert (state["step"], state["epoch"]) == (12, 3)
    assert state["config"]["schedule"]["total_steps"] == 12
    assert [path.name for path in sorted(run.glob("epoch-*.pt"))] == ["epoch-0001.pt", "epoch-0002.pt",
                                                                       "epoch-0003.pt"]

    shutil.copy(run / "epoch-0001.pt", run / "last.pt")  # as if killed during the second epoch
    resumed = torchrun_train("--data", larger, "--out", run, "--steps", 12, "--batch-size", 4, "--resume", *SMALL)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [record["step"] for record in read_metrics(run)] == list(range(1, 13))
    state = torch.load(run / "last.pt", weights_only=True)
    assert (state["step"], state["epoch"]) == (12, 3)


def test_zero_steps_saves_the_untrained_encoder_as_a_baseline(tmp_path, labelled_set):
    run = tmp_path / "run"
    result = train_in_process("--data", labelled_set, "--out", run, "--steps", 0, "--batch-size", 8, *SMALL)
    assert result.returncode == 0, result.stderr
    state = torch.load(run / "last.pt", weights_only=True)
    assert (state["step"], state["epoch"]) == (0, 0) and not (run / "metrics.jsonl").exists()
