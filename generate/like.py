"""``python -m generate --like SET``: the settings of a set read back from its manifest.

A manifest records everything that decides a set's content (DESIGN.md, "Sharing: a set is its
manifest plus a generator"), so the same job run with these settings renders the same latents,
and on the same software stack the same bytes. What a manifest cannot carry, the weights and a
walk file, the user supplies and this module checks by sha256 before anything is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import UserError
from generate.generators.runtime import FULL_PRECISION
from generate.sampling import Steering, ViewSpec
from generate.walks import Walks, load_walks
from shards.card import UNKNOWN as UNKNOWN_LICENSE
from shards.limits import MEMBER_BYTES
from shards.manifest import check_location, parse_manifest, read_manifest_bytes, recipe_id
from shards.schema import MANIFEST_NAME, ShardSetError

# The manifest fields that make up a synthetic set's recipe (generate.job.build_recipe).
RECIPE_FIELDS = ("kind", "groups", "views", "image", "generator", "view_method", "classes", "class_subset",
                 "seed", "groups_per_shard", "lineage")


class LikeError(UserError):
    """A manifest that cannot be regenerated, or weights or walks that are not the ones it names."""


@dataclass(frozen=True)
class Settings:
    """The settings of ``python -m generate`` that a manifest records, from flags or from a manifest."""

    generator: str
    n_anchors: int
    views: ViewSpec
    classes: str | list[int] | None  # as --classes takes it, or the manifest's class_subset
    seed: int
    image_size: int | None
    quality: int
    groups_per_shard: int
    precision: str | None
    walks: Walks | None
    license: str  # the set's, for its card
    description: str | None
    sampling_steps: int | None = None  # a diffusion generator's sampler; None: its default
    guidance: float | None = None


def read_source(like: str) -> dict[str, Any]:
    """The manifest of a set (a folder or URL) or a manifest file, checked as readers check it."""
    return read_source_bytes(like)[0]


def read_source_bytes(like: str) -> tuple[dict[str, Any], bytes]:
    """``read_source``'s manifest and the bytes it was read from."""
    path = Path(like)
    if path.is_file():
        with open(path, "rb") as stream:
            data = stream.read(MEMBER_BYTES.value + 1)
        if len(data) > MEMBER_BYTES.value:
            raise ShardSetError(f"{like} holds {MEMBER_BYTES.exceeded_by(len(data))}.")
    else:
        check_location(like)  # a pipe: location would run a shell command
        data = read_manifest_bytes(like)
        like = f"{like.rstrip('/')}/{MANIFEST_NAME}"
    manifest = parse_manifest(data, like)
    if manifest["kind"] != "synthetic" or not manifest.get("generator"):
        raise LikeError(f"{like} describes a set of real images, which no generator can render again; "
                        "copy its shards instead.")
    return manifest, data


def settings_of(manifest: dict[str, Any], walks_path: Path | None) -> Settings:
    """The settings that made ``manifest``'s set; the walk file, when its views are steered."""
    generator, method = manifest["generator"], dict(manifest.get("view_method") or {"name": "none"})
    walks = _recorded_walks(method, walks_path)
    sampler = generator.get("sampler") or {}
    views = ViewSpec(method=method["name"], views=manifest["views"], sigma=method.get("sigma", 0.0),
                     truncation=generator["truncation"], preserve_norm=method.get("preserve_norm", False),
                     steering=_steering(method, walks) if walks else None, strength=method.get("strength"))
    return Settings(generator=generator["name"], n_anchors=manifest["groups"], views=views,
                    classes=manifest.get("class_subset") or None, seed=manifest["seed"],
                    image_size=manifest["image"]["size"], quality=manifest["image"]["quality"],
                    groups_per_shard=manifest["groups_per_shard"],
                    precision=generator.get("precision", FULL_PRECISION), walks=walks,
                    license=manifest.get("license", UNKNOWN_LICENSE), description=manifest.get("description"),
                    sampling_steps=sampler.get("steps"), guidance=sampler.get("guidance"))


def _recorded_walks(method: dict[str, Any], walks_path: Path | None) -> Walks | None:
    """The walk file whose sha256 the manifest records, or None when the views are not steered."""
    expected = method.get("walks_sha256")
    if expected is None:
        if walks_path is not None:
            raise LikeError(f"--walks {walks_path} was given, but this set's views are not steered.")
        return None
    if walks_path is None:
        raise LikeError(f"This set's views were steered along the walks of a file with sha256 {expected}; "
                        "give that file with --walks FILE.")
    walks = load_walks(walks_path)
    if walks.sha256 != expected:
        raise LikeError(f"The walk file {walks_path} has sha256 {walks.sha256}, but the set was made with "
                        f"walks of sha256 {expected}.")
    return walks


def _steering(method: dict[str, Any], walks: Walks) -> Steering:
    """The manifest's directions and ranges, along the walks of the file it names."""
    rows = [walks.names.index(name) for name in method["directions"]]
    return Steering(names=tuple(method["directions"]), directions=walks.directions[rows],
                    ranges=tuple((float(low), float(high)) for low, high in method["ranges"]),
                    walks_sha256=walks.sha256, walks_method=walks.method)


def check_weights(manifest: dict[str, Any], actual: str | None, weights: Path | None) -> None:
    """Refuse weights other than those the set was made with, naming both hashes."""
    expected = manifest["generator"].get("weights_sha256")
    if actual != expected:
        where = weights if weights is not None else "the package cache"
        raise LikeError(f"The weights in {where} have sha256 {actual}, but the set was made with "
                        f"weights of sha256 {expected}.")


def check_recipe(manifest: dict[str, Any], recipe: dict[str, Any]) -> None:
    """Refuse to render a set whose recipe would differ from the manifest's, naming the fields."""
    if recipe_id(recipe) == manifest.get("set_id"):
        return
    differing = [name for name in RECIPE_FIELDS if recipe.get(name) != manifest.get(name)]
    raise LikeError(f"These settings make a set other than the manifest's (set id {recipe_id(recipe)}, "
                    f"not {manifest.get('set_id')}): they differ in {', '.join(differing) or 'the set id'}.")


def compare_rows(manifest: dict[str, Any], records: dict[int, dict[str, Any]]) -> list[str]:
    """The shards written here whose sha256 differs from the manifest's row, by name."""
    return [row["name"] for index, row in enumerate(manifest["shards"])
            if index in records and records[index]["sha256"] != row["sha256"]]
