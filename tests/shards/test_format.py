"""The shard-set format: writer -> manifest -> reader round trips, manifest checks, schema checks."""

from __future__ import annotations

import io
import json
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from shards import CorruptSampleError, Group, ShardSetError, decode_view, open_set
from shards.reader import decode_group_view
from shards.schema import MANIFEST_NAME
from tests.cli import assert_clean_failure, run_module
from tests.shards.helpers import (GARBAGE_JPEG, break_first_view, jpeg_bytes, synthetic_group,
                                  synthetic_recipe, truncate_shard, write_set, write_synthetic_set)



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


def _set_field(name: str, value: object):
    return lambda manifest: {**manifest, name: value}


def _set_generator(**fields: object):
    return lambda manifest: {**manifest, "generator": {**manifest["generator"], **fields}}


MALFORMED_FIELDS = {
    "image not an object": (_set_field("image", "jpeg"), "image"),
    "image without size": (lambda manifest: {**manifest, "image": {"codec": "jpeg"}}, "image"),
    "image size zero": (lambda manifest: {**manifest, "image": {**manifest["image"], "size": 0}}, "image"),
    "image size text": (lambda manifest: {**manifest, "image": {**manifest["image"], "size": "32"}}, "image"),
    "classes not a list": (_set_field("classes", "apple,banana"), "classes"),
    "class name not text": (_set_field("classes", ["apple", 2, "cherry"]), "classes"),
    "views zero": (_set_field("views", 0), "views"),
    "views text": (_set_field("views", "3"), "views"),
    "groups_per_shard zero": (_set_field("groups_per_shard", 0), "groups_per_shard"),
    "groups_per_shard float": (_set_field("groups_per_shard", 4.0), "groups_per_shard"),
    "groups_per_shard bool": (_set_field("groups_per_shard", True), "groups_per_shard"),
    "synthetic without generator": (_set_field("generator", None), "generator"),
    "latent_dim missing": (lambda manifest: {**manifest, "generator": {"name": "test-colours"}}, "generator"),
    "latent_dim zero": (_set_generator(latent_dim=0), "generator"),
    "latent_dim text": (_set_generator(latent_dim="8"), "generator"),
    "sampler not an object": (_set_generator(sampler="ddim"), "generator"),
    "sampler steps text": (_set_generator(sampler={"name": "ddim", "eta": 0.0, "steps": "50", "guidance": 1.5}),
                           "generator"),
    "sampler guidance nan": (_set_generator(sampler={"name": "ddim", "eta": 0.0, "steps": 50, "guidance": float("nan")}),
                             "generator"),
    "class_subset out of range": (_set_field("class_subset", [0, 3]), "class_subset"),
    "view_method not an object": (_set_field("view_method", "gaussian"), "view_method"),
    "provenance not an object": (_set_field("provenance", ["genviews"]), "provenance"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_FIELDS))
def test_malformed_field_is_refused_in_one_sentence_naming_it(tmp_path: Path, case: str):
    change, field_name = MALFORMED_FIELDS[case]
    manifest = write_synthetic_set(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(change(manifest)))

    with pytest.raises(ShardSetError, match=f"malformed {field_name} field") as error:
        open_set(str(tmp_path))
    assert_one_sentence(str(error.value))


def test_real_set_with_a_generator_that_is_not_an_object_is_refused(tmp_path: Path):
    recipe = {**synthetic_recipe(groups=1, views=1, latent_dim=8, groups_per_shard=1),
              "kind": "real", "generator": "none", "class_subset": []}
    write_set(tmp_path, [Group(anchor=0, views=[jpeg_bytes((9, 9, 9))], label=0, meta={})], recipe)

    with pytest.raises(ShardSetError, match="malformed generator field: it must be an object or null"):
        open_set(str(tmp_path))


def test_info_of_a_malformed_manifest_is_one_sentence(tmp_path: Path):
    """From a shell, once: every malformed field's sentence is checked in-process above."""
    change, field_name = MALFORMED_FIELDS["image size text"]
    manifest = write_synthetic_set(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(change(manifest)))

    result = run_module("shards", "info", tmp_path)

    assert result.returncode == 2
    assert_clean_failure(result, f"malformed {field_name} field")
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


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


# --- damaged shards: every reader gets one sentence naming the shard ------------------------------

def _cut_after_two_groups(shard: Path) -> None:
    """Cut a shard exactly before the third group's first member: what is left is a valid, shorter tar."""
    with tarfile.open(shard) as tar:
        third = next(member for member in tar.getmembers() if member.name.startswith("0000000002."))
    shard.write_bytes(shard.read_bytes()[:third.offset])


@pytest.mark.parametrize("damage, expected", [
    (truncate_shard, r"shard-000001\.tar could not be read \(unexpected end of data\)"),
    (lambda shard: shard.write_bytes(b""), r"shard-000001\.tar could not be read \(empty file\)"),
    (lambda shard: shard.unlink(), r"shard-000001\.tar could not be read \(No such file or directory\)"),
])
def test_iterating_a_set_with_an_unreadable_shard_names_it(tmp_path: Path, damage, expected):
    write_synthetic_set(tmp_path, groups=6, groups_per_shard=3)
    damage(tmp_path / "shard-000001.tar")

    groups = iter(open_set(str(tmp_path)))

    assert [next(groups).anchor for _ in range(3)] == [0, 1, 2]
    with pytest.raises(CorruptSampleError, match=expected) as error:
        next(groups)
    assert_one_sentence(str(error.value))
    assert f"python -m shards verify {tmp_path} names every damaged shard" in str(error.value)


def test_a_shard_cut_between_groups_is_refused_not_read_as_shorter(tmp_path: Path):
    write_synthetic_set(tmp_path, groups=6, groups_per_shard=4)
    _cut_after_two_groups(tmp_path / "shard-000000.tar")

    with pytest.raises(CorruptSampleError, match=r"shard-000000\.tar ends before anchor 2") as error:
        list(open_set(str(tmp_path)))
    assert_one_sentence(str(error.value))


def test_shards_swapped_in_a_copy_are_refused(tmp_path: Path):
    write_synthetic_set(tmp_path, groups=4, groups_per_shard=2)
    first, second = tmp_path / "shard-000000.tar", tmp_path / "shard-000001.tar"
    first_bytes = first.read_bytes()
    first.write_bytes(second.read_bytes())
    second.write_bytes(first_bytes)

    with pytest.raises(CorruptSampleError, match="holds anchor 2 where the manifest puts anchor 0") as error:
        list(open_set(str(tmp_path)))
    assert_one_sentence(str(error.value))


def test_a_view_that_does_not_decode_is_named_by_shard_sample_and_view(tmp_path: Path):
    write_synthetic_set(tmp_path, groups=2, groups_per_shard=2)
    assert break_first_view(tmp_path / "shard-000000.tar") == "0000000000.0.jpg"
    group = next(iter(open_set(str(tmp_path))))  # the bytes still start like a JPEG: the schema passes

    with pytest.raises(CorruptSampleError, match="is not a decodable JPEG") as error:
        decode_group_view(group, 0)

    assert str(error.value).startswith(f"shard {tmp_path / 'shard-000000.tar'}: sample 0000000000 view 0 ")
    assert_one_sentence(str(error.value))
    assert tuple(decode_group_view(group, 1).shape) == (3, 32, 32)
    with pytest.raises(CorruptSampleError, match=r"^The view is not a decodable JPEG \(.+\)\.$"):
        decode_view(GARBAGE_JPEG)
