"""The training input stream: shard sets -> chosen views -> augmented views -> equal epochs.

Each DataLoader worker runs one chain of small stages, webdataset style:

    per set: endless shard reads (shuffled per epoch, split over ranks, then workers)
    -> choose views, read only those members (and the class) of each group from the tar
    -> weighted mix of the sets -> shuffle buffer of encoded views
    -> decode the chosen views, augment each -> batches of uint8 images
       (--gpu-augment: read each chosen view's size from its JPEG header and draw its parameters
        -> batches of JPEG bytes and parameters, which DeviceAugment decodes and augments on the
        training device in the training process)

Epoch interface: ``loader = build_loader(...)`` once, then ``for batch in loader.epoch(e)``. Every
rank gets exactly ``loader.steps_per_epoch`` batches, computed from the manifests alone, because
each rank's stream never ends (a rank with fewer shards reads them again); so DDP never waits on a
rank that ran out. Workers persist across epochs and run ahead into the next one.

Trust: each shard is checked against its manifest row as it streams (anchors, member names and
sizes, the shard's size); the first time a worker reads a shard it also reads every byte of it,
checks every member as ``python -m shards verify`` does (latents, metadata, every view's JPEG
start and declared size; a view is decoded only when chosen) and the shard's sha256. So the
trainer refuses what verify refuses, while later reads parse only the members they use. A shard or
group found damaged is refused (or, with skip_corrupt, skipped and counted at every later read; a
remote shard that the network failed to bring, at that read only, and checked whole at the next).

Randomness: shard order from (seed, epoch, lap, set); view choice from (seed, epoch, lap, set,
anchor), where a lap is one pass of the epoch's shard order, so views never depend on worker
order; mixing, shuffling and pixel augmentation from (seed, epoch, rank, worker's part). With and
without --gpu-augment the workers draw the same augmentation parameters in the same order, so a
seed gives the same parameters either way.

Corrupt data under --gpu-augment: what a JPEG header shows (a frame header that does not parse, a
size past ``shards.limits.IMAGE_PIXELS``) is refused or skipped in the worker exactly as the CPU
path does it, with the same message. A JPEG whose body does not decode is only found when the batch
is decoded on the device: DeviceAugment then names it (shard, sample, view) in one sentence, or,
with skip_corrupt, counts the skip and replaces the sample with a copy of the batch's first sample
that decoded (its views, group id and label, so those views count twice, as positives of each
other), because a batch must keep its size (the loss gathers equal batches from every rank). The
CPU path instead skips the group and takes the next one from the stream, so after such a skip the
two ways no longer draw the same parameters for the same samples.
"""

from __future__ import annotations

import functools
import itertools
import random
from dataclasses import dataclass
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from shards import CorruptSampleError, ShardSetError
from shards.reader import (BrokenGroupError, ChosenViews, UndecodableViewError, decode_group_view, error_summary,
                           view_name, view_size)
from shards.schema import DamagedShardError
from shards.storage import NetworkReadError
from train.augment import AugmentConfig, ViewAugment, ViewParams
from train.gpu_augment import BatchViewAugment, ViewParamsBatch, decode_each, decode_views
from train.sources import DataConfigError, DataSource, steps_per_epoch

GROUP_ID_STRIDE = 10**10  # anchors have 10 digits, so set_index * stride + anchor never collides
UNLABELLED = -1
# The shuffle buffer is refilled every epoch, so it holds at most 1/8 of a worker's epoch, but never
# less than 4 batches, so that a batch never comes from one short run of a shard.
BUFFER_SHARE = 8
BUFFER_BATCHES = 4
MAX_EMPTY_READS = 64  # shard reads in a row without one readable group: the set is unreadable
MIX_DRAWS = 256  # choices of the next group's set drawn at once


class Batch(NamedTuple):
    images: torch.Tensor  # uint8 [B, M, 3, S, S]; the loop normalises with train.augment.normalize
    group_ids: torch.Tensor  # int64 [B], set_index * GROUP_ID_STRIDE + anchor: unique across sets and ranks
    labels: torch.Tensor  # int64 [B], class index, or -1 for unlabelled sets
    skipped: int  # corrupt tars and samples this batch's worker skipped since its previous batch


class EncodedViews(NamedTuple):
    """One sample under --gpu-augment: its chosen views, still JPEG (each once), and their parameters."""

    jpegs: list[bytes]  # each chosen view once
    names: list[str]  # each of those JPEGs as error messages name it
    chosen: list[int]  # the M chosen views, as positions in ``jpegs``
    params: list[ViewParams]  # the M chosen views' parameters


class EncodedBatch(NamedTuple):
    """A batch under --gpu-augment, before DeviceAugment decodes and augments it: B samples of M
    views, made of J JPEGs (a view chosen twice in a group, as in a 1-view set, is decoded once)."""

    jpegs: torch.Tensor  # uint8 [total bytes]: the J JPEGs back to back
    jpeg_sizes: torch.Tensor  # int64 [J]: the bytes of each
    names: tuple[str, ...]  # J: "shard URL: sample KEY view V", for error messages
    view_jpegs: torch.Tensor  # int64 [B * M]: the JPEG of each view, sample by sample
    params: ViewParamsBatch  # B * M views, in the same order
    group_ids: torch.Tensor  # as Batch's
    labels: torch.Tensor
    skipped: int

    @classmethod
    def collate(cls, samples: Sequence[EncodedViews], group_ids: torch.Tensor, labels: torch.Tensor,
                skipped: int) -> EncodedBatch:
        jpegs, view_jpegs = [], []
        for sample in samples:
            view_jpegs += [len(jpegs) + position for position in sample.chosen]
            jpegs += sample.jpegs
        # One tensor, so that the bytes cross to the training process in shared memory, in one piece.
        return cls(torch.frombuffer(bytearray(b"".join(jpegs)), dtype=torch.uint8),
                   torch.tensor([len(jpeg) for jpeg in jpegs], dtype=torch.int64),
                   tuple(name for sample in samples for name in sample.names),
                   torch.tensor(view_jpegs, dtype=torch.int64),
                   ViewParamsBatch.from_params([params for sample in samples for params in sample.params]),
                   group_ids, labels, skipped)


@dataclass(frozen=True)
class StreamFailure:
    """A worker stopped on corrupt data; travels in-band so the message reaches the loop intact."""

    message: str


def choose_views(views_in_group: int, views: int, rng: np.random.Generator) -> list[int]:
    """The anchor (view 0), then views - 1 of the others uniformly without replacement; beyond the
    group's K views, further draws from all K with replacement (K = 1: every view is the anchor)."""
    chosen = [0, *rng.permutation(np.arange(1, views_in_group))[: views - 1].tolist()]
    return chosen + rng.integers(0, views_in_group, size=views - len(chosen)).tolist()


def view_rng(seed: int, epoch: int, lap: int, set_index: int, anchor: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, lap, set_index, anchor])


def shard_reads(num_shards: int, *, seed: int, epoch: int, set_index: int, rank: int, world_size: int,
                worker: int, num_workers: int) -> Iterator[tuple[int, int]]:
    """(shard index, lap) for one worker, endlessly. All ranks see the same sequence of laps, each a
    fresh permutation of the shards; read k goes to rank k % world_size, then to that rank's workers
    in turn. So every rank and worker always has shards to read, even with fewer shards than them."""
    position = 0
    for lap in itertools.count():
        for shard in np.random.default_rng([seed, epoch, lap, set_index]).permutation(num_shards):
            if position % world_size == rank and (position // world_size) % num_workers == worker:
                yield int(shard), lap
            position += 1


class CorruptDataPolicy:
    """Stops on the first broken tar or sample, or (skip=True) skips it and counts it."""

    def __init__(self, skip: bool):
        self.skip = skip
        self.skipped = 0

    def handle(self, error: Exception, url: str) -> bool:
        """A webdataset error handler: True means skip; otherwise raise with the shard named."""
        if isinstance(error, ShardSetError):
            message = str(error)
        else:
            message = f"shard {url} could not be read ({error_summary(error)})."
        if not self.skip:
            raise CorruptSampleError(message) from None
        self.skipped += 1
        return True

    def take_skipped(self) -> int:
        count, self.skipped = self.skipped, 0
        return count


def worker_position() -> tuple[int, int]:
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


class TrainStream(IterableDataset):
    """Each worker's endless batches, from the epoch and batch that TrainLoader puts in ``epoch_cell``
    and ``start_cell`` (shared memory, so persistent workers see them) before it starts them iterating."""

    def __init__(self, sources: Sequence[DataSource], *, batch_size: int, steps_per_epoch: int, views: int,
                 augment: AugmentConfig, seed: int, rank: int, world_size: int, skip_corrupt: bool,
                 shuffle_buffer: int, gpu_augment: bool):
        super().__init__()
        self.sources = list(sources)
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.views = views
        self.augment = ViewAugment(augment)
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle_buffer = shuffle_buffer
        self.gpu_augment = gpu_augment
        self.policy = CorruptDataPolicy(skip_corrupt)
        self.hashed: set[tuple[int, int]] = set()  # (set, shard) whose every byte this process checked
        self.damaged: set[tuple[int, int]] = set()  # (set, shard) found damaged: skipped from then on
        self.broken: set[tuple[int, int]] = set()  # (set, anchor) of groups found broken: skipped too
        self.epoch_cell = torch.zeros((), dtype=torch.int64).share_memory_()
        self.start_cell = torch.zeros((), dtype=torch.int64).share_memory_()  # batches of it already taken

    def __iter__(self) -> Iterator[Batch | EncodedBatch | StreamFailure]:
        """Batches from batch ``start_cell`` of the epoch in ``epoch_cell`` on, moving to the next
        epoch by itself.

        The DataLoader takes batches from its N workers in turn, so this worker makes batches
        start + w, start + w + N, ... counted from the epoch's first. In each epoch it plays the part
        of the worker that makes that epoch's batches p, p + N, ... (p = its first position in the
        epoch mod N), so an epoch holds the same batches whether it follows another or starts a
        resumed run. A run resumed inside an epoch replays the batches its part made before
        ``start`` and drops them: the rest of the epoch is what the killed run would have seen."""
        first_epoch = int(self.epoch_cell)
        worker, num_workers = worker_position()
        index = int(self.start_cell) + worker
        try:
            while True:
                epoch = first_epoch + index // self.steps_per_epoch
                position = index % self.steps_per_epoch
                replayed = position // num_workers
                batches = self.epoch_batches(epoch, position % num_workers, num_workers, replayed)
                for batch in itertools.islice(batches, replayed, None):
                    yield batch
                    index += num_workers
                    if first_epoch + index // self.steps_per_epoch != epoch:
                        break
        except CorruptSampleError as error:
            yield StreamFailure(str(error))

    def epoch_batches(self, epoch: int, part: int, num_workers: int,
                      replayed: int = 0) -> Iterator[Batch | EncodedBatch]:
        """Endless batches of one epoch for one of its ``num_workers`` interleaved parts; the first
        ``replayed`` ones only draw their randomness (a resumed run drops them)."""
        rng = np.random.default_rng([self.seed, epoch, self.rank, part])
        if get_worker_info() is not None:  # in the main process the loop owns torch's generator
            torch.manual_seed(int(rng.integers(2**63)))
        total_groups = sum(source.shard_set.groups for source in self.sources)
        share = total_groups // (self.world_size * num_workers)
        buffer = min(self.shuffle_buffer, max(share // BUFFER_SHARE, BUFFER_BATCHES * self.batch_size))
        return iter(wds.DataPipeline(
            functools.partial(self.mixed_groups, epoch, part, num_workers, rng),
            wds.shuffle(buffer, buffer, rng=random.Random(int(rng.integers(2**63)))),
            functools.partial(self.samples, replayed * self.batch_size),
            wds.batched(self.batch_size, collation_fn=self.collate, partial=False),
        ))

    def set_groups(self, set_index: int, epoch: int, worker: int,
                   num_workers: int) -> Iterator[tuple[int, ChosenViews]]:
        """(set_index, group with its chosen views) of one set for this worker, endlessly. Views are
        chosen as each group is met in the tar, so only their members are read."""
        shard_set = self.sources[set_index].shard_set
        urls = shard_set.urls
        empty_reads = 0
        for shard, lap in shard_reads(len(urls), seed=self.seed, epoch=epoch, set_index=set_index,
                                      rank=self.rank, world_size=self.world_size, worker=worker,
                                      num_workers=num_workers):
            empty_reads += 1
            if (set_index, shard) in self.damaged:
                self.policy.skipped += 1
            else:
                for group in self.shard_groups(set_index, shard, epoch, lap):
                    empty_reads = 0
                    yield set_index, group
            if empty_reads >= MAX_EMPTY_READS:
                raise CorruptSampleError(f"{shard_set.location}: {MAX_EMPTY_READS} shard reads in a row "
                                         "gave no readable group.")

    def shard_groups(self, set_index: int, shard: int, epoch: int, lap: int) -> Iterator[ChosenViews]:
        """One read of a shard: its groups with their chosen views, every member checked and the
        whole shard hashed the first time this process reads it."""
        shard_set = self.sources[set_index].shard_set
        read = (set_index, shard)
        cut_short = False

        def handle(error: Exception) -> bool:
            nonlocal cut_short
            cut_short |= isinstance(error, DamagedShardError)
            # A shard the network failed to bring is skipped for this read only: a later one tries again.
            if isinstance(error, DamagedShardError) and not isinstance(error, NetworkReadError):
                self.damaged.add(read)
            if isinstance(error, BrokenGroupError):
                self.broken.add((set_index, error.anchor))
            return self.policy.handle(error, shard_set.urls[shard])

        choose = functools.partial(self.choose, shard_set.views, epoch, lap, set_index)
        for group in shard_set.chosen_views(shard, choose, handler=handle, check_sha256=read not in self.hashed):
            if (set_index, group.anchor) in self.broken:  # a later read does not check what made it broken
                self.policy.skipped += 1
            else:
                yield group
        if not cut_short:  # only a read to the end checked every byte
            self.hashed.add(read)

    def choose(self, views_in_group: int, epoch: int, lap: int, set_index: int, anchor: int) -> list[int]:
        return choose_views(views_in_group, self.views, view_rng(self.seed, epoch, lap, set_index, anchor))

    def mixed_groups(self, epoch: int, worker: int, num_workers: int,
                     rng: np.random.Generator) -> Iterator[tuple[int, ChosenViews]]:
        """Each next group comes from set i with probability weight_i / sum of weights. The draws are
        made MIX_DRAWS at a time: the same sequence as one by one, at a fraction of the cost."""
        streams = [self.set_groups(index, epoch, worker, num_workers) for index in range(len(self.sources))]
        weights = np.array([source.weight for source in self.sources], dtype=np.float64)
        probabilities = weights / weights.sum()
        while True:
            for index in rng.choice(len(streams), size=MIX_DRAWS, p=probabilities).tolist():
                yield next(streams[index])

    def samples(self, replayed: int, groups: Iterator[tuple[int, ChosenViews]]
                ) -> Iterator[tuple[torch.Tensor | EncodedViews, int, int]]:
        """The first ``replayed`` samples, which a resumed run drops, are only drawn, not decoded:
        ``encoded_views`` draws the same parameters from each JPEG's header."""
        made = 0
        for set_index, group in groups:
            views_of = self.encoded_views if self.gpu_augment or made < replayed else self.augmented_views
            try:
                views = views_of(group)
            except CorruptSampleError as error:
                self.policy.handle(error, group.source)
                continue
            label = group.label if group.label is not None else UNLABELLED
            yield views, set_index * GROUP_ID_STRIDE + group.anchor, label
            made += 1

    def augmented_views(self, group: ChosenViews) -> torch.Tensor:
        """uint8 [M, 3, S, S]: every chosen view decoded (each once), then each augmented."""
        decoded = {view: decode_group_view(group, view) for view in group.views}
        return torch.stack([self.augment(decoded[view]) for view in group.chosen])

    def encoded_views(self, group: ChosenViews) -> EncodedViews:
        """The chosen views' bytes and parameters, refused or drawn as ``augmented_views`` would:
        every view's header checked first, then the draws in the same order."""
        sizes = {view: view_size(data, view_name(group, view)) for view, data in group.views.items()}
        position = {view: index for index, view in enumerate(group.views)}
        return EncodedViews(list(group.views.values()), [view_name(group, view) for view in group.views],
                            [position[view] for view in group.chosen],
                            [self.augment.draw_for_size(*sizes[view]) for view in group.chosen])

    def collate(self, samples: list[tuple[torch.Tensor | EncodedViews, int, int]]) -> Batch | EncodedBatch:
        views, group_ids, labels = zip(*samples)
        group_ids = torch.tensor(group_ids, dtype=torch.int64)
        labels = torch.tensor(labels, dtype=torch.int64)
        if isinstance(views[0], EncodedViews):
            return EncodedBatch.collate(views, group_ids, labels, self.policy.take_skipped())
        return Batch(torch.stack(views), group_ids, labels, self.policy.take_skipped())


class DeviceAugment:
    """--gpu-augment's last stage, in the training process: an EncodedBatch -> a Batch whose uint8
    views were decoded and augmented on ``device`` (see the module docstring for corrupt bodies)."""

    def __init__(self, config: AugmentConfig, device: torch.device, skip_corrupt: bool):
        self.augment = BatchViewAugment(config)
        self.device = device
        self.skip_corrupt = skip_corrupt

    def __call__(self, batch: EncodedBatch) -> Batch:
        jpegs = batch.jpegs.split(batch.jpeg_sizes.tolist())
        try:
            decoded = decode_views(jpegs, self.device)
        except RuntimeError:
            decoded = decode_each(jpegs, self.device)
            if all(isinstance(image, torch.Tensor) for image in decoded):
                raise  # the batch failed as a whole (e.g. out of device memory), not one of its JPEGs
            batch = self.without_undecodable(batch, decoded)
        images = self.augment([decoded[index] for index in batch.view_jpegs.tolist()], batch.params.to(self.device))
        return Batch(images.unflatten(0, (len(batch.group_ids), -1)), batch.group_ids, batch.labels,
                     batch.skipped)

    def without_undecodable(self, batch: EncodedBatch, decoded: list[torch.Tensor | str]) -> EncodedBatch:
        """Names the first JPEG that does not decode (its entry in ``decoded`` is the reason) or,
        with skip_corrupt, points each sample that uses one to the views and parameters of the
        batch's first intact sample, counted as skipped."""
        reasons = {index: reason for index, reason in enumerate(decoded) if isinstance(reason, str)}
        first = min(reasons)
        problem = f"{batch.names[first]} is not a decodable JPEG ({reasons[first]})."
        if not self.skip_corrupt:
            raise UndecodableViewError(problem)
        samples = len(batch.group_ids)
        per_sample = batch.view_jpegs.view(samples, -1)
        broken = [any(jpeg in reasons for jpeg in row) for row in per_sample.tolist()]
        intact = [sample for sample in range(samples) if not broken[sample]]
        if not intact:
            raise UndecodableViewError(f"Every sample of a batch holds a view that does not decode; the first: "
                                       f"{problem}")
        rows = torch.tensor([intact[0] if broken[sample] else sample for sample in range(samples)])
        views = (rows[:, None] * per_sample.shape[1] + torch.arange(per_sample.shape[1])).flatten()
        return batch._replace(view_jpegs=batch.view_jpegs[views], params=batch.params.select(views),
                              group_ids=batch.group_ids[rows], labels=batch.labels[rows],
                              skipped=batch.skipped + sum(broken))


def stream_rows(rank: int, world_size: int, stream_ranks: int, batch_size: int) -> list[tuple[int, slice]]:
    """(stream rank, rows of its batch) that make this rank's batch. A run keeps the streams of the
    world size it started at (``stream_ranks`` of ``batch_size`` each): their batches one after the
    other are the global batch, which ``world_size`` ranks share in equal, consecutive parts."""
    share = stream_ranks * batch_size // world_size
    first, end = rank * share, (rank + 1) * share
    return [(stream, slice(max(first - stream * batch_size, 0), min(end - stream * batch_size, batch_size)))
            for stream in range(first // batch_size, (end - 1) // batch_size + 1)]


def join_rows(batches: Sequence[Batch | EncodedBatch], rows: Sequence[slice]) -> Batch | EncodedBatch:
    """The given rows of each batch, one after the other (a whole batch, also an EncodedBatch, as is)."""
    if len(batches) == 1 and rows[0] == slice(0, len(batches[0].group_ids)):
        return batches[0]
    return Batch(*(torch.cat([getattr(batch, field)[part] for batch, part in zip(batches, rows)])
                   for field in ("images", "group_ids", "labels")), sum(batch.skipped for batch in batches))


class TrainLoader:
    """``for batch in loader.epoch(e)``: exactly ``steps_per_epoch`` batches, on every rank.

    Consecutive epochs share one DataLoader iterator per stream (the workers run ahead into the next
    epoch); any other call, such as the first one after a resume, restarts the persistent workers
    at ``e``. A rank usually reads one stream, its own; a run resumed on another number of ranks
    reads the streams of the ranks it started on whose rows it now holds (see ``stream_rows``).
    """

    def __init__(self, streams: Sequence[tuple[TrainStream, slice]], num_workers: int, pin_memory: bool):
        self.streams = [stream for stream, _ in streams]
        self.rows = [rows for _, rows in streams]
        self.steps_per_epoch = self.streams[0].steps_per_epoch
        # Each DataLoader draws a seed whenever it starts iterating; from a generator of its own, so that
        # the process's generator (which augments under --workers 0) is the same after a resume at an
        # epoch's end, which starts an iterator, as in a run that went on with its iterator.
        self.dataloaders = [DataLoader(stream, batch_size=None, num_workers=num_workers,
                                       persistent_workers=num_workers > 0, pin_memory=pin_memory,
                                       generator=torch.Generator())
                            for stream in self.streams]
        self._batches: Iterator[tuple[Batch | EncodedBatch | StreamFailure, ...]] | None = None
        self._next_epoch: int | None = None  # the epoch the running iterator is at the start of

    def __len__(self) -> int:
        return self.steps_per_epoch

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch | EncodedBatch]:
        """The batches of one epoch from batch ``start`` on (a run resumed inside the epoch), as
        EncodedBatch under --gpu-augment; raises CorruptSampleError naming the shard on corrupt data
        (unless the loader skips it)."""
        if not 0 <= start < self.steps_per_epoch:
            raise ValueError(f"batch {start} is not within an epoch of {self.steps_per_epoch}")
        if self._batches is None or self._next_epoch != epoch or start:
            for stream in self.streams:
                stream.epoch_cell.fill_(epoch)
                stream.start_cell.fill_(start)
            self._batches = zip(*map(iter, self.dataloaders))
        self._next_epoch = None  # until this epoch is taken whole
        for _ in range(start, self.steps_per_epoch):
            batches = next(self._batches)
            for batch in batches:
                if isinstance(batch, StreamFailure):
                    raise CorruptSampleError(batch.message)
            yield join_rows(batches, self.rows)
        self._next_epoch = epoch + 1


def rank_batch_size(batch_size: int, stream_ranks: int, world_size: int, gpu_augment: bool) -> int:
    """Samples per rank per step when a run that started on ``stream_ranks`` ranks of ``batch_size``
    runs on ``world_size``; refuses a global batch that does not split evenly."""
    if batch_size * stream_ranks % world_size:
        raise DataConfigError(f"The global batch of {batch_size * stream_ranks} does not split evenly over "
                              f"{world_size} processes; use a number of processes that divides it.")
    if gpu_augment and stream_ranks != world_size:
        raise DataConfigError(f"--gpu-augment needs the {stream_ranks} processes the run started with; resume "
                              "with --no-gpu-augment to change their number.")
    return batch_size * stream_ranks // world_size


def build_loader(sources: Sequence[DataSource], *, batch_size: int, views: int = 2,
                 augment: AugmentConfig = AugmentConfig(), num_workers: int = 4, seed: int = 0,
                 rank: int = 0, world_size: int = 1, skip_corrupt: bool = False,
                 shuffle_buffer: int = 1000, pin_memory: bool = False,
                 gpu_augment: bool = False, stream_ranks: int | None = None) -> TrainLoader:
    """The training input for one rank. ``views`` (M >= 1) per sample; ``rank``/``world_size`` of
    this process; ``skip_corrupt`` skips and counts broken tars and samples instead of stopping;
    ``shuffle_buffer`` caps the groups each worker shuffles among; ``gpu_augment``: the workers do
    not decode, the batches are EncodedBatch for DeviceAugment. ``stream_ranks``: the world size the
    run started at (``batch_size`` per rank there), when it now runs on another; each rank then
    takes ``batch_size * stream_ranks / world_size`` samples per step (see ``stream_rows``)."""
    if not sources:
        raise DataConfigError("Give at least one shard set to train on.")
    if batch_size < 1 or views < 1 or num_workers < 0 or shuffle_buffer < 1:
        raise DataConfigError(f"Batch size ({batch_size}), views ({views}) and shuffle buffer "
                              f"({shuffle_buffer}) must be positive and workers ({num_workers}) not negative.")
    if not 0 <= rank < world_size:
        raise DataConfigError(f"Rank {rank} is not within a world of {world_size} processes.")
    stream_ranks = stream_ranks or world_size
    rank_batch_size(batch_size, stream_ranks, world_size, gpu_augment)
    steps = steps_per_epoch(sources, batch_size, stream_ranks)
    streams = [(TrainStream(sources, batch_size=batch_size, steps_per_epoch=steps, views=views, augment=augment,
                            seed=seed, rank=stream, world_size=stream_ranks, skip_corrupt=skip_corrupt,
                            shuffle_buffer=shuffle_buffer, gpu_augment=gpu_augment), rows)
               for stream, rows in stream_rows(rank, world_size, stream_ranks, batch_size)]
    return TrainLoader(streams, num_workers, pin_memory)
