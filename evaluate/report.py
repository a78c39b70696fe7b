"""One markdown table comparing training runs by their evaluation results.

A run folder is read as train/main.py and ``python -m evaluate`` leave it: ``eval/linear/results.json``,
``eval/knn/results.json`` and, for runs not evaluated yet, ``config.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from evaluate.features import EvaluationError
from evaluate.results import RESULTS_NAME, read_results

COLUMNS = ("run", "data", "method", "epochs", "top-1 linear", "top-1 kNN")
MISSING = "-"


def results_path(run: Path, metric: str) -> Path:
    return run / "eval" / metric / RESULTS_NAME


def read_run_config(run: Path) -> dict[str, Any]:
    """The run's training options from its config.yaml; empty when it has none."""
    path = run / "config.yaml"
    if not path.is_file():
        return {}
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise EvaluationError(f"{path} is not valid YAML.") from None
    return config if isinstance(config, dict) else {}


def percent(results: dict[str, Any] | None) -> str:
    return MISSING if results is None else f"{100 * results['top1']:.1f}"


def describe_data(data: Any) -> str:
    if not data:
        return MISSING
    return " + ".join(map(str, data)) if isinstance(data, list) else str(data)


def run_row(run: Path) -> list[str]:
    linear = read_results(results_path(run, "linear"))
    knn = read_results(results_path(run, "knn"))
    recorded = (linear or knn or {}).get("run") or read_run_config(run)
    return [str(run), describe_data(recorded.get("data")), str(recorded.get("method") or MISSING),
            str(recorded.get("epochs") or MISSING), percent(linear), percent(knn)]


def markdown_table(rows: list[list[str]]) -> str:
    lines = [COLUMNS, ["---"] * len(COLUMNS), *rows]
    return "\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines)


def report(runs: list[Path]) -> str:
    """The table of every run folder given, in the order given."""
    return markdown_table([run_row(run) for run in runs])
