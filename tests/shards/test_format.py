"""The shard-set format: writer -> manifest -> reader round trips, manifest checks, schema checks."""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from shards import CorruptSampleError, Group, ShardSetError, decode_view, open_set
from shards.schema import MANIFEST_NAME
from tests.shards.helpers import jpeg_bytes, synthetic_group, synthetic_recipe, write_set, write_synthetic_set


def assert_one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith(".") and "Traceback" not in message


def test_synthetic_round_trip_gives_back_every_group(tmp_path: Path):
    written = [synthetic_group(anchor, views=3, latent_dim=8) for anchor in range(7)]
    write_set(tmp_path, written, synthetic_recipe(groups=7, views=3, latent_dim=8, groups_per_shard=3))
    shard_set = open_set(str(tmp_path))

    read = list(shard_set)

    assert [row["groups"] for row in shard_set.shard_rows] == [3, 3, 1]
    assert [group.anchor for group in read] == list(range(7))
    for got, want in zip(read, written):
        assert got.views == want.views
        assert got.latents.dtype == np.float32 and np.array_equal(got.latents, want.latents)
        assert got.label == want.label and got.meta == want.meta
    assert tuple(decode_view(read[0].views[1]).shape) == (3, 32, 32)


def test_unlabelled_real_round_trip_has_no_latents_or_labels(tmp_path: Path):
    recipe = {**synthetic_recipe(groups=2, views=1, latent_dim=8, groups_per_shard=5),
              "kind": "real", "generator": None, "view_method": {"name": "none"}, "classes": [],
              "class_subset": []}
    written = [Group(anchor=a, views=[jpeg_bytes((a * 90, 10, 10))], meta={"anchor": a}) for a in range(2)]
    write_set(tmp_path, written, recipe)

    read = list(open_set(str(tmp_path)))

    assert [(g.anchor, g.views, g.latents, g.label, g.meta) for g in read] == \
           [(g.anchor, g.views, None, None, g.meta) for g in written]


def test_writing_the_same_groups_twice_gives_the_same_bytes(tmp_path: Path):
    first = write_synthetic_set(tmp_path / "a")
    second = write_synthetic_set(tmp_path / "b")

    assert first["shards"] == second["shards"]
    for row in first["shards"]:
        assert (tmp_path / "a" / row["name"]).read_bytes() == (tmp_path / "b" / row["name"]).read_bytes()


@pytest.mark.parametrize("change, expected", [
    (lambda manifest: {**manifest, "version": 2}, "version 2"),
    (lambda manifest: {"hello": "world"}, "not a genviews shard-set manifest"),
    (lambda manifest: {key: value for key, value in manifest.items() if key != "views"}, "incomplete"),
])
def test_bad_manifest_is_refused_in_one_sentence(tmp_path: Path, change, expected):
    manifest = write_synthetic_set(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(change(manifest)))

    with pytest.raises(ShardSetError) as error:
        open_set(str(tmp_path))

    assert expected in str(error.value)
    assert_one_sentence(str(error.value))


def test_manifest_that_is_not_json_is_refused(tmp_path: Path):
    write_synthetic_set(tmp_path)
    (tmp_path / MANIFEST_NAME).write_bytes(b"\x89PNG not json")

    with pytest.raises(ShardSetError, match="not valid JSON") as error:
        open_set(str(tmp_path))
    assert_one_sentence(str(error.value))


@pytest.mark.parametrize("where, expected", [("missing", "does not exist"), ("unfinished", "no manifest.json")])
def test_missing_or_unfinished_set_is_refused(tmp_path: Path, where, expected):
    location = tmp_path / where
    if where == "unfinished":
        location.mkdir()
    with pytest.raises(ShardSetError, match=expected) as error:
        open_set(str(location))
    assert_one_sentence(str(error.value))


class _PlantedGroup(Group):
    """A group written with members replaced or added, as a hostile or foreign writer would."""

    planted: dict[str, bytes] = {}

    def members(self) -> list[tuple[str, bytes]]:
        members = dict(super().members())
        members.update(self.planted)
        return list(members.items())


def _planted(planted: dict[str, bytes]) -> _PlantedGroup:
    group = _PlantedGroup(**vars(synthetic_group(0, views=2, latent_dim=4)))
    group.planted = planted
    return group


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


class _MakeFolder:
    """Unpickling this creates a folder: proof that something was unpickled."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


@pytest.mark.parametrize("suffix", ["pyd", "pickle"])
def test_reader_rejects_a_pickle_member_without_unpickling_it(tmp_path: Path, suffix):
    proof = tmp_path / "unpickled"
    group = _planted({f"0000000000.{suffix}": pickle.dumps(_MakeFolder(str(proof)))})
    write_set(tmp_path / "set", [group], synthetic_recipe(groups=1, views=2, latent_dim=4, groups_per_shard=1))

    with pytest.raises(CorruptSampleError, match=rf"unexpected \['{suffix}'\]"):
        list(open_set(str(tmp_path / "set")))
    assert not proof.exists()


def _broken(change) -> Group:
    group = synthetic_group(0, views=2, latent_dim=4)
    change(group)
    return group


@pytest.mark.parametrize("group, expected", [
    (_planted({"0000000000.latents.npy": _npy(np.zeros((2, 4)))}), r"float64\[2, 4\]; expected float32"),
    (_planted({"0000000000.latents.npy": _npy(np.array([{"a": 1}], dtype=object))}), "unreadable latents"),
    (_planted({"0000000000.json": b"{not json"}), "not JSON"),
    (_broken(lambda g: setattr(g, "latents", g.latents[:1])), r"expected float32\[2, 4\]"),
    (_broken(lambda g: setattr(g, "label", 7)), "not an index below 3"),
    (_broken(lambda g: setattr(g, "views", g.views[:1])), r"missing \['1.jpg'\]"),
    (_broken(lambda g: setattr(g, "views", [g.views[0], b"GIF89a"])), "not a JPEG"),
])
def test_reader_rejects_samples_that_break_the_schema(tmp_path: Path, group, expected):
    write_set(tmp_path, [group], synthetic_recipe(groups=1, views=2, latent_dim=4, groups_per_shard=1))

    with pytest.raises(CorruptSampleError, match=expected) as error:
        list(open_set(str(tmp_path)))
    assert "shard-000000.tar" in str(error.value) and "0000000000" in str(error.value)
