"""The shard-set format, version 1: names, member layout and the checks every reader applies.

One sample is one anchor group, keyed by its zero-padded global anchor index:
``KEY.V.jpg`` for views V = 0..K-1, ``KEY.latents.npy`` (synthetic sets), ``KEY.cls`` (labelled
sets) and ``KEY.json`` (per-group metadata).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from common.errors import UserError

FORMAT_NAME = "genviews-shards"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
KEY_DIGITS = 10
SHARD_PATTERN = re.compile(r"^shard-(\d{6})\.tar$")
RECORD_PATTERN = re.compile(r"^shard-(\d{6})\.json$")

KINDS = ("synthetic", "real")


class ShardSetError(UserError):
    """A shard set (or the request to write one) is unusable; the message is one sentence for the user."""


class CorruptSampleError(ShardSetError):
    """One sample of a shard breaks the schema."""


def shard_name(index: int) -> str:
    return f"shard-{index:06d}.tar"


def record_name(index: int) -> str:
    return f"shard-{index:06d}.json"


def shard_anchors(groups: int, groups_per_shard: int) -> list[range]:
    """The anchors of every shard, in order: shard s holds [s * groups_per_shard, ...)."""
    return [range(start, min(start + groups_per_shard, groups))
            for start in range(0, groups, groups_per_shard)]


def group_key(anchor: int) -> str:
    return f"{anchor:0{KEY_DIGITS}d}"


@dataclass
class Group:
    """One anchor group: encoded views plus metadata. Images stay encoded until a view is chosen."""

    anchor: int
    views: list[bytes]
    latents: np.ndarray | None = None
    label: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the shard the group came from, for error messages

    def members(self) -> list[tuple[str, bytes]]:
        """The tar members of this group, in the order they are written."""
        key = group_key(self.anchor)
        members = [(f"{key}.{v}.jpg", data) for v, data in enumerate(self.views)]
        if self.latents is not None:
            members.append((f"{key}.latents.npy", npy_bytes(self.latents)))
        if self.label is not None:
            members.append((f"{key}.cls", str(self.label).encode("ascii")))
        meta = json.dumps(self.meta, sort_keys=True, separators=(",", ":")).encode("utf-8")
        members.append((f"{key}.json", meta))
        return members


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def parse_sample(sample: dict[str, Any], views: int, latent_dim: int | None,
                 num_classes: int) -> Group:
    """Turn a webdataset sample (member extension -> bytes) into a checked Group.

    ``latent_dim`` is None for sets without latents; ``num_classes`` is 0 for unlabelled sets.
    Raises CorruptSampleError naming the shard and key when a member is missing or malformed.
    """
    key = sample.get("__key__", "?")
    source = sample.get("__url__", "?")

    def fail(problem: str) -> CorruptSampleError:
        return CorruptSampleError(f"shard {source}: sample {key} {problem}")

    if not re.fullmatch(rf"\d{{{KEY_DIGITS}}}", str(key)):
        raise fail("has a key that is not a 10-digit anchor index")
    expected = {f"{v}.jpg" for v in range(views)} | {"json"}
    if latent_dim is not None:
        expected.add("latents.npy")
    if num_classes:
        expected.add("cls")
    present = {name for name in sample if not name.startswith("__")}
    if present != expected:
        missing, extra = sorted(expected - present), sorted(present - expected)
        raise fail(f"has members {sorted(present)}; expected {sorted(expected)}"
                   + (f" (missing {missing})" if missing else "")
                   + (f" (unexpected {extra})" if extra else ""))
    images = [bytes(sample[f"{v}.jpg"]) for v in range(views)]
    if not all(image[:2] == b"\xff\xd8" for image in images):
        raise fail("has a view that is not a JPEG")
    latents = None
    if latent_dim is not None:
        try:
            latents = np.lib.format.read_array(io.BytesIO(sample["latents.npy"]), allow_pickle=False)
        except (ValueError, EOFError) as error:  # read_array takes .npy alone, never a zip or pickle
            raise fail(f"has unreadable latents ({error})") from None
        if latents.dtype != np.float32 or latents.shape != (views, latent_dim):
            raise fail(f"has latents {latents.dtype}{list(latents.shape)}; "
                       f"expected float32[{views}, {latent_dim}]")
    label = None
    if num_classes:
        text = bytes(sample["cls"]).decode("ascii", "replace").strip()
        if not text.isdigit() or int(text) >= num_classes:
            raise fail(f"has class {text!r}, not an index below {num_classes}")
        label = int(text)
    try:
        meta = json.loads(bytes(sample["json"]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise fail("has metadata that is not JSON") from None
    return Group(anchor=int(key), views=images, latents=latents, label=label, meta=meta,
                 source=str(source))


def check_manifest(manifest: Any, where: str) -> dict[str, Any]:
    """Refuse manifests of another format or version, or missing the fields readers rely on."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ShardSetError(f"{where} is not a genviews shard-set manifest.")
    version = manifest.get("version")
    if version != FORMAT_VERSION:
        raise ShardSetError(f"{where} is shard-set format version {version}; this genviews reads "
                            f"version {FORMAT_VERSION} only.")
    required = ("kind", "groups", "views", "image", "classes", "shards", "groups_per_shard")
    missing = [name for name in required if name not in manifest]
    if missing:
        raise ShardSetError(f"{where} is incomplete (missing {missing}).")
    if manifest["kind"] not in KINDS:
        raise ShardSetError(f"{where} has kind {manifest['kind']!r}; expected one of {list(KINDS)}.")
    check_fields(manifest, where)
    check_shard_rows(manifest, where)
    return manifest


def check_fields(manifest: dict[str, Any], where: str) -> None:
    """Refuse a field of the wrong type or range, in one sentence naming it. Checked in order, so
    each check may rely on the ones before it."""
    synthetic = manifest["kind"] == "synthetic"
    checks: list[tuple[str, Callable[[], bool], str]] = [
        ("groups", lambda: _is_count(manifest["groups"], 0), "an integer of at least 0"),
        ("views", lambda: _is_count(manifest["views"], 1), "an integer of at least 1"),
        ("groups_per_shard", lambda: _is_count(manifest["groups_per_shard"], 1), "an integer of at least 1"),
        ("image", lambda: isinstance(manifest["image"], dict) and _is_count(manifest["image"].get("size"), 1),
         "an object whose size is an integer of at least 1"),
        ("classes", lambda: isinstance(manifest["classes"], list)
         and all(isinstance(name, str) for name in manifest["classes"]), "a list of class names"),
        ("class_subset", lambda: _absent_or(manifest, "class_subset", list) and all(
            _is_count(index, 0) and index < len(manifest["classes"]) for index in manifest.get("class_subset", [])),
         "a list of indices into classes"),
        ("generator", lambda: manifest.get("generator") is None or isinstance(manifest["generator"], dict),
         "an object or null"),
        ("generator", lambda: not synthetic or (isinstance(manifest.get("generator"), dict)
                                                and _is_count(manifest["generator"].get("latent_dim"), 1)),
         "an object whose latent_dim is an integer of at least 1 (the set is synthetic)"),
        ("view_method", lambda: _absent_or(manifest, "view_method", dict), "an object"),
        ("provenance", lambda: _absent_or(manifest, "provenance", dict), "an object"),
    ]
    for name, passes, expected in checks:
        if not passes():
            raise ShardSetError(f"{where} has a malformed {name} field: it must be {expected}.")


def _is_count(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _absent_or(manifest: dict[str, Any], name: str, kind: type) -> bool:
    return name not in manifest or isinstance(manifest[name], kind)


def check_shard_rows(manifest: dict[str, Any], where: str) -> None:
    """Refuse shard rows that are malformed or do not tile anchors 0..groups-1 in order."""
    rows = manifest["shards"]
    if not isinstance(rows, list) or not all(_is_shard_row(row) for row in rows):
        raise ShardSetError(f"{where} has malformed shard rows (each needs a shard-NNNNNN.tar name, "
                            "integer groups, bytes, first_anchor and last_anchor, and a sha256).")
    next_anchor = 0
    for row in rows:
        first, last, groups = row["first_anchor"], row["last_anchor"], row["groups"]
        if first != next_anchor or last - first + 1 != groups:
            raise ShardSetError(f"{where} lists {row['name']} with anchors {first}..{last} and {groups} "
                                f"groups, which does not continue the set at anchor {next_anchor}.")
        next_anchor = last + 1
    if next_anchor != manifest["groups"]:
        raise ShardSetError(f"{where} says the set has {manifest['groups']} groups but its shards hold "
                            f"{next_anchor}.")


def _is_shard_row(row: Any) -> bool:
    return (isinstance(row, dict) and isinstance(row.get("name"), str)
            and SHARD_PATTERN.match(row["name"]) is not None and isinstance(row.get("sha256"), str)
            and all(isinstance(row.get(field), int)
                    for field in ("groups", "bytes", "first_anchor", "last_anchor")))


def latent_dim_of(manifest: dict[str, Any]) -> int | None:
    """The latent size stored per group, or None for sets without latents (real images)."""
    generator = manifest.get("generator")
    return int(generator["latent_dim"]) if manifest["kind"] == "synthetic" and generator else None
