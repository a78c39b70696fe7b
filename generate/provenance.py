"""Is a set what its manifest says? Some of its groups rendered again and compared.

Groups are drawn from a seeded stream, spread over the shards (each shard in turn, in a shuffled
order), so a check of N groups touches min(N, shards) shards. For each group the latents and class
drawn from (seed, anchor) must equal the stored ones exactly; the views rendered from them must
equal the stored JPEG bytes exactly on the stack that made the set (same torch), and elsewhere lie
within a mean difference of ``tolerance`` levels, where other kernels round otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from generate.encoding import encode_jpeg
from generate.generators import Generator
from generate.job import JobConfig, render
from generate.sampling import anchor_class, sample_group
from shards.reader import ShardSet, decode_view
from shards.schema import Group


@dataclass(frozen=True)
class GroupProblem:
    anchor: int
    shard: str
    message: str  # one line that names the anchor and its shard


def sample_anchors(shard_set: ShardSet, count: int, seed: int) -> dict[int, list[int]]:
    """Up to ``count`` distinct anchors, shard index -> sorted anchors, spread over the shards."""
    rows = shard_set.shard_rows
    rng = np.random.default_rng([seed, len(rows)])
    order = rng.permutation(len(rows))
    chosen: dict[int, set[int]] = {}
    for turn in range(min(count, shard_set.groups)):
        shard = int(order[turn % len(rows)])
        row, taken = rows[shard], chosen.setdefault(shard, set())
        free = [anchor for anchor in range(row["first_anchor"], row["last_anchor"] + 1) if anchor not in taken]
        if free:
            taken.add(free[int(rng.integers(len(free)))])
    return {shard: sorted(anchors) for shard, anchors in sorted(chosen.items()) if anchors}


def same_stack(manifest: dict) -> bool:
    """Whether this process runs the torch that made the set (so pixels must match exactly)."""
    return manifest.get("provenance", {}).get("torch_version") == torch.__version__


def check_group(generator: Generator, config: JobConfig, group: Group, exact: bool, tolerance: float,
                shard: str) -> GroupProblem | None:
    """The group's first difference from its render, or None when it is the render of its recipe."""
    def problem(text: str) -> GroupProblem:
        return GroupProblem(group.anchor, shard, f"anchor {group.anchor} ({shard}): {text}.")

    latents, _ = sample_group(config.seed, group.anchor, generator.latent_dim, config.views)
    if not np.array_equal(latents, group.latents):
        return problem("its latents are not those of the manifest's seed")
    label = anchor_class(config.seed, group.anchor, config.classes) if config.classes else None
    if label != group.label:
        return problem(f"its class is {group.label}, the manifest's seed gives {label}")
    classes = np.full(len(latents), label, dtype=np.int64) if label is not None else None
    images = render(generator, latents, classes, config.image_size, config.views).cpu()
    rendered = [encode_jpeg(image, config.quality) for image in images]
    if rendered == group.views:
        return None
    stored = torch.stack([decode_view(view) for view in group.views]).float()
    difference = (torch.stack([decode_view(view) for view in rendered]).float() - stored).abs()
    mean, most = float(difference.mean()), float(difference.max())
    if exact or mean > tolerance:
        limit = "the same stack renders the same bytes" if exact else f"more than {tolerance:g} allowed"
        return problem(f"its views differ from their render by {mean:.2f} levels on average, {most:.0f} at "
                       f"most ({limit})")
    return None


def check_renders(shard_set: ShardSet, generator: Generator, config: JobConfig, count: int, seed: int,
                  tolerance: float) -> tuple[int, list[GroupProblem]]:
    """Render ``count`` sampled groups again; returns how many were checked and their problems."""
    exact = same_stack(shard_set.manifest)
    problems, checked = [], 0
    for shard, anchors in sample_anchors(shard_set, count, seed).items():
        name = shard_set.shard_rows[shard]["name"]
        for group in shard_set.shard_groups(shard):
            if group.anchor in anchors:
                checked += 1
                if (found := check_group(generator, config, group, exact, tolerance, name)) is not None:
                    problems.append(found)
            if group.anchor >= anchors[-1]:
                break  # the rest of the shard holds no sampled group
    return checked, problems
