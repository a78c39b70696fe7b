"""Which classes a set's anchors are drawn from, and the names of ImageNet's."""

from __future__ import annotations

from pathlib import Path

from common.errors import UserError
from common.imagenet import read_class_table


class ClassSelectionError(UserError):
    """A ``--classes`` value that cannot be used; the message is one sentence."""


def imagenet_class_names() -> list[str]:
    return [short_name for _, _, short_name in read_class_table("imagenet1k")]


def select_classes(choice: str | None, num_classes: int) -> list[int]:
    """Sorted class indices that anchors are drawn from.

    ``choice`` is None (every class, or none for an unconditional generator), ``all``,
    ``imagenet100``, a comma-separated list of indices, or a file of indices (one per line, the
    first column counts, ``#`` starts a comment).
    """
    if num_classes == 0:
        if choice is not None:
            raise ClassSelectionError("--classes was given, but this generator is unconditional.")
        return []
    if choice is None or choice == "all":
        return list(range(num_classes))
    if choice == "imagenet100":
        if num_classes != 1000:
            raise ClassSelectionError(f"--classes imagenet100 needs a 1000-class generator; this "
                                      f"one has {num_classes} classes.")
        indices = [index for index, _, _ in read_class_table("imagenet100")]
    elif Path(choice).is_file():
        indices = _parse_indices(_first_columns(Path(choice)), source=choice)
    else:
        indices = _parse_indices([part.strip() for part in choice.split(",")], source="--classes")
    outside = sorted(index for index in set(indices) if not 0 <= index < num_classes)
    if outside:
        raise ClassSelectionError(f"--classes holds {outside[:5]}, outside this generator's "
                                  f"classes 0..{num_classes - 1}.")
    return sorted(set(indices))


def _first_columns(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].split() for line in path.read_text().splitlines())
    return [columns[0] for columns in lines if columns]


def _parse_indices(tokens: list[str], source: str) -> list[int]:
    if not tokens or not all(token.isdigit() for token in tokens):
        raise ClassSelectionError(f"{source} must list class indices (for example 3,7,207), "
                                  "or be all, imagenet100 or a file of indices.")
    return [int(token) for token in tokens]
