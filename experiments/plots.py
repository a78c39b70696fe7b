"""Figures of the experiment and the suite: absolute figures beside forest plots of the paired
differences to no latent views (each with its 95% interval; a line at 0)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from common.files import write_bytes_atomic
from experiments.tables import metric_name


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def forest(axis: Any, labels: list[str], records: list[dict[str, Any] | None], title: str) -> None:
    """One row per label: the difference (points) with its interval; rows without one are left empty."""
    for position, record in enumerate(records):
        if not record:
            continue
        low, high = record["interval"] or (record["mean"], record["mean"])
        shown = record["verdict"] != "not shown"
        axis.errorbar(100 * record["mean"], -position, xerr=[[100 * (record["mean"] - low)], [100 * (high - record["mean"])]],
                      fmt="o", mfc=None if shown else "white", color="C0" if shown else "grey",
                      capsize=3)
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_yticks([-position for position in range(len(labels))], labels)  # first row on top
    axis.set_xlabel("difference to none (points, 95% interval)")
    axis.set_title(title, fontsize=10)


def save(figure: Any, path: Path) -> None:
    plt = _pyplot()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())


def plot_experiment(report: dict[str, Any], path: Path) -> None:
    """views.png: each condition's absolute top-1 (mean and seed spread, axis not from 0), then one
    forest plot per metric of its paired difference to none (hollow grey: interval covers 0)."""
    plt = _pyplot()
    metrics = [report["low_label_metric"], "knn", "linear"]
    rows = report["conditions"]
    labels = [row["condition"] for row in rows]
    figure, axes = plt.subplots(1, 1 + len(metrics), figsize=(4.2 * (1 + len(metrics)), 0.45 * len(rows) + 2),
                                sharey=True)
    for offset, metric in zip((-0.15, 0.0, 0.15), metrics):
        axes[0].errorbar([100 * row[metric]["mean"] for row in rows], [offset - p for p in range(len(rows))],
                         xerr=[100 * row[metric]["std"] for row in rows], fmt="o", capsize=2, label=metric_name(metric))
    axes[0].set_yticks([-position for position in range(len(labels))], labels)
    axes[0].set_xlabel("top-1 on the real test split (%)")
    axes[0].set_title("absolute (mean ± std over seeds)", fontsize=10)
    axes[0].legend(fontsize=7)
    for axis, metric in zip(axes[1:], metrics):
        forest(axis, labels, [row.get("vs_none", {}).get(metric) for row in rows], metric_name(metric))
    save(figure, path)


def plot_suite(summary: dict[str, Any], path: Path) -> None:
    """suite.png: one row per dataset, one forest plot per metric of every condition against none."""
    plt = _pyplot()
    datasets = summary["datasets"]
    metrics = datasets[0]["metrics"]
    rows = max(len(dataset["rows"]) + len(dataset["twins"]) for dataset in datasets)
    figure, axes = plt.subplots(len(datasets), len(metrics), squeeze=False,
                                figsize=(4.5 * len(metrics), (0.35 * rows + 1.2) * len(datasets)))
    for line, dataset in zip(axes, datasets):
        labels = [row["condition"] for row in dataset["rows"]] + [f"{row['condition']} − {row['twin']}"
                                                                  for row in dataset["twins"]]
        for axis, metric in zip(line, metrics):
            records = ([row["vs_none"].get(metric) for row in dataset["rows"]]
                       + [row["difference"][metric] for row in dataset["twins"]])
            forest(axis, labels, records, f"{dataset['name']}: {metric_name(metric)}")
    save(figure, path)
