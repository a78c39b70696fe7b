"""--gpu-augment in the trainer: the loader draws the CPU loader's parameters, DeviceAugment makes
views within one level of the CPU loader's, a short run trains, and a JPEG body that does not decode
is named in one sentence (or, with skip_corrupt, its sample replaced by a copy and counted).

Tolerance, measured on the CPU device (200 groups of 48-px noise JPEGs x 2 views, crops of 32 px,
and of 24 px with blur, seeds 0 and 1, one loader worker): the views of the two paths differ by at
most 1 level of 255, in 4 to 6 values per million (float rounding of the batched colour steps); the
test allows 1 level in fewer than 1 value in 10,000.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from shards import CorruptSampleError, Group, open_set
from tests.shards.helpers import synthetic_recipe
from tests.shards.helpers import write_set as write_groups
from tests.shards.hostile import jpeg_declaring, replace_member
from tests.train.test_data import write_set
from train.augment import AugmentConfig, ViewAugment
from train.data import DeviceAugment, EncodedBatch, build_loader
from train.gpu_augment import ViewParamsBatch
from train.main import main as train_main
from train.sources import DataSource

CONFIG = AugmentConfig(crop_size=24, crop_scale_min=0.3, blur=True)
CPU = torch.device("cpu")
BATCH = 8
DAMAGED = 5  # the anchor whose view 1 has a truncated body in the damaged set


def truncated_body(jpeg: bytes) -> bytes:
    """The JPEG cut 20 bytes into its image data: the frame header parses, the body does not decode."""
    return jpeg[:jpeg.index(b"\xff\xda") + 20]


def oblong_jpeg(rng: np.random.Generator) -> bytes:
    """Noise, 28 px high and 40 wide: a height and width swapped anywhere would change the crops."""
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (28, 40, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def three_views(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 groups of 3 oblong views, 16 a shard."""
    directory, rng = tmp_path_factory.mktemp("sets") / "three", np.random.default_rng(0)
    groups = [Group(anchor=anchor, views=[oblong_jpeg(rng) for _ in range(3)],
                    latents=rng.standard_normal((3, 8)).astype(np.float32), label=anchor % 3,
                    meta={"anchor": anchor}) for anchor in range(48)]
    write_groups(directory, groups, synthetic_recipe(groups=48, views=3, latent_dim=8, groups_per_shard=16))
    return directory


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 two-view groups of 16 px, anchor 5's view 1 with a body that does not decode."""
    location = Path(write_set(tmp_path_factory.mktemp("sets") / "damaged", groups=24, size=16,
                              groups_per_shard=8))
    name = f"{DAMAGED:010d}.1.jpg"
    group = next(group for group in open_set(str(location)) if group.anchor == DAMAGED)
    replace_member(location, 0, name, truncated_body(group.views[1]))
    return location


def loader(location: str | Path, gpu_augment: bool, workers: int = 0, skip_corrupt: bool = False):
    return build_loader([DataSource(open_set(str(location)))], batch_size=BATCH, augment=CONFIG,
                        num_workers=workers, seed=3, gpu_augment=gpu_augment, skip_corrupt=skip_corrupt)


def test_the_gpu_augment_loader_draws_the_cpu_loaders_parameters_batch_by_batch(three_views, monkeypatch):
    drawn = []  # the CPU loader's parameters, as it applies them
    apply = ViewAugment.apply
    monkeypatch.setattr(ViewAugment, "apply",
                        lambda self, view, params: drawn.append(params) or apply(self, view, params))
    torch.manual_seed(11)  # with no workers the loader draws from the process's generator
    on_cpu = list(loader(three_views, gpu_augment=False).epoch(0))
    torch.manual_seed(11)
    encoded = list(loader(three_views, gpu_augment=True).epoch(0))

    assert len(encoded) == len(on_cpu) == 6 and all(isinstance(batch, EncodedBatch) for batch in encoded)
    views = BATCH * 2
    for index, (cpu_batch, batch) in enumerate(zip(on_cpu, encoded)):
        assert torch.equal(batch.group_ids, cpu_batch.group_ids) and torch.equal(batch.labels, cpu_batch.labels)
        expected = ViewParamsBatch.from_params(drawn[index * views:(index + 1) * views])
        for name in expected.__dataclass_fields__:
            assert torch.equal(getattr(batch.params, name), getattr(expected, name)), (index, name)


@pytest.fixture(scope="module")
def one_view(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real-image set (K = 1): both views of a sample are augmentations of its one JPEG."""
    return write_set(tmp_path_factory.mktemp("sets") / "one", groups=32, views=1, classes=None, size=32,
                     groups_per_shard=16)


@pytest.mark.parametrize("name, jpegs_per_sample", [("three_views", 2), ("one_view", 1)])
def test_views_augmented_on_the_device_match_the_cpu_loaders_within_one_level(request, name, jpegs_per_sample):
    location = request.getfixturevalue(name)
    on_cpu = list(loader(location, gpu_augment=False, workers=1).epoch(0))
    encoded = list(loader(location, gpu_augment=True, workers=1).epoch(0))
    on_device = list(map(DeviceAugment(CONFIG, CPU, skip_corrupt=False), encoded))

    assert all(len(batch.jpeg_sizes) == BATCH * jpegs_per_sample for batch in encoded)  # each decoded once
    assert [batch.group_ids.tolist() for batch in on_device] == [batch.group_ids.tolist() for batch in on_cpu]
    expected = torch.cat([batch.images for batch in on_cpu])
    images = torch.cat([batch.images for batch in on_device])
    assert images.shape == expected.shape == (len(on_cpu) * BATCH, 2, 3, 24, 24) and images.dtype == torch.uint8
    difference = (images.int() - expected.int()).abs()
    assert difference.max() <= 1 and (difference > 0).float().mean() < 1e-4


def test_an_oversized_view_is_refused_in_the_worker_as_the_cpu_path_refuses_it(tmp_path):
    location = Path(write_set(tmp_path / "set", groups=16, size=16, groups_per_shard=8))
    replace_member(location, 1, "0000000009.0.jpg", jpeg_declaring(30000, 30000))
    messages = []
    for gpu_augment in (False, True):
        with pytest.raises(CorruptSampleError) as error:
            list(loader(location, gpu_augment).epoch(0))
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert "sample 0000000009 view 0 declares 30000 x 30000 pixels" in messages[1]


def test_a_short_gpu_augment_run_trains_and_may_resume_without_it(tmp_path):
    data = Path(write_set(tmp_path / "set", groups=16, size=16, groups_per_shard=8))  # 4 steps an epoch
    run = tmp_path / "run"
    common = ["--data", str(data), "--out", str(run), "--backbone", "convnet-small", "--batch-size", "4",
              "--steps", "5", "--workers", "0", "--no-progress", "--log-every", "1", "--warmup", "0"]
    trained = CliRunner().invoke(train_main, [*common, "--save-every", "1", "--gpu-augment"])
    assert trained.exit_code == 0, trained.output
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["step"] == 5 and state["config"]["gpu_augment"] is True
    assert all(torch.isfinite(value).all() for value in state["model"].values())

    # Where views are decoded is operational: a run may continue on a machine without the device.
    shutil.copy(run / "epoch-0001.pt", run / "last.pt")  # as if killed during the second epoch
    resumed = CliRunner().invoke(train_main, [*common, "--resume", "--no-gpu-augment"])
    assert resumed.exit_code == 0, resumed.output
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 5


def test_a_jpeg_body_that_does_not_decode_stops_gpu_augment_training_in_one_sentence(tmp_path, damaged):
    result = CliRunner().invoke(train_main, [
        "--data", str(damaged), "--out", str(tmp_path / "run"), "--backbone", "convnet-small", "--batch-size",
        "4", "--epochs", "1", "--workers", "0", "--no-progress", "--gpu-augment"])

    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    error = result.output.strip().splitlines()[-1]  # after the schedule's line
    assert error.startswith(f"error: shard {damaged / 'shard-000000.tar'}: sample {DAMAGED:010d} view 1 is not a "
                            "decodable JPEG (") and error.endswith(").")


def test_skip_corrupt_replaces_a_sample_whose_body_does_not_decode_and_counts_it(damaged):
    augment = DeviceAugment(CONFIG, CPU, skip_corrupt=True)
    encoded = list(loader(damaged, gpu_augment=True, skip_corrupt=True).epoch(0))  # workers read headers only
    batches = [augment(batch) for batch in encoded]

    hit = [index for index, batch in enumerate(encoded) if DAMAGED in batch.group_ids.tolist()]
    assert len(hit) == 1, "the epoch must hold the damaged group once"
    replaced = batches[hit[0]]
    assert replaced.images.shape == (BATCH, 2, 3, 24, 24) and DAMAGED not in replaced.group_ids.tolist()
    ids = replaced.group_ids.tolist()
    twice = [group for group in set(ids) if ids.count(group) == 2]
    assert len(twice) == 1  # the copy of the batch's first intact sample, with its views
    first, copy = (index for index, group in enumerate(ids) if group == twice[0])
    assert torch.equal(replaced.images[first], replaced.images[copy])
    assert sum(batch.skipped for batch in batches) == 1
