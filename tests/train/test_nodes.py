"""Several nodes on one machine: two torchrun launches that meet through the c10d rendezvous, and
the SLURM examples run at tiny size with SLURM's variables set by hand and srun as a plain exec."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from tests.cli import PLUGIN, REPO, cli_env

SLURM = REPO / "examples" / "slurm"
TINY_TRAIN = "--backbone convnet-small --batch-size 4 --epochs 1 --workers 1 --log-every 1 --warmup 0"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_together(commands: list[list[str]], env: dict[str, str], timeout: float = 300) -> list[str]:
    """Starts every command at once (one per "node") and returns their outputs once all succeed."""
    processes = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for command in commands]
    outputs = [process.communicate(timeout=timeout)[0] for process in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    return outputs


def slurm_env(tmp_path: Path, **variables: object) -> dict[str, str]:
    """The test environment with an ``srun`` that runs its command once, here, and SLURM's variables."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "srun").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "srun").chmod(0o755)
    env = cli_env()
    env["PATH"] = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), env["PATH"]])
    return {**env, **{name: str(value) for name, value in variables.items()}}


def generate_with_the_job_array(tmp_path: Path, out: Path) -> None:
    env = slurm_env(tmp_path, SET=out, GENERATOR=f"{PLUGIN}:make_conditional", N_ANCHORS=64,
                    GENERATE_ARGS="--views 3 --groups-per-shard 16", SLURM_ARRAY_TASK_COUNT=2)
    for task in (0, 1):
        result = subprocess.run(["bash", str(SLURM / "generate.sbatch")], cwd=REPO,
                                env={**env, "SLURM_ARRAY_TASK_ID": str(task)}, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "manifest.json").read_text())["groups"] == 64


def test_the_slurm_examples_parse():
    for script in sorted(SLURM.iterdir()):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"


def test_two_nodes_train_as_one_run(tmp_path):
    data = tmp_path / "set"
    generate_with_the_job_array(tmp_path, data)
    run = tmp_path / "run"
    launch = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
              "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "two-nodes",
              str(REPO / "train" / "main.py"), "--data", str(data), "--out", str(run), "--no-progress",
              *TINY_TRAIN.split()]
    outputs = run_together([launch, launch], cli_env())
    assert sum("Trained to step 8 on each of 2 ranks" in output for output in outputs) == 1
    assert json.loads((run / "provenance.json").read_text())["world_size"] == 2
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 8  # 64 groups / (4 x 2 ranks)


def test_the_slurm_training_script_runs_on_two_nodes_and_resumes_on_one(tmp_path):
    data, run = tmp_path / "set", tmp_path / "run"
    generate_with_the_job_array(tmp_path, data)
    variables = dict(SET=data, RUN=run, GPUS_PER_NODE=1, HEAD_NODE="127.0.0.1", SLURM_JOB_ID=7,
                     TRAIN_ARGS=TINY_TRAIN.replace("--epochs 1", "--steps 4"))
    env = slurm_env(tmp_path, **variables, SLURM_NNODES=2, RDZV_PORT=free_port())
    run_together([["bash", str(SLURM / "train.sbatch")]] * 2, env)
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 4

    # requeued on one node: the script passes --resume itself, and the run keeps its two ranks' batches
    env = slurm_env(tmp_path, **variables, SLURM_NNODES=1, RDZV_PORT=free_port())
    output, = run_together([["bash", str(SLURM / "train.sbatch")]], env)
    assert "Resumed on 1 ranks, started on 2" in output and "already trained to its last step (4)" in output
