"""Contrastive training on shard sets: ``torchrun --nproc-per-node N train/main.py --data SET --out RUN``.

``python train/main.py ...`` runs the same code in one process. One readable loop; distributed
set-up, logging and checkpoints live in small helpers (train/distributed.py, train/logs.py,
train/checkpoint.py).
The run folder holds config.yaml (the resolved options and schedule), provenance.json,
metrics.jsonl and the same numbers as TensorBoard events in tensorboard/, last.pt (written at every
epoch's end, at the last step and, with --save-every-steps, inside epochs: a run resumes at its
step, see README "Preemption and resume") and, with --save-every, epoch-NNNN.pt. A run lasts
--epochs whole epochs or --steps steps (whole epochs, the last one cut at the step); the learning
rate warms up linearly over --warmup, then follows a cosine to 0.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script, Python puts train/ itself first on sys.path, where data.py or config.py
    # would shadow other top-level modules; the package is imported from its parent instead.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import click
from click.core import ParameterSource

from common import commands
from common.console import reports_errors
from train.config import training_options


@commands.command()
@training_options
@reports_errors
def main(**params: Any) -> None:
    """Train a contrastive encoder (SimCLR, SupCon, multi-positive) on one or more shard sets."""
    from train.loop import run  # torch and the loop load only once a run starts

    context = click.get_current_context()
    run(params, {name for name in params if context.get_parameter_source(name) is ParameterSource.COMMANDLINE})


if __name__ == "__main__":
    main(prog_name="train/main.py")
