"""The shard-set format, version 1: names, member layout and the checks every reader applies.

One sample is one anchor group, keyed by its zero-padded global anchor index:
``KEY.V.jpg`` for views V = 0..K-1, ``KEY.latents.npy`` (synthetic sets), ``KEY.cls`` (labelled
sets) and ``KEY.json`` (per-group metadata).
"""

from __future__ import annotations

import functools
import io
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from common.errors import UserError
from shards.jpeg_header import jpeg_dimensions
from shards.limits import IMAGE_PIXELS, MEMBER_BYTES, VIEWS

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


class DamagedShardError(CorruptSampleError):
    """A whole shard cannot be trusted: unreadable, not a regular file of the set, or not what its
    manifest row says (anchors, size, sha256)."""


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


def split_member_name(name: str, source: str) -> tuple[str, str]:
    """(key, what follows it) of a member's name: ``0000000042.1.jpg`` -> (``0000000042``, ``1.jpg``).
    Raises DamagedShardError naming the member when the name does not start with a key and a dot
    (``../x``, ``dir/0000000042.json``): its group cannot be told, so neither can the rest of the shard."""
    key, _, suffix = name.partition(".")
    if len(key) != KEY_DIGITS or not (key.isascii() and key.isdigit()) or not suffix:
        raise DamagedShardError(f"shard {source}: holds member {name!r}, whose name does not start with a "
                                f"{KEY_DIGITS}-digit anchor key and a dot.")
    return key, suffix


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
                 num_classes: int, strict_views: bool = False) -> Group:
    """Turn a webdataset sample (member extension -> bytes) into a checked Group.

    ``latent_dim`` is None for sets without latents; ``num_classes`` is 0 for unlabelled sets.
    Raises CorruptSampleError naming the shard and key when a member is missing or malformed.
    ``strict_views`` also refuses views whose frame header does not parse (verify, which decodes
    nothing, so that it flags what a decoding reader refuses).
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
    for view, image in enumerate(images):
        problem = view_problem(view, image, strict_views)
        if problem is not None:
            raise fail(problem)
    latents = None
    if latent_dim is not None:
        latents = read_latents(bytes(sample["latents.npy"]), (views, latent_dim), fail)
    label = None
    if num_classes:
        text = bytes(sample["cls"]).decode("ascii", "replace").strip()
        if not text.isdigit() or int(text) >= num_classes:
            raise fail(f"has class {text!r}, not an index below {num_classes}")
        label = int(text)
    try:
        meta = parse_json(bytes(sample["json"]))
    except JsonNestingError as error:
        raise fail(f"has metadata {error}") from None
    except ValueError:
        raise fail("has metadata that is not JSON") from None
    return Group(anchor=int(key), views=images, latents=latents, label=label, meta=meta,
                 source=str(source))


def view_problem(view: int, image: bytes, strict: bool = False) -> str | None:
    """What makes view ``view`` of a group unsafe to decode, judged from its first bytes and its
    frame header alone, or None. A header that does not parse is left to the decoder to report,
    unless ``strict``."""
    if image[:2] != b"\xff\xd8":
        return "has a view that is not a JPEG"
    if strict and jpeg_dimensions(image) is None:
        return f"has view {view}, whose JPEG frame header does not parse, so it does not decode"
    size = oversized_image(image)
    return f"view {view} {size}" if size else None


def oversized_image(image: bytes) -> str | None:
    """``declares W x H pixels, more than the limit ...`` for a JPEG past the pixel bound, else None."""
    dimensions = jpeg_dimensions(image)
    if dimensions is None:
        return None
    width, height = dimensions
    beyond = IMAGE_PIXELS.exceeded_by(width * height)
    return f"declares {width} x {height} pixels, {beyond}" if beyond else None


@functools.lru_cache(maxsize=16)
def written_npy_header(shape: tuple[int, int]) -> bytes:
    """The ``.npy`` header that ``npy_bytes`` writes for float32 latents of ``shape``: latents that
    start with exactly these bytes need no header parsing (numpy parses one with ``ast``, which
    costs more than the rest of a group's check)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, np.lib.format.header_data_from_array_1_0(
        np.empty(shape, dtype=np.float32)))  # empty: never filled, so never paged in
    return buffer.getvalue()


def read_latents(data: bytes, shape: tuple[int, int], fail: Callable[[str], Exception]) -> np.ndarray:
    """A group's float32 latents of ``shape``, checked from the ``.npy`` header before any array
    is made: a header may declare any shape, and numpy allocates what it declares. Raises
    ``fail(problem)``; nothing is ever unpickled."""
    header = written_npy_header(shape)
    if data.startswith(header) and len(data) == len(header) + 4 * shape[0] * shape[1]:
        return np.frombuffer(data, dtype=np.float32, offset=len(header)).reshape(shape).copy()
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        declared, fortran_order, dtype = read_header(stream)
    except ValueError as error:  # not an .npy file (a zip, a pickle), or a malformed header
        raise fail(f"has unreadable latents ({error})") from None
    if dtype.hasobject:
        raise fail("has unreadable latents (they hold Python objects, which a reader never unpickles)")
    if dtype != np.float32 or tuple(declared) != shape:
        raise fail(f"has latents {dtype}{list(declared)}; expected float32[{shape[0]}, {shape[1]}]")
    body = data[stream.tell():]
    if len(body) != 4 * shape[0] * shape[1]:
        raise fail(f"has latents of {len(body)} bytes; float32[{shape[0]}, {shape[1]}] takes "
                   f"{4 * shape[0] * shape[1]}")
    values = np.frombuffer(body, dtype=np.float32)
    return (values.reshape(shape[::-1]).T if fortran_order else values.reshape(shape)).copy()


class JsonNestingError(ValueError):
    """JSON nested more deeply than the parser recurses."""


def parse_json(data: bytes) -> Any:
    """JSON text from a set (manifest, record, group metadata). Raises JsonNestingError for text
    nested too deeply, ValueError for text that is not JSON."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("not JSON") from None
    except RecursionError:  # the parser recurses once per level; a crafted file nests a million
        raise JsonNestingError("nested more deeply than a reader follows") from None


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
    check_bounds(manifest, where)
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
        ("generator", lambda: _is_sampler((manifest.get("generator") or {}).get("sampler")),
         "an object whose sampler, where it has one, is an object with a name, a whole number of steps and "
         "numbers for eta and guidance"),
        ("view_method", lambda: _absent_or(manifest, "view_method", dict), "an object"),
        ("provenance", lambda: _absent_or(manifest, "provenance", dict), "an object"),
    ]
    for name, passes, expected in checks:
        if not passes():
            raise ShardSetError(f"{where} has a malformed {name} field: it must be {expected}.")


def check_bounds(manifest: dict[str, Any], where: str) -> None:
    """Refuse counts whose memory a reader would allocate before it could see they are false,
    each in one sentence naming its limit."""
    groups, views, size = manifest["groups"], manifest["views"], manifest["image"]["size"]
    if groups >= 10**KEY_DIGITS:
        raise ShardSetError(f"{where} says the set has {groups} groups; anchor keys have {KEY_DIGITS} digits, "
                            f"so a set holds at most {10**KEY_DIGITS - 1}.")
    latent_dim = latent_dim_of(manifest) or 0
    claims = [(f"says each group has {views} views", lambda: VIEWS.exceeded_by(views)),
              (f"says its images are {size} x {size} pixels", lambda: IMAGE_PIXELS.exceeded_by(size * size)),
              (f"says each group's latents are float32[{views}, {latent_dim}]",
               lambda: MEMBER_BYTES.exceeded_by(4 * views * latent_dim))]
    for claim, beyond in claims:
        if beyond():
            raise ShardSetError(f"{where} {claim}, {beyond()}.")


def _is_count(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_sampler(sampler: Any) -> bool:
    """A diffusion generator's sampler settings as generate records them, or none (other generators)."""
    if sampler is None:
        return True
    numbers = [sampler.get(key) for key in ("eta", "guidance")] if isinstance(sampler, dict) else []
    return (isinstance(sampler, dict) and isinstance(sampler.get("name"), str) and _is_count(sampler.get("steps"), 1)
            and all(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                    for value in numbers))


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
    per_shard = manifest["groups_per_shard"]
    for index, (row, anchors) in enumerate(zip(rows, shard_anchors(manifest["groups"], per_shard))):
        if row["name"] != shard_name(index) or row["groups"] != len(anchors) or row["bytes"] < 0:
            raise ShardSetError(f"{where} lists {row['name']} ({row['groups']} groups, {row['bytes']} bytes) "
                                f"where a set of {per_shard} groups per shard has {shard_name(index)} with "
                                f"{len(anchors)} groups.")


def _is_shard_row(row: Any) -> bool:
    return (isinstance(row, dict) and isinstance(row.get("name"), str)
            and SHARD_PATTERN.match(row["name"]) is not None and isinstance(row.get("sha256"), str)
            and all(isinstance(row.get(field), int)
                    for field in ("groups", "bytes", "first_anchor", "last_anchor")))


def latent_dim_of(manifest: dict[str, Any]) -> int | None:
    """The latent size stored per group, or None for sets without latents (real images)."""
    generator = manifest.get("generator")
    return int(generator["latent_dim"]) if manifest["kind"] == "synthetic" and generator else None
