"""Markdown tables of an experiment's report and of the suite's summary, in percent points."""

from __future__ import annotations

from typing import Any

METRIC_NAMES = {"knn": "kNN top-1", "linear": "full linear top-1"}


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def difference(record: dict[str, Any] | None) -> str:
    """'+1.4 [-0.3, +3.1] not shown' in points; an empty cell without a comparison."""
    if not record:
        return ""
    interval = record["interval"]
    bounds = f" [{100 * interval[0]:+.1f}, {100 * interval[1]:+.1f}]" if interval else ""
    return f"{100 * record['mean']:+.1f}{bounds} {record['verdict']}"


def experiment_table(report: dict[str, Any]) -> str:
    """Absolute figures (mean ± std over seeds) and each condition's paired difference to none."""
    metrics = [report["low_label_metric"], "knn", "linear"]
    seeds = len(report["settings"]["seeds"])
    lines = ["| condition | " + " | ".join(f"{metric_name(m)} (mean ± std, {seeds} seeds) | difference to none "
                                          "[95% interval]" for m in metrics) + " |",
             "|---" * (1 + 2 * len(metrics)) + "|"]
    for row in report["conditions"]:
        cells = [f"{100 * row[m]['mean']:.1f} ± {100 * row[m]['std']:.1f} | {difference(row.get('vs_none', {}).get(m))}"
                 for m in metrics]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    twins = [row for row in report["conditions"] if "vs_twin" in row]
    if twins:
        lines += ["", "Latent views against as many augmented views of one image (same K, same method of views):", "",
                  "| condition | against | " + " | ".join(f"{metric_name(m)} difference" for m in metrics) + " |",
                  "|---" * (2 + len(metrics)) + "|"]
        lines += [f"| {row['condition']} | {row['vs_twin']['twin']} | "
                  + " | ".join(difference(row["vs_twin"][m]) for m in metrics) + " |" for row in twins]
    choices = report["choices"]
    scores = ", ".join(f"{sigma}: {100 * top1:.1f}" for sigma, top1 in choices["validation_knn_top1"].items())
    lines += ["", f"sigma {choices['sigma']:g}: {choices['how']}" + (f" ({scores})" if scores else "") + "."]
    return "\n".join(lines) + "\n"


def suite_table(summary: dict[str, Any]) -> str:
    """Per dataset, each condition's difference to none on every metric, and generated against real."""
    lines = []
    for dataset in summary["datasets"]:
        metrics = dataset["metrics"]
        lines += [f"### {dataset['name']} ({dataset['images']}; colour augment: "
                  f"{'yes' if dataset['color_augment'] else 'no'}; sigma {dataset['sigma']:g} chosen on validation)",
                  "", "| condition | " + " | ".join(f"{metric_name(m)}: difference to none" for m in metrics) + " |",
                  "|---" * (1 + len(metrics)) + "|"]
        for row in dataset["rows"]:
            absolute = " / ".join(f"{100 * row['absolute'][m]:.1f}" for m in metrics)
            lines.append(f"| {row['condition']} ({absolute}) | "
                         + " | ".join(difference(row["vs_none"].get(m)) for m in metrics) + " |")
        for row in dataset["twins"]:
            lines.append(f"| {row['condition']} − {row['twin']} | "
                         + " | ".join(difference(row["difference"][m]) for m in metrics) + " |")
        lines.append("")
    return "\n".join(lines)
