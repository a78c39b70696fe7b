"""Writing a shard set: the one place that knows the protocol (DESIGN.md, "Commit protocol").

``SetWriter(out, recipe)`` refuses a folder holding anything but this recipe's set, says which
shards are still missing, hands out a ``ShardWriter`` for a shard no live process is writing, and
finishes the set with its manifest once every shard has a record. ``python -m generate``,
``python -m shards ingest`` and the tests all write through it, so every writer resumes, shares a
folder with other processes and cleans up the same way:

- a killed writer leaves only temporary files, which the next writer removes (their lock is free);
- two processes on one folder never touch each other's temporary files: the second skips shards
  the first is writing and, at the end, waits for them (or writes them, if the first died);
- an OS error (no space, permission, read-only, not a folder) is one sentence (``WriteError``).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from common.files import (TEMP_SUFFIX, being_written, make_folder, remove_stale_temporaries,
                          write_json_atomic)
from shards.card import write_card
from shards.croissant import write_croissant
from shards.manifest import complete_manifest, parse_manifest, read_record, recipe_id
from shards.schema import MANIFEST_NAME, RECORD_PATTERN, ShardSetError, record_name, shard_anchors, shard_name
from shards.writer import ShardWriter

# A set's files: manifest, shards and records, and the dataset card (README.md, croissant.json).
_SET_FILE = re.compile(r"^(manifest\.json|README\.md|croissant\.json|shard-\d{6}\.(tar|json))(\.[0-9a-f]{8})?$")
CARD_FILES = ("README.md", "croissant.json")
WAIT_POLL_SECONDS = 0.5


def belongs_to_a_set(name: str) -> bool:
    """A manifest, shard or record, or the temporary file of one."""
    return _SET_FILE.match(name.removesuffix(TEMP_SUFFIX)) is not None


class SetWriter:
    """The set of ``recipe`` in folder ``out``; ``extra`` holds manifest facts outside the recipe."""

    def __init__(self, out: Path, recipe: dict[str, Any], extra: dict[str, Any] | None = None):
        self.out = Path(out)
        self.recipe = recipe
        self.extra = extra
        self.set_id = recipe_id(recipe)
        self.spans = shard_anchors(recipe["groups"], recipe["groups_per_shard"])
        # A manifest of this set already there (a hollow or damaged set) is kept, and every shard
        # written must have the sha256 it records.
        self.has_manifest = self._check_destination()
        self.expected = _recorded_sha256(self.out / MANIFEST_NAME) if self.has_manifest else {}
        self.complete = self.has_manifest and not self.missing()
        if not self.complete:
            make_folder(self.out)
            remove_stale_temporaries(self.out)

    @property
    def shard_count(self) -> int:
        return len(self.spans)

    def is_committed(self, index: int) -> bool:
        """The shard has a record of this set and its tar is there at the recorded size."""
        record = read_record(self.out, index)
        shard = self.out / shard_name(index)
        return (record is not None and record.get("set_id") == self.set_id and shard.is_file()
                and shard.stat().st_size == record.get("bytes"))

    def missing(self, owns: Callable[[int], bool] = lambda index: True) -> list[int]:
        """The shards ``owns`` selects that have no record yet, in order."""
        return [index for index in range(self.shard_count) if owns(index) and not self.is_committed(index)]

    def claim(self, index: int) -> ShardWriter | None:
        """A writer for shard ``index``, or None when it is committed or a live process is writing it."""
        # Live temporaries first: a writer holds one until its record lands, so a shard they do not show
        # is either committed by now or free.
        if self._being_written(index) or self.is_committed(index):
            return None
        later = sum(len(span) for span in self.spans[index + 1:])
        return ShardWriter(self.out, index, self.set_id, self.spans[index], groups_after=later,
                           expected_sha256=self.expected.get(shard_name(index)))

    def wait_for(self, indices: Iterable[int]) -> list[int]:
        """Block while other processes write these shards; returns those left unwritten (their writer died)."""
        waiting = list(indices)
        while True:
            waiting = [index for index in waiting if not self.is_committed(index)]
            if not any(self._being_written(index) for index in waiting):
                # A writer's temporaries stay live until its record lands (shards.writer), so a shard
                # committed since the first look has its record now.
                return [index for index in waiting if not self.is_committed(index)]
            time.sleep(WAIT_POLL_SECONDS)

    def _being_written(self, index: int) -> bool:
        return being_written(self.out, shard_name(index)) or being_written(self.out, record_name(index))

    def finish(self, command: list[str]) -> bool:
        """Write the manifest once every shard has a record of this set, then the dataset card
        (README.md and croissant.json, from the manifest) where it is missing; True when the set is
        complete.

        Several processes may finish at once: the manifest's bytes are the same whoever writes them.
        """
        if not self.complete:
            if self.missing():
                return False
            if not self.has_manifest:
                records = [read_record(self.out, index) for index in range(self.shard_count)]
                write_json_atomic(self.out / MANIFEST_NAME, complete_manifest(self.recipe, records, command,
                                                                               self.extra))
            remove_stale_temporaries(self.out)
            self.complete = True
        # Also for a set finished before cards, or by a process that stopped before its card.
        if not all((self.out / name).is_file() for name in CARD_FILES):
            manifest = json.loads((self.out / MANIFEST_NAME).read_text())
            write_card(self.out, manifest)
            write_croissant(self.out, manifest)
        return True

    def _check_destination(self) -> bool:
        """Refuse a folder holding anything but this set; True when it holds this set's manifest."""
        out = self.out
        if not out.exists():
            return False
        if not out.is_dir():
            raise ShardSetError(f"{out} exists and is not a folder.")
        # A card is the set's only beside the set's other files: a folder's own README.md is never
        # overwritten.
        names = [path.name for path in out.iterdir()]
        a_set = any(belongs_to_a_set(name) and name not in CARD_FILES for name in names)
        foreign = sorted(name for name in names if not belongs_to_a_set(name) or (not a_set and name in CARD_FILES))
        if foreign:
            raise ShardSetError(f"{out} holds files that are not part of a shard set "
                                f"({', '.join(foreign[:3])}); choose an empty or new folder.")
        if (out / MANIFEST_NAME).is_file():
            existing = _manifest_set_id(out / MANIFEST_NAME)
            if existing != self.set_id:
                raise self._different_set(existing)
            return True
        for path in out.iterdir():
            if match := RECORD_PATTERN.match(path.name):
                record = read_record(out, int(match.group(1)))
                if record is not None and record.get("set_id") != self.set_id:
                    raise self._different_set(record.get("set_id"))
        return False

    def _different_set(self, existing: object) -> ShardSetError:
        return ShardSetError(f"{self.out} holds a different shard set (set id {existing}; these settings "
                             f"make {self.set_id}): refusing to mix them, choose another output folder.")


def _manifest_set_id(path: Path) -> str | None:
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ShardSetError(f"{path} is unreadable; choose another output folder.") from None
    return manifest.get("set_id") if isinstance(manifest, dict) else None


def _recorded_sha256(path: Path) -> dict[str, str]:
    """Shard name -> sha256 from the manifest already in the folder, checked as readers check it."""
    return {row["name"]: row["sha256"] for row in parse_manifest(path.read_bytes(), str(path))["shards"]}
