"""What an evaluation reports: top-k accuracy and results.json, which names every input by its sha256."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import torch

from common.files import make_folder, read_head, write_json_atomic
from common.provenance import provenance
from shards import ShardSet
from shards.schema import JsonNestingError, parse_json

from evaluate.features import EvaluationError, FrozenEncoder

RESULTS_NAME = "results.json"
TOP_K = 5
MAX_RESULTS_BYTES = 16 << 20  # a results.json with every draw's record is a few kB


def top1_top5(scores: torch.Tensor, labels: torch.Tensor) -> tuple[float, float | None]:
    """Top-1 and top-5 accuracy of class scores [N, C]; top-5 is None with fewer than 5 classes."""
    ranked = scores.topk(min(TOP_K, scores.shape[1]), dim=1).indices
    hits = ranked == labels.view(-1, 1)
    top1 = hits[:, 0].float().mean().item()
    top5 = hits.any(dim=1).float().mean().item() if scores.shape[1] >= TOP_K else None
    return top1, top5


def set_record(shard_set: ShardSet) -> dict[str, Any]:
    return {"location": shard_set.location, "manifest_sha256": shard_set.manifest_sha256,
            "groups": shard_set.groups}


def run_record(config: dict[str, Any]) -> dict[str, Any]:
    """The training run behind a checkpoint, as the report shows it."""
    return {key: config.get(key) for key in ("method", "data", "data_manifests", "epochs", "backbone")}


def build_results(metric: str, top1: float, top5: float | None, encoder: FrozenEncoder,
                  train_set: ShardSet, val_set: ShardSet, settings: dict[str, Any],
                  over_draws: dict[str, Any] | None = None) -> dict[str, Any]:
    """The results record; ``over_draws`` (a low-label probe's spread and draws) joins top1 and top5."""
    made_by = provenance(["python", "-m", "evaluate", *sys.argv[1:]])
    return {
        "metric": metric,
        "top1": top1,
        "top5": top5,
        **(over_draws or {}),
        "checkpoint": str(encoder.path),
        "checkpoint_sha256": encoder.sha256,
        "train_set": set_record(train_set),
        "val_set": set_record(val_set),
        "settings": settings,
        "run": run_record(encoder.config),
        "package_version": made_by["package_version"],
        "git_commit": made_by["git_commit"],
        "command": made_by["command"],
    }


def write_results(folder: Path, results: dict[str, Any]) -> Path:
    make_folder(folder)
    path = folder / RESULTS_NAME
    write_json_atomic(path, results)
    return path


def read_results(path: Path) -> dict[str, Any] | None:
    """A results.json, or None when there is none; refuses one that is not a results object (results
    travel with run folders, so one may be built to exhaust a reader)."""
    if not path.is_file():
        return None
    data = read_head(path, MAX_RESULTS_BYTES, EvaluationError)
    if len(data) > MAX_RESULTS_BYTES:
        raise EvaluationError(f"{path} is larger than {MAX_RESULTS_BYTES >> 20} MB, which no evaluation "
                              "result is.")
    try:
        results = parse_json(data)
    except JsonNestingError as error:
        raise EvaluationError(f"{path} is {error}.") from None
    except ValueError:
        raise EvaluationError(f"{path} is not valid JSON.") from None
    if not isinstance(results, dict) or "top1" not in results:
        raise EvaluationError(f"{path} is not an evaluation result (it has no top1).")
    if not all(_is_fraction(results[key]) for key in ("top1", "top1_std") if key in results):
        raise EvaluationError(f"{path} has a top1 or top1_std that is not a number between 0 and 1.")
    return results


def _is_fraction(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0 <= value <= 1)
