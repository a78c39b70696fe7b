from __future__ import annotations

import io
import itertools
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from shards import CorruptSampleError, Group, open_set
from tests.shards.helpers import write_set as write_groups
from train.augment import AugmentConfig
from train.data import GROUP_ID_STRIDE, build_loader, choose_views, shard_reads, view_rng
from train.sources import (DataConfigError, DataSource, check_shared_classes, parse_data_spec,
                           steps_per_epoch)

WORKER = Path(__file__).with_name("uneven_worker.py")
TINY = AugmentConfig(crop_size=8)
CLASSES = ["cat", "dog"]
LATENT_DIM = 4
BROKEN_VIEW = b"\xff\xd8 a JPEG header and then nothing decodable"


def jpeg(rng: np.random.Generator, size: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def banded_jpeg(view: int, views: int, size: int) -> bytes:
    """Black with a white band across row block ``view`` of ``views``: pixel augmentation (a full-area
    crop, a horizontal flip, colour changes of a gray image) keeps the band where it is, so the view
    can be read off an augmented image."""
    pixels = np.zeros((size, size, 3), dtype=np.uint8)
    pixels[view * size // views:(view + 1) * size // views] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def band_of(image: torch.Tensor, views: int) -> int:
    """The row block of an augmented banded view ([3, S, S]) that holds the band."""
    rows = image.float().mean(dim=(0, 2))
    return int(torch.stack([block.mean() for block in rows.chunk(views)]).argmax())


def write_set(directory: Path, *, groups: int, views: int = 2, groups_per_shard: int = 10,
              classes: list[str] | None = CLASSES, damage: dict[int, str] | None = None,
              broken_positives: bool = False, banded: bool = False, size: int = 12) -> str:
    """A finished shard set of small random JPEGs (``banded``: view v is ``banded_jpeg(v)``);
    anchor a has class a % len(classes).

    ``damage`` breaks chosen anchors: "not-jpeg" (a view without JPEG header), "undecodable" (a
    header, then garbage), "missing-view" (a view member absent). ``broken_positives`` makes every
    view but the anchor undecodable.
    """
    damage = damage or {}
    kind = "synthetic" if views > 1 else "real"
    classes = classes or []
    recipe = {"kind": kind, "groups": groups, "views": views,
              "image": {"codec": "jpeg", "quality": 75, "size": size},
              "generator": {"name": "test", "latent_dim": LATENT_DIM} if kind == "synthetic" else None,
              "view_method": {"name": "gaussian", "sigma": 0.2} if kind == "synthetic" else {"name": "none"},
              "classes": classes, "class_subset": list(range(len(classes))), "seed": 0,
              "groups_per_shard": groups_per_shard}
    rng = np.random.default_rng(0)
    members = []
    for anchor in range(groups):
        images = [banded_jpeg(view, views, size) if banded else jpeg(rng, size) for view in range(views)]
        if broken_positives:
            images[1:] = [BROKEN_VIEW] * (views - 1)
        problem = damage.get(anchor)
        if problem == "not-jpeg":
            images[-1] = b"GIF89a"
        elif problem == "undecodable":
            images[-1] = BROKEN_VIEW
        elif problem == "missing-view":
            images = images[:-1]
        latents = rng.standard_normal((views, LATENT_DIM)).astype(np.float32) if views > 1 else None
        members.append(Group(anchor=anchor, views=images, latents=latents,
                             label=anchor % len(classes) if classes else None, meta={"anchor": anchor}))
    write_groups(directory, members, recipe)
    return str(directory)


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("sets")
    return {
        "three_views": write_set(root / "three_views", groups=40, views=3),
        "real": write_set(root / "real", groups=24, views=1, classes=None),
        "big_a": write_set(root / "big_a", groups=200, groups_per_shard=50),
        "big_b": write_set(root / "big_b", groups=200, groups_per_shard=50),
        "uneven": write_set(root / "uneven", groups=24, groups_per_shard=10),  # shards of 10, 10, 4
        "other_classes": write_set(root / "other_classes", groups=20, classes=["car", "bus"]),
    }


def source(location: str, weight: float = 1.0) -> DataSource:
    return DataSource(open_set(location), weight)


def epoch_batches(loader, epoch: int = 0) -> list:
    return list(loader.epoch(epoch))


# --- view choice -------------------------------------------------------------------------------

def test_default_views_are_the_anchor_and_one_uniform_positive() -> None:
    draws = [choose_views(4, 2, np.random.default_rng([3, anchor])) for anchor in range(3000)]
    assert all(draw[0] == 0 and len(draw) == 2 for draw in draws)
    positives = Counter(draw[1] for draw in draws)
    assert set(positives) == {1, 2, 3}
    assert all(abs(count - 1000) < 100 for count in positives.values()), positives


def test_multi_positive_views_are_distinct_then_repeat_beyond_the_group() -> None:
    for anchor in range(200):
        chosen = choose_views(5, 3, np.random.default_rng(anchor))
        assert chosen[0] == 0 and len(set(chosen)) == 3 and set(chosen) <= set(range(5))
        more = choose_views(4, 6, np.random.default_rng(anchor))
        assert more[0] == 0 and sorted(more[:4]) == [0, 1, 2, 3] and set(more[4:]) <= set(range(4))
    assert choose_views(1, 3, np.random.default_rng(0)) == [0, 0, 0]


def test_view_choice_depends_on_seed_epoch_lap_set_and_anchor() -> None:
    def choices(seed: int = 1, epoch: int = 0, lap: int = 0, set_index: int = 0) -> list[list[int]]:
        return [choose_views(8, 3, view_rng(seed, epoch, lap, set_index, anchor)) for anchor in range(50)]

    first = choices()
    assert first == choices()
    assert len({tuple(chosen) for chosen in first}) > 10  # anchors get different views
    for changed in ({"seed": 2}, {"epoch": 1}, {"lap": 1}, {"set_index": 1}):
        assert choices(**changed) != first, changed


@pytest.mark.parametrize("workers", [0, 2])
def test_the_loader_chooses_each_anchors_views_from_its_seed_whatever_the_workers(tmp_path: Path,
                                                                                  workers: int) -> None:
    """4 shards of 8 banded groups, batches of 4, no look-ahead shuffle: every anchor comes once per epoch,
    from lap 0, so its views are choose_views(K, M, view_rng(seed, epoch, 0, 0, anchor)), read off the
    band of each augmented view, with 0 or 2 workers."""
    views_in_group, views = 4, 3
    location = write_set(tmp_path / "set", groups=32, views=views_in_group, groups_per_shard=8, banded=True,
                         size=32)
    loader = build_loader([source(location)], batch_size=4, views=views, num_workers=workers, seed=7,
                          augment=AugmentConfig(crop_size=16, crop_scale_min=1.0), shuffle_buffer=1)
    for epoch in (0, 1):
        chosen = {int(group_id): [band_of(image, views_in_group) for image in images]
                  for batch in epoch_batches(loader, epoch)
                  for group_id, images in zip(batch.group_ids, batch.images)}
        assert sorted(chosen) == list(range(32))
        assert chosen == {anchor: choose_views(views_in_group, views, view_rng(7, epoch, 0, 0, anchor))
                          for anchor in range(32)}


def test_only_the_chosen_views_are_decoded(tmp_path: Path) -> None:
    location = write_set(tmp_path / "set", groups=16, views=3, broken_positives=True)
    loader = build_loader([source(location)], batch_size=4, views=1, augment=TINY, num_workers=0)
    assert sum(batch.images.shape[1] for batch in epoch_batches(loader)) == 4
    with pytest.raises(CorruptSampleError, match="not a decodable JPEG"):
        epoch_batches(build_loader([source(location)], batch_size=4, views=2, augment=TINY, num_workers=0))


# --- batches -------------------------------------------------------------------------------------

def test_batches_hold_views_group_ids_and_labels(sets: dict[str, str]) -> None:
    loader = build_loader([source(sets["real"]), source(sets["three_views"])], batch_size=8, views=3,
                          augment=AugmentConfig(crop_size=16), num_workers=0, seed=1)
    batches = epoch_batches(loader)
    assert len(batches) == loader.steps_per_epoch == (24 + 40) // 8
    for batch in batches:
        assert batch.images.shape == (8, 3, 3, 16, 16) and batch.images.dtype == torch.uint8
        assert batch.group_ids.dtype == batch.labels.dtype == torch.int64 and batch.skipped == 0
        set_index, anchor = batch.group_ids // GROUP_ID_STRIDE, batch.group_ids % GROUP_ID_STRIDE
        assert set(set_index.tolist()) <= {0, 1}
        assert torch.equal(batch.labels[set_index == 0], torch.full_like(anchor[set_index == 0], -1))
        assert torch.equal(batch.labels[set_index == 1], anchor[set_index == 1] % 2)
        assert bool((anchor[set_index == 0] < 24).all() and (anchor[set_index == 1] < 40).all())
    # each view has its own augmentation, also when all come from one image (K = 1)
    assert not torch.equal(batches[0].images[:, 0], batches[0].images[:, 1])


def test_an_epoch_is_the_same_after_another_and_after_a_resume(sets: dict[str, str]) -> None:
    """5 batches per epoch over 2 workers: epoch 1 starts on the other worker when it follows epoch 0."""
    def loader():
        return build_loader([source(sets["three_views"])], batch_size=8, augment=TINY, num_workers=2, seed=5)

    running = loader()
    first, following = epoch_batches(running, 0), epoch_batches(running, 1)
    resumed, repeated = epoch_batches(loader(), 1), epoch_batches(running, 1)
    assert len(following) == len(resumed) == len(repeated) == 5
    for batch, *others in zip(following, resumed, repeated):
        for other in others:
            assert torch.equal(batch.images, other.images) and torch.equal(batch.group_ids, other.group_ids)
    assert not torch.equal(first[0].images, following[0].images)


def test_an_epoch_resumed_at_a_batch_is_the_rest_of_that_epoch(sets: dict[str, str]) -> None:
    """5 batches per epoch over 2 workers, resumed at batch 3 (worker 1's part, its second batch)."""
    def loader():
        return build_loader([source(sets["three_views"])], batch_size=8, augment=TINY, num_workers=2, seed=5)

    running = loader()
    whole, following = epoch_batches(running, 1), epoch_batches(running, 2)
    resumed = loader()
    rest = list(resumed.epoch(1, start=3))
    assert len(rest) == 2
    for batch, other in zip(whole[3:] + following, rest + epoch_batches(resumed, 2)):
        assert torch.equal(batch.images, other.images) and torch.equal(batch.group_ids, other.group_ids)


@pytest.mark.parametrize("started, resumed", [(2, 1), (1, 2), (2, 4)])
def test_ranks_resumed_at_another_count_share_the_batches_of_the_ranks_that_started(sets, started, resumed):
    """The rest of an epoch (from batch 2 of 5) on ``resumed`` ranks: the same global batches, so
    every group of the epoch comes once, as often as on the ``started`` ranks."""
    def global_batches(ranks: int, **options) -> tuple[list[torch.Tensor], list[list]]:
        # batch_size is per rank of the start: a global batch of 8
        loaders = [build_loader([source(sets["three_views"])], batch_size=8 // started, augment=TINY,
                                num_workers=1, seed=5, rank=rank, world_size=ranks, **options)
                   for rank in range(ranks)]
        per_rank = [list(loader.epoch(0, start=2)) for loader in loaders]
        return [torch.cat([batch.group_ids for batch in step]) for step in zip(*per_rank)], per_rank

    expected, started_batches = global_batches(started)
    again, resumed_batches = global_batches(resumed, stream_ranks=started)
    assert len(again) == 3 and all(torch.equal(ids, other) for ids, other in zip(expected, again))
    whole = [torch.cat([batch.images for batch in step]) for step in zip(*started_batches)]
    assert all(torch.equal(images, torch.cat([batch.images for batch in step]))
               for images, step in zip(whole, zip(*resumed_batches)))


def test_a_global_batch_that_does_not_split_over_the_ranks_is_refused(sets: dict[str, str]) -> None:
    with pytest.raises(DataConfigError, match="global batch of 8 does not split evenly over 3"):
        build_loader([source(sets["three_views"])], batch_size=4, world_size=3, stream_ranks=2)


def test_weighted_mix_follows_the_weights(sets: dict[str, str]) -> None:
    loader = build_loader([source(sets["big_a"], 3.0), source(sets["big_b"], 1.0)], batch_size=16,
                          augment=TINY, num_workers=0, seed=2)
    ids = torch.cat([batch.group_ids for batch in epoch_batches(loader)])
    assert len(ids) == 400
    share_a = float((ids < GROUP_ID_STRIDE).float().mean())
    assert abs(share_a - 0.75) < 0.07, share_a


def test_groups_are_shuffled_and_each_epoch_covers_the_set(sets: dict[str, str]) -> None:
    loader = build_loader([source(sets["big_a"])], batch_size=16, augment=TINY, num_workers=0, seed=4)
    for epoch in range(2):
        ids = torch.cat([batch.group_ids for batch in epoch_batches(loader, epoch)])
        assert len(ids) == 192 and len(set(ids.tolist())) > 150
        consecutive = float(((ids[1:] - ids[:-1]) == 1).float().mean())
        assert consecutive < 0.2, consecutive  # without the buffer, shards stream in anchor order: 1.0


# --- epoch length and shard schedule -----------------------------------------------------------

def test_steps_per_epoch_come_from_the_manifests(sets: dict[str, str]) -> None:
    sources = [source(sets["three_views"]), source(sets["uneven"], 0.2)]
    assert steps_per_epoch(sources, batch_size=4, world_size=3) == (40 + 24) // 12
    loader = build_loader(sources, batch_size=4, augment=TINY, num_workers=0, rank=2, world_size=3)
    assert len(loader) == 5 and len(epoch_batches(loader)) == 5


def test_batch_larger_than_a_set_is_refused(sets: dict[str, str]) -> None:
    with pytest.raises(DataConfigError, match="larger than the data"):
        build_loader([source(sets["three_views"]), source(sets["real"])], batch_size=13, world_size=2)


def test_every_rank_and_worker_reads_shards_and_each_lap_covers_the_set() -> None:
    reads = {(rank, worker): list(zip(range(6), shard_reads(3, seed=0, epoch=0, set_index=0, rank=rank,
                                                                world_size=2, worker=worker, num_workers=2)))
             for rank in range(2) for worker in range(2)}
    assert all(len(found) == 6 for found in reads.values())
    first_lap = sorted(shard for found in reads.values() for _, (shard, lap) in found if lap == 0)
    assert first_lap == [0, 1, 2]


def test_the_shard_order_changes_between_epochs_and_laps() -> None:
    def laps(epoch: int) -> list[list[int]]:
        reads = list(itertools.islice(shard_reads(8, seed=0, epoch=epoch, set_index=0, rank=0, world_size=1,
                                                  worker=0, num_workers=1), 16))
        return [[shard for shard, lap in reads if lap == number] for number in (0, 1)]

    first, second = laps(0), laps(1)
    assert all(sorted(order) == list(range(8)) for order in first + second)  # each lap reads every shard once
    assert first == laps(0)
    assert first[0] != second[0] and first[0] != first[1]


def test_two_ranks_with_uneven_shards_get_equal_epochs(sets: dict[str, str], tmp_path: Path) -> None:
    """3 shards on 2 ranks with 2 workers each: one rank has a single shard, and DDP still never hangs."""
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(WORKER), sets["uneven"], str(tmp_path)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120,
                              env=environment | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
    assert finished.returncode == 0, finished.stderr[-3000:]
    results = [json.loads((tmp_path / f"rank-{rank}.json").read_text()) for rank in range(2)]
    assert [result["steps_per_epoch"] for result in results] == [3, 3]  # 24 groups // (4 x 2)
    assert [result["batches"] for result in results] == [[3, 3], [3, 3]]
    assert [result["global_batch"] for result in results] == [8, 8]
    assert all(result["anchors"] and max(result["anchors"]) < 24 for result in results)


# --- data options ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("/data/sets/a", ("/data/sets/a", 1.0)),
    ("/data/sets/a:0.5", ("/data/sets/a", 0.5)),
    ("sets/b:2", ("sets/b", 2.0)),
    ("https://host:8080/sets/a", ("https://host:8080/sets/a", 1.0)),
    ("https://host:8080/sets/a:0.25", ("https://host:8080/sets/a", 0.25)),
    ("http://host:8080", ("http://host:8080", 1.0)),
    ("pipe:curl -s http://host/sets/a", ("pipe:curl -s http://host/sets/a", 1.0)),
])
def test_data_specs_split_off_only_a_trailing_weight(text: str, expected: tuple[str, float]) -> None:
    assert parse_data_spec(text) == expected


@pytest.mark.parametrize("text, message", [
    ("/data/a:0", "--data '/data/a:0': the weight after ':' must be a positive number."),
    ("/data/a:-1", "--data '/data/a:-1': the weight after ':' must be a positive number."),
    ("/data/a:inf", "--data '/data/a:inf': the weight after ':' must be a positive number."),
    (":0.5", "--data ':0.5' names no shard set."),
])
def test_bad_data_specs_are_refused(text: str, message: str) -> None:
    with pytest.raises(DataConfigError, match=f"^{re.escape(message)}$"):
        parse_data_spec(text)


def test_label_supervision_needs_one_shared_class_list(sets: dict[str, str]) -> None:
    assert check_shared_classes([source(sets["three_views"]), source(sets["uneven"])]) == CLASSES
    with pytest.raises(DataConfigError, match="different class lists"):
        check_shared_classes([source(sets["three_views"]), source(sets["other_classes"])])
    with pytest.raises(DataConfigError, match="no class labels"):
        check_shared_classes([source(sets["three_views"]), source(sets["real"])])


# --- corrupt data ------------------------------------------------------------------------------

@pytest.mark.parametrize("problem, workers", [("not-jpeg", 0), ("undecodable", 1), ("missing-view", 0)])
def test_a_corrupt_sample_stops_training_naming_its_shard(tmp_path: Path, problem: str, workers: int) -> None:
    location = write_set(tmp_path / "set", groups=30, damage={13: problem})
    loader = build_loader([source(location)], batch_size=4, augment=TINY, num_workers=workers)
    with pytest.raises(CorruptSampleError, match=r"shard .*shard-000001\.tar.*0000000013"):
        epoch_batches(loader)


def test_a_truncated_tar_stops_training_naming_its_shard(tmp_path: Path) -> None:
    location = write_set(tmp_path / "set", groups=30)
    shard = Path(location) / "shard-000002.tar"
    shard.write_bytes(shard.read_bytes()[:1500])
    loader = build_loader([source(location)], batch_size=4, augment=TINY, num_workers=1)
    with pytest.raises(CorruptSampleError, match=r"shard-000002\.tar"):
        epoch_batches(loader)


def test_skip_corrupt_skips_and_counts(tmp_path: Path) -> None:
    damage = {3: "not-jpeg", 13: "undecodable", 17: "missing-view"}
    location = write_set(tmp_path / "set", groups=30, damage=damage)
    shard = Path(location) / "shard-000002.tar"
    shard.write_bytes(shard.read_bytes()[:1500])
    loader = build_loader([source(location)], batch_size=4, augment=TINY, num_workers=0, skip_corrupt=True)
    batches = epoch_batches(loader)
    assert len(batches) == 7
    seen = set(torch.cat([batch.group_ids for batch in batches]).tolist())
    assert not seen & set(damage)
    assert sum(batch.skipped for batch in batches) >= 3
