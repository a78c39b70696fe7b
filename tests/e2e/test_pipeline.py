"""The whole tool chain on CPU, as a lab runs it: generate, ingest, train with DDP, kill, resume,
evaluate, report. Generate, ingest and the trainer are real processes of the real command lines (the
trainer under torchrun, killed and resumed); evaluate runs its command line in this process, its
shell being tested in tests/evaluate."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evaluate.cli import cli as evaluate_cli
from tests.cli import REPO, cli_env, kill_every_process_of, run_in_process, run_module

TRAIN = str(REPO / "train" / "main.py")
CLASSES = {"red_stripes": (200, 40, 40), "green_dots": (40, 180, 60), "blue_checks": (50, 70, 210)}


def write_image_folder(root: Path, per_class: int, seed: int) -> Path:
    """Photos stand-in: one folder per class, class-dependent colour and texture plus noise."""
    rng = np.random.default_rng(seed)
    for index, (name, colour) in enumerate(CLASSES.items()):
        (root / name).mkdir(parents=True)
        for item in range(per_class):
            y, x = np.mgrid[0:40, 0:48]
            pattern = [(x // 4) % 2, ((x // 5) + (y // 5)) % 2, ((x + y) // 6) % 2][index]
            pixels = np.asarray(colour) * (0.6 + 0.4 * pattern[..., None])
            pixels = pixels + rng.normal(0, 25, pixels.shape)
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / name / f"{item}.png")
    return root


def torchrun(*args: object, timeout: float = 600, **popen) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
               "2", TRAIN, *map(str, args)]
    return subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("e2e")
    sets = {"synthetic": root / "synthetic", "train": root / "real-train", "val": root / "real-val"}
    ok(run_module("generate", "--n-anchors", 96, "--views", 3, "--image-size", 32,
                  "--groups-per-shard", 32, "--out", sets["synthetic"], "--no-progress"))
    for split, per_class, seed in (("train", 20, 1), ("val", 10, 2)):
        folder = write_image_folder(root / f"photos-{split}", per_class, seed)
        ok(run_module("shards", "ingest", folder, sets[split], "--image-size", 32,
                      "--groups-per-shard", 16))
    return sets


def test_generate_train_kill_resume_evaluate_report(tmp_path, data):
    run = tmp_path / "runs" / "simclr"
    args = ["--data", data["synthetic"], "--out", run, "--method", "simclr", "--epochs", 4,
            "--batch-size", 8, "--workers", 1, "--log-every", 1, "--warmup-epochs", 1,
            "--backbone", "convnet-small", "--no-progress"]
    # 96 groups / (8 per rank x 2 ranks) = 6 steps per epoch.
    process = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                "--nproc-per-node", "2", TRAIN, *map(str, args)], env=cli_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    while not (run / "last.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline, "training never checkpointed"
        time.sleep(0.05)
    kill_every_process_of(run)  # torchrun starts each rank in a session of its own
    process.wait()
    killed_at = torch.load(run / "last.pt", weights_only=True)
    assert killed_at["epoch"] < 4, "killed too late to test --resume"

    ok(torchrun(*args, "--resume"))
    final = torch.load(run / "last.pt", weights_only=True)
    assert final["epoch"] == 4 and final["step"] == 24
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 25)), "resume left holes or duplicates in metrics.jsonl"
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(losses))

    for metric, extra in (("linear", []), ("knn", ["--k", 5])):
        ok(run_in_process(evaluate_cli, "evaluate", metric, "--checkpoint", run / "last.pt", "--train", data["train"],
                          "--val", data["val"], *extra))
        results = json.loads((run / "eval" / metric / "results.json").read_text())
        assert 0.0 <= results["top1"] <= 1.0
        assert results["top1"] > 1 / len(CLASSES) + 0.15, results  # class colours are easy
        assert results["checkpoint_sha256"]
        manifests = {name: (data[name] / "manifest.json").read_bytes() for name in ("train", "val")}
        assert results["train_set"]["manifest_sha256"] == hashlib.sha256(manifests["train"]).hexdigest()
        assert results["val_set"]["manifest_sha256"] == hashlib.sha256(manifests["val"]).hexdigest()

    report = ok(run_in_process(evaluate_cli, "evaluate", "report", run)).stdout
    assert "simclr" in report and str(data["synthetic"]) in report


def test_supcon_on_real_images_with_two_ranks(tmp_path, data):
    run = tmp_path / "supcon"
    ok(torchrun("--data", data["train"], "--out", run, "--method", "supcon", "--epochs", 1,
                "--batch-size", 6, "--workers", 1, "--backbone", "convnet-small", "--no-progress", "--log-every", 1))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == list(range(1, 6))  # 60 groups / (6 x 2)
    assert all(np.isfinite(record["loss"]) for record in records)
