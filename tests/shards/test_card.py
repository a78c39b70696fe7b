"""Every finished set carries a dataset card (README.md, Hugging Face format) and croissant.json that other
tools read: mlcroissant validates and iterates it, Hugging Face ``datasets`` loads the shards offline."""

from __future__ import annotations

import json
from glob import glob

import numpy as np
import yaml
from click.testing import CliRunner

from shards.cli import cli
from shards.schema import ShardSetError
from shards.set_writer import SetWriter
from tests.shards.helpers import CLASSES, synthetic_recipe, write_photo, write_synthetic_set


def card_header(folder) -> dict:
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_a_synthetic_set_has_a_card_that_says_how_it_was_made(tmp_path):
    manifest = write_synthetic_set(tmp_path / "set", groups=6)
    header = card_header(tmp_path / "set")
    assert header["license"] == "unknown" and header["size_categories"] == ["n<1K"]
    assert header["task_categories"] == ["image-feature-extraction"] and "genviews" in header["tags"]
    assert manifest["set_id"] in header["pretty_name"]
    card = (tmp_path / "set" / "README.md").read_text()
    for section in ("## How it was made", "## Classes", "## Counts", "## Format", "## How to load it", "## Citation"):
        assert section in card
    assert "Generator: `test-colours`" in card and "licence of the weights: unknown" in card
    assert f"{len(CLASSES)} of {len(CLASSES)} classes" in card and "6 groups of 3 views" in card


def test_mlcroissant_validates_the_set_and_lists_its_groups(tmp_path, monkeypatch):
    import mlcroissant
    from etils import epath
    from mlcroissant._src.core import constants
    from mlcroissant._src.operation_graph.operations import extract

    monkeypatch.setattr(extract, "EXTRACT_PATH", epath.Path(tmp_path / "cache" / "extract"))  # not the user's cache
    monkeypatch.setattr(constants, "DOWNLOAD_PATH", epath.Path(tmp_path / "cache" / "download"))
    manifest = write_synthetic_set(tmp_path / "set", groups=6, groups_per_shard=4)
    dataset = mlcroissant.Dataset(jsonld=str(tmp_path / "set" / "croissant.json"))
    assert not dataset.metadata.ctx.issues.errors
    files = {node.name: node.sha256 for node in dataset.metadata.distribution if node.name.endswith(".tar")}
    assert files == {row["name"]: row["sha256"] for row in manifest["shards"]}
    records = list(dataset.records("groups"))
    assert sorted(record["groups/anchor"] for record in records) == list(range(6))
    for record in records:
        metadata = json.loads(record["groups/metadata"])
        assert metadata["anchor"] == record["groups/anchor"] and metadata["class"] == metadata["anchor"] % len(CLASSES)


def test_datasets_loads_a_set_offline_with_views_as_images(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from datasets import load_dataset

    write_synthetic_set(tmp_path / "set", groups=6, views=3, latent_dim=8)
    groups = load_dataset("webdataset", data_files={"train": sorted(glob(str(tmp_path / "set" / "shard-*.tar")))},
                          split="train", cache_dir=str(tmp_path / "hf"))
    assert len(groups) == 6
    group = groups[2]
    assert [group[f"{view}.jpg"].size for view in range(3)] == [(32, 32)] * 3
    assert np.asarray(group["latents.npy"], dtype=np.float32).shape == (3, 8)
    assert group["cls"] == 2 and group["json"]["anchor"] == 2


def test_ingest_records_the_licence_and_description_on_the_card(tmp_path):
    for index in range(2):
        write_photo(tmp_path / "photos" / "cats" / f"{index}.png", (60 * index, 90, 160), (20, 20))
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path / "photos"), str(tmp_path / "real"), "--image-size", "16",
                                      "--workers", "1", "--no-progress", "--license", "cc-by-4.0",
                                      "--description", "Two cats."])
    assert result.exit_code == 0, result.output
    assert card_header(tmp_path / "real")["license"] == "cc-by-4.0"
    card = (tmp_path / "real" / "README.md").read_text()
    assert "Two cats." in card and "Source folder:" in card
    assert json.loads((tmp_path / "real" / "croissant.json").read_text())["license"] == "cc-by-4.0"


def test_a_folder_with_its_own_readme_is_refused_untouched(tmp_path):
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "README.md").write_text("my notes")
    try:
        write_synthetic_set(tmp_path / "set")
    except ShardSetError as error:
        assert "README.md" in str(error)
    else:
        raise AssertionError("a folder holding its own README.md was written into")
    assert (tmp_path / "set" / "README.md").read_text() == "my notes"


def test_a_set_finished_without_its_card_gets_it_when_finished_again(tmp_path):
    write_synthetic_set(tmp_path / "set", groups=6, views=3, latent_dim=8, groups_per_shard=4)
    card = {name: (tmp_path / "set" / name).read_bytes() for name in ("README.md", "croissant.json")}
    for name in card:
        (tmp_path / "set" / name).unlink()  # as a set made before cards, or a disk that filled up, leaves it
    assert SetWriter(tmp_path / "set", synthetic_recipe(6, 3, 8, 4)).finish(["tests"])
    assert {name: (tmp_path / "set" / name).read_bytes() for name in card} == card
