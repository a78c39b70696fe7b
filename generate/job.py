"""The batch job: render this process's shards, encode and write them while the next batch renders.

Shard s holds anchors [s * groups_per_shard, (s + 1) * groups_per_shard). A process owns the shards
whose index modulo ``Partition.count`` is ``Partition.index``; shards that already have a record
are skipped, which is what makes re-running the same command a resume, and shards another live
process is writing are left to it (``SetWriter.claim``). Batches never cross a shard, so a shard's
bytes do not depend on which shards ran before it.

On CUDA the render loop never waits for the GPU: latents go up from pinned memory without
blocking, and images come back (or are JPEG-encoded on the GPU, ``generate.encoding``) while the
next batch renders; the writer thread waits for each batch's copy instead.
"""

from __future__ import annotations

import collections
import functools
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from generate.encoding import EncodedBatch, JpegEncoder
from generate.generators import Generator, GeneratorError, check_images
from generate.generators.runtime import FULL_PRECISION, precision_of
from generate.sampling import ViewSpec, anchor_class, sample_group
from shards.card import UNKNOWN as UNKNOWN_LICENSE, card_facts
from shards.schema import Group, shard_anchors
from shards.set_writer import SetWriter
from shards.writer import ShardWriter

MAX_PENDING_BATCHES = 4  # encoded-but-unwritten batches held in memory, whatever the set size
# PIL releases the GIL while encoding, so a few threads encode one batch in parallel.
ENCODE_THREADS = max(1, min(8, (os.cpu_count() or 2) // 2))


@dataclass(frozen=True)
class JobConfig:
    generator: str  # as given to --generator: a registered name or package.module:factory
    n_anchors: int
    views: ViewSpec
    classes: list[int]  # sorted class indices; [] for unconditional generators
    seed: int
    image_size: int
    quality: int
    groups_per_shard: int
    batch_size: int
    out: Path
    jpeg_encoder: str = "cpu"  # "cpu" or "cuda", see generate.encoding.choose_encoder
    license: str = UNKNOWN_LICENSE  # the set's, on its dataset card
    description: str | None = None

    @functools.cached_property
    def shards(self) -> list[range]:
        """The anchors of every shard of the set."""
        return shard_anchors(self.n_anchors, self.groups_per_shard)

    @property
    def shard_count(self) -> int:
        return len(self.shards)

    def shard_anchors(self, shard: int) -> range:
        return self.shards[shard]

    @property
    def render_batch(self) -> int:
        """Images per render: the batch size, in whole groups for renoise views (whose positives are
        rendered from their anchor's denoised latent), at least one group."""
        if not self.views.renoised:
            return self.batch_size
        return max(1, self.batch_size // self.views.views) * self.views.views


@dataclass(frozen=True)
class Partition:
    """Which shards this process writes: those with index % count == index, among ``only`` when given."""

    index: int = 0
    count: int = 1
    only: frozenset[int] | None = None  # the shards asked for (generate --like --shards); None: all

    def owns(self, shard: int) -> bool:
        return shard % self.count == self.index and (self.only is None or shard in self.only)


def build_recipe(generator: Generator, config: JobConfig) -> dict[str, Any]:
    """Everything that decides the set's content; its hash is the set id."""
    recipe = {
        "kind": "synthetic",
        "groups": config.n_anchors,
        "views": config.views.views,
        "image": {"codec": "jpeg", "quality": config.quality, "size": config.image_size},
        "generator": {
            "name": config.generator,
            "weights_sha256": getattr(generator, "weights_sha256", None),
            "latent_dim": generator.latent_dim,
            "num_classes": generator.num_classes,
            "resolution": generator.resolution,
            "truncation": config.views.truncation,
        },
        "view_method": config.views.as_manifest(),
        "classes": list(getattr(generator, "class_names", None)
                        or [str(index) for index in range(generator.num_classes)]),
        "class_subset": config.classes,
        "seed": config.seed,
        "groups_per_shard": config.groups_per_shard,
    }
    precision = precision_of(generator)
    if precision != FULL_PRECISION:  # fp32 sets keep the recipe, and so the set id, they always had
        recipe["generator"]["precision"] = precision
    sampler = getattr(generator, "sampler", None)
    if sampler is not None:  # a diffusion generator's steps and guidance; other sets keep their recipe
        recipe["generator"]["sampler"] = dict(sampler)
    return recipe


def generator_device(generator: Generator) -> torch.device:
    """Where a generator wants its inputs: its ``device``, its parameters' device, or the CPU."""
    device = getattr(generator, "device", None)
    if device is not None:
        return torch.device(device)
    if isinstance(generator, torch.nn.Module):
        return next(generator.parameters(), torch.empty(0)).device
    return torch.device("cpu")


class OutOfMemory(GeneratorError):
    """A batch did not fit on the device; ``--batch-size auto`` takes it as the upper bound."""


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array on ``device``; to a GPU from pinned memory, without waiting for the copy."""
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def render(generator: Generator, latents: np.ndarray, classes: np.ndarray | None, image_size: int,
           views: ViewSpec | None = None) -> torch.Tensor:
    """uint8 images [N, 3, S, S] on the generator's device, resized there when its size differs.
    With renoise ``views`` the latents are whole groups, which the generator renders together."""
    device = generator_device(generator)
    z = to_device(latents, device)
    labels = to_device(classes, device) if classes is not None else None
    try:
        with torch.inference_mode():
            images = (generator.renoise(z, labels, views.views, views.strength) if views is not None and views.renoised
                      else generator(z, labels))
            check_images(images, len(z))
            if images.shape[-1] != image_size or images.shape[-2] != image_size:
                images = F.interpolate(images.float(), size=(image_size, image_size), mode="bilinear",
                                       antialias=True, align_corners=False)
                images = images.round().clamp(0, 255).to(torch.uint8)
    except torch.OutOfMemoryError:
        raise OutOfMemory(f"A batch of {len(z)} images does not fit in the memory of the {device} "
                          "device; lower --batch-size or give --batch-size auto.") from None
    return images


@dataclass(frozen=True)
class ShardInputs:
    """Per anchor of a shard: latents [views, latent_dim], class (None when unconditional) and walk
    amounts [views, directions] (None unless the views are steered)."""

    latents: list[np.ndarray]
    classes: list[int | None]
    alphas: list[np.ndarray | None]


class ShardAssembler:
    """Collects encoded views in order and adds each group to the shard once its views are all in."""

    def __init__(self, writer: ShardWriter, config: JobConfig, anchors: range, inputs: ShardInputs):
        self.writer, self.config = writer, config
        self.anchors, self.inputs = anchors, inputs
        self.views: list[bytes] = []
        self.next_group = 0

    def add_batch(self, encoded: EncodedBatch) -> None:
        self.views.extend(encoded())
        per_group = self.config.views.views
        while len(self.views) >= per_group:
            self.writer.add(self._group(self.next_group, self.views[:per_group]))
            del self.views[:per_group]
            self.next_group += 1

    def _group(self, position: int, views: list[bytes]) -> Group:
        anchor, label = self.anchors[position], self.inputs.classes[position]
        spec = self.config.views
        meta = {"anchor": anchor, "class": label, "truncation": spec.truncation,
                "view_method": spec.as_manifest()}
        alphas = self.inputs.alphas[position]
        if alphas is not None:  # each view's walk amounts, by direction (the anchor's are zeros)
            meta["alphas"] = [dict(zip(spec.steering.names, map(float, row))) for row in alphas]
        return Group(anchor=anchor, views=views, latents=self.inputs.latents[position], label=label,
                     meta=meta)


def shard_inputs(config: JobConfig, shard: int, latent_dim: int) -> ShardInputs:
    anchors = config.shard_anchors(shard)
    groups = [sample_group(config.seed, anchor, latent_dim, config.views) for anchor in anchors]
    classes = [anchor_class(config.seed, anchor, config.classes) if config.classes else None
               for anchor in anchors]
    return ShardInputs([latents for latents, _ in groups], classes, [alphas for _, alphas in groups])


def render_shards(generator: Generator, config: JobConfig, shards: list[int], set_writer: SetWriter,
                  progress: tqdm) -> list[int]:
    """Render shards in order on the generator's device; a single writer thread (with a pool of
    JPEG encoders, unless they encode on the GPU) assembles and commits them while the next batch
    renders. Returns the shards skipped because another live process is writing them."""
    pending: collections.deque[Future] = collections.deque()
    writers: list[ShardWriter] = []
    skipped: list[int] = []
    per_group = config.views.views
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-writer") as writer_thread, \
                ThreadPoolExecutor(max_workers=ENCODE_THREADS, thread_name_prefix="jpeg") as encoders:
            encoder = JpegEncoder(config.jpeg_encoder, config.quality, encoders)
            try:
                for shard in shards:
                    writer = set_writer.claim(shard)
                    if writer is None:
                        skipped.append(shard)
                        continue
                    writers.append(writer)
                    inputs = shard_inputs(config, shard, generator.latent_dim)
                    assembler = ShardAssembler(writer, config, config.shard_anchors(shard), inputs)
                    all_latents = np.concatenate(inputs.latents)
                    all_classes = (np.repeat(np.asarray(inputs.classes, dtype=np.int64), per_group)
                                   if config.classes else None)
                    for start in range(0, len(all_latents), config.render_batch):
                        batch = slice(start, start + config.render_batch)
                        images = render(generator, all_latents[batch],
                                        all_classes[batch] if all_classes is not None else None,
                                        config.image_size, config.views)
                        pending.append(writer_thread.submit(assembler.add_batch, encoder.start(images)))
                        progress.update(len(images) / per_group)
                        progress.set_postfix(images_per_s=_images_per_second(progress, per_group))
                        while len(pending) > MAX_PENDING_BATCHES:
                            pending.popleft().result()
                    pending.append(writer_thread.submit(writer.commit))
                while pending:
                    pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()
    except BaseException:
        for writer in writers:  # the executors are shut down: no task touches a writer any more
            writer.discard()
        raise
    return skipped


def _images_per_second(progress: tqdm, per_group: int) -> str:
    rate = progress.format_dict.get("rate") or 0.0
    return f"{rate * per_group:.1f}"


def run_job(generator: Generator, config: JobConfig, partition: Partition, command: list[str],
            show_progress: bool = True) -> bool:
    """Write this process's missing shards, then the manifest if the set is complete.

    Returns True when the set is complete (now or already)."""
    set_writer = SetWriter(config.out, build_recipe(generator, config), extra=card_facts(
        config.license, config.description, getattr(generator, "license", None)))
    todo = set_writer.missing(partition.owns)
    groups = sum(len(config.shard_anchors(shard)) for shard in todo)
    with tqdm(total=groups, unit="group", disable=not show_progress, dynamic_ncols=True,
              desc=f"shards {len(todo)}") as progress:
        while todo:
            skipped = render_shards(generator, config, todo, set_writer, progress)
            todo = set_writer.wait_for(skipped)  # what is left was abandoned by a killed process
    return set_writer.finish(command)
