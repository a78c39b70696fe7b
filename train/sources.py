"""What ``--data`` names: shard sets with their sampling weights, opened and checked together.

The stream that reads them is train/data.py; this module decides only which sets take part, how
they mix, and how long an epoch is.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

from common.errors import UserError
from shards import ShardSet, open_set

_BARE_HOST = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]*$")  # "scheme://host": a trailing ":80" is its port


class DataConfigError(UserError):
    """The data options cannot make a training stream; the message is one sentence for the user."""


@dataclass(frozen=True)
class DataSource:
    """One shard set of the training mix and its sampling weight."""

    shard_set: ShardSet
    weight: float = 1.0

    @property
    def location(self) -> str:
        return self.shard_set.location


def parse_data_spec(text: str) -> tuple[str, float]:
    """``location[:weight]`` -> (location, weight). Only a trailing ``:<number>`` is a weight, so
    URLs keep their colons (``http://host:8080`` is a port, not a weight)."""
    location, _, tail = text.rpartition(":")
    try:
        weight = float(tail)
    except ValueError:
        location, weight = text, 1.0
    if _BARE_HOST.match(location) and tail.isdigit():
        location, weight = text, 1.0
    if not location:
        raise DataConfigError(f"--data {text!r} names no shard set.")
    if not (math.isfinite(weight) and weight > 0):
        raise DataConfigError(f"--data {text!r}: the weight after ':' must be a positive number.")
    return location, weight


def open_sources(specs: Sequence[str], allow_pipe: bool = False) -> list[DataSource]:
    """Open every ``location[:weight]`` (raises ShardSetError or DataConfigError with one sentence);
    a ``pipe:`` location, which runs a shell command, only when ``allow_pipe``."""
    if not specs:
        raise DataConfigError("Give at least one shard set to train on.")
    sources = []
    for spec in specs:
        location, weight = parse_data_spec(spec)
        sources.append(DataSource(open_set(location, allow_pipe), weight))
    return sources


def check_shared_classes(sources: Sequence[DataSource]) -> list[str]:
    """The one class list of sets mixed for label-supervised training; refuses anything else."""
    for source in sources:
        if source.shard_set.num_classes == 0:
            raise DataConfigError(f"{source.location} has no class labels, so it cannot be used "
                                  "for label-supervised training.")
    classes = sources[0].shard_set.class_names
    for source in sources[1:]:
        if source.shard_set.class_names != classes:
            raise DataConfigError(f"{sources[0].location} and {source.location} have different class "
                                  "lists; sets mixed for label-supervised training must share one.")
    return classes


def steps_per_epoch(sources: Sequence[DataSource], batch_size: int, world_size: int) -> int:
    """Batches per rank per epoch; an epoch is one pass's worth of groups (the sum over all sets),
    whatever the weights: floor(total groups / (batch_size * world_size)), the same on every rank."""
    global_batch = batch_size * world_size
    for source in sources:
        if source.shard_set.groups < global_batch:
            raise DataConfigError(f"The batch is larger than the data: {source.location} has "
                                  f"{source.shard_set.groups} groups, fewer than {batch_size} per "
                                  f"process x {world_size} processes.")
    return sum(source.shard_set.groups for source in sources) // global_batch
