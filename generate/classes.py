"""Class lists: the packaged ImageNet tables, and which classes a set's anchors are drawn from."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np


class ClassSelectionError(Exception):
    """A ``--classes`` value that cannot be used; the message is one sentence."""


def read_class_table(name: str) -> list[tuple[int, str, str]]:
    """Rows (ImageNet-1k index, WordNet id, short name) of a packaged table: imagenet1k or imagenet100."""
    text = resources.files("generate").joinpath("data", f"{name}.tsv").read_text()
    rows = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            index, wnid, short_name = line.split("\t")
            rows.append((int(index), wnid, short_name))
    return rows


def imagenet_class_names() -> list[str]:
    return [short_name for _, _, short_name in read_class_table("imagenet1k")]
