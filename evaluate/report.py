"""One markdown table comparing training runs by their evaluation results.

A run folder is read as train/main.py and ``python -m evaluate`` leave it: ``eval/linear/results.json``,
``eval/knn/results.json``, ``eval/linear@N/results.json`` of low-label probes (a column for every N
that any run has) and, for runs not evaluated yet, ``config.yaml``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from common.yaml_files import read_yaml
from evaluate.linear import LOW_LABEL_PREFIX
from evaluate.results import RESULTS_NAME, read_results

RUN_COLUMNS = ("run", "data", "method", "epochs")
METRIC_COLUMNS = {"linear": "top-1 linear", "knn": "top-1 kNN"}  # low-label probes come between the two
COLUMNS = (*RUN_COLUMNS, *METRIC_COLUMNS.values())  # the table's columns when no run has a low-label probe
LOW_LABEL_METRIC = re.compile(re.escape(LOW_LABEL_PREFIX) + r"\d+")
MISSING = "-"


def results_path(run: Path, metric: str) -> Path:
    return run / "eval" / metric / RESULTS_NAME


def read_run_config(run: Path) -> dict[str, Any]:
    """The run's training options from its config.yaml; empty when it has none. A config.yaml comes
    with the run folder from wherever it was made: ``read_yaml`` refuses one built to hang a reader."""
    path = run / "config.yaml"
    if not path.is_file():
        return {}
    config = read_yaml(path)
    return config if isinstance(config, dict) else {}


def percent(results: dict[str, Any] | None) -> str:
    """Top-1 in percent; a low-label probe's mean over its draws with their sample std."""
    if results is None:
        return MISSING
    spread = f" ± {100 * results['top1_std']:.1f}" if "top1_std" in results else ""
    return f"{100 * results['top1']:.1f}{spread}"


def describe_data(data: Any) -> str:
    if not data:
        return MISSING
    return " + ".join(map(str, data)) if isinstance(data, list) else str(data)


def low_label_metrics(runs: list[Path]) -> list[str]:
    """The low-label probes (linear@N) that any of the runs has results of, fewest labels first."""
    found = {path.parent.name for run in runs
             for path in (run / "eval").glob(f"{LOW_LABEL_PREFIX}*/{RESULTS_NAME}")
             if LOW_LABEL_METRIC.fullmatch(path.parent.name)}
    return sorted(found, key=lambda metric: int(metric[len(LOW_LABEL_PREFIX):]))


def run_row(run: Path, metrics: list[str]) -> list[str]:
    results = [read_results(results_path(run, metric)) for metric in metrics]
    recorded = next((found["run"] for found in results if found and isinstance(found.get("run"), dict)), None)
    recorded = recorded or read_run_config(run)
    return [str(run), describe_data(recorded.get("data")), str(recorded.get("method") or MISSING),
            str(recorded.get("epochs") or MISSING), *map(percent, results)]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines)


def report(runs: list[Path]) -> str:
    """The table of every run folder given, in the order given."""
    metrics = ["linear", *low_label_metrics(runs), "knn"]
    header = [*RUN_COLUMNS, *(METRIC_COLUMNS.get(metric, f"top-1 {metric}") for metric in metrics)]
    return markdown_table(header, [run_row(run, metrics) for run in runs])
