"""The packaged ImageNet class tables: ImageNet-1k (BigGAN's classes) and CMC's 100-class subset."""

from __future__ import annotations

from importlib import resources

def read_class_table(name: str) -> list[tuple[int, str, str]]:
    """Rows (ImageNet-1k index, WordNet id, short name) of a packaged table: imagenet1k or imagenet100."""
    text = resources.files("common").joinpath("data", f"{name}.tsv").read_text()
    rows = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            index, wnid, short_name = line.split("\t")
            rows.append((int(index), wnid, short_name))
    return rows
