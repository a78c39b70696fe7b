"""What a run logs on its main rank: ``metrics.jsonl`` (one JSON record a logged step) and the same
numbers as TensorBoard event files in ``tensorboard/`` beside it (``tensorboard --logdir runs``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.files import append_line

METRICS = "metrics.jsonl"
EVENTS = "tensorboard"
POSITION = ("step", "epoch")  # a record's position, not a curve


class MetricsLog:
    def __init__(self, out: Path, resumed_step: int | None):
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only where it writes

        self.path = out / METRICS
        # A resumed run's events replace those that the killed run logged past its checkpoint.
        self.events = SummaryWriter(str(out / EVENTS), purge_step=None if resumed_step is None else resumed_step + 1)

    def write(self, record: dict[str, Any]) -> None:
        append_line(self.path, json.dumps(record))
        for name, value in record.items():
            if name not in POSITION:
                self.events.add_scalar(f"train/{name}", value, record["step"])
        self.events.flush()  # a killed run keeps what it logged, as metrics.jsonl does

    def close(self) -> None:
        self.events.close()
