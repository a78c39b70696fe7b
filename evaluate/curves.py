"""``python -m evaluate report RUN... --curves FILE.png``: the training curves of several runs in one
figure, read from each run's ``metrics.jsonl`` (loss, learning rate, images/s, data-wait share,
positives' similarity)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from common.files import write_bytes_atomic

CURVES = {"loss": "loss", "lr": "learning rate", "images_per_s": "images/s", "data_wait_share": "data-wait share",
          "positive_similarity": "positives' cosine similarity"}


def read_metrics(run: Path) -> list[dict]:
    """The run's logged records; a line cut short by a kill is left out, as --resume leaves it out."""
    path = run / "metrics.jsonl"
    records = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def draw_curves(runs: list[Path], out: Path) -> int:
    """Writes the figure (atomically); returns how many runs had records to draw."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(CURVES), figsize=(4 * len(CURVES), 3.2))
    drawn = 0
    for run in runs:
        records = [record for record in read_metrics(run) if "step" in record]
        drawn += bool(records)
        for axis, key in zip(axes, CURVES):
            points = [(record["step"], record[key]) for record in records if key in record]
            if points:
                axis.plot(*zip(*points), label=run.name)
    for axis, title in zip(axes, CURVES.values()):
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("step")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    write_bytes_atomic(out, buffer.getvalue())
    return drawn
