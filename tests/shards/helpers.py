"""Tiny shard sets and image folders for tests, written with the real writer and real JPEGs."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from shards import Group, SetWriter
from shards.manifest import read_manifest_bytes

GARBAGE_JPEG = b"\xff\xd8" + bytes(range(256)) * 4  # a JPEG's first two bytes, then no JPEG

CLASSES = ["apple", "banana", "cherry"]


def view_colour(anchor: int, view: int) -> tuple[int, int, int]:
    """A colour unique to (anchor, view) for small sets, so a drawn view can be recognised."""
    return (30 + 37 * anchor % 200, 40 + 70 * view, 220 - 25 * anchor % 200)


def jpeg_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (32, 32), quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def synthetic_recipe(groups: int, views: int, latent_dim: int, groups_per_shard: int) -> dict[str, Any]:
    return {
        "kind": "synthetic",
        "groups": groups,
        "views": views,
        "image": {"codec": "jpeg", "quality": 90, "size": 32},
        "generator": {"name": "test-colours", "weights_sha256": None, "latent_dim": latent_dim,
                      "num_classes": len(CLASSES), "resolution": 32, "truncation": 0.7},
        "view_method": {"name": "gaussian", "sigma": 0.2},
        "classes": list(CLASSES),
        "class_subset": list(range(len(CLASSES))),
        "seed": 3,
        "groups_per_shard": groups_per_shard,
    }


def synthetic_group(anchor: int, views: int, latent_dim: int) -> Group:
    latents = np.random.default_rng([3, anchor]).standard_normal((views, latent_dim)).astype(np.float32)
    label = anchor % len(CLASSES)
    return Group(anchor=anchor, views=[jpeg_bytes(view_colour(anchor, v)) for v in range(views)],
                 latents=latents, label=label,
                 meta={"anchor": anchor, "class": label, "truncation": 0.7,
                       "view_method": {"name": "gaussian", "sigma": 0.2}})


def write_set(directory: Path, groups: list[Group], recipe: dict[str, Any]) -> dict[str, Any]:
    """Write groups (in anchor order) through the project's SetWriter; returns the manifest."""
    writer = SetWriter(directory, recipe)
    by_anchor = {group.anchor: group for group in groups}
    for index in writer.missing():
        with writer.claim(index) as shard:
            for anchor in writer.spans[index]:
                shard.add(by_anchor[anchor])
            shard.commit()
    assert writer.finish(["tests"])
    return json.loads(read_manifest_bytes(str(directory)))


def write_synthetic_set(directory: Path, groups: int = 6, views: int = 3, latent_dim: int = 8,
                        groups_per_shard: int = 4) -> dict[str, Any]:
    recipe = synthetic_recipe(groups, views, latent_dim, groups_per_shard)
    return write_set(directory, [synthetic_group(a, views, latent_dim) for a in range(groups)], recipe)


def write_photo(path: Path, colour: tuple[int, int, int], size: tuple[int, int]) -> None:
    """A real image file in the format its suffix names, with a gradient so resizing matters."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 60, size[0], dtype=np.float32)[None, :, None]
    pixels = np.clip(np.array(colour, dtype=np.float32)[None, None, :] + ramp, 0, 255).astype(np.uint8)
    Image.fromarray(np.broadcast_to(pixels, (size[1], size[0], 3)).copy()).save(path)


def truncate_shard(shard: Path, size: int = 1500) -> None:
    """Cut a shard inside its first member, as an interrupted copy leaves it."""
    shard.write_bytes(shard.read_bytes()[:size])


def break_first_view(shard: Path) -> str:
    """Keep the tar intact but overwrite the first JPEG member after its ff d8 header with garbage of
    the same length, as a bad disk or transfer would; returns the member's name."""
    with tarfile.open(shard) as tar:
        member = next(member for member in tar.getmembers() if member.name.endswith(".jpg"))
    data = bytearray(shard.read_bytes())
    body = slice(member.offset_data + 2, member.offset_data + member.size)
    data[body] = (GARBAGE_JPEG[2:] * (member.size // len(GARBAGE_JPEG) + 1))[:member.size - 2]
    shard.write_bytes(bytes(data))
    return member.name


def rename_anchor(shard: Path, old: int, new: int) -> dict[str, Any]:
    """Rename a group's members in a shard, as a hostile or buggy sender would; returns the shard's
    new bytes and sha256 for its row."""
    with tarfile.open(shard) as tar:
        members = [(member, tar.extractfile(member).read()) for member in tar.getmembers()]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member, data in members:
            member.name = member.name.replace(f"{old:010d}.", f"{new:010d}.")
            tar.addfile(member, io.BytesIO(data))
    shard.write_bytes(buffer.getvalue())
    return {"bytes": len(buffer.getvalue()), "sha256": hashlib.sha256(buffer.getvalue()).hexdigest()}
