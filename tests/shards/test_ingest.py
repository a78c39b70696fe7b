"""``ingest``: an ImageFolder of real photos becomes a kind=real shard set, deterministically."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from shards import open_set
from shards.cli import cli
from shards.ingest import ingest_folder, square_rgb
from shards.schema import MANIFEST_NAME, ShardSetError
from shards.verify import verify_set
from tests.cli import assert_clean_failure, run_module, tree_digest
from tests.shards.helpers import write_photo, write_synthetic_set

# relative path -> (colour, width x height); every image has its own colour
PHOTOS = {
    "bird/b1.bmp": ((200, 30, 30), (40, 48)),
    "cat/c1.jpg": ((30, 200, 30), (48, 40)),
    "cat/C2.PNG": ((30, 30, 200), (36, 36)),
    "cat/sub/c3.jpeg": ((150, 150, 30), (64, 40)),
    "dog/d1.webp": ((30, 150, 150), (40, 40)),
    "dog/d2.jpg": ((150, 30, 150), (20, 24)),  # smaller than the set: scaled up
}
SKIPPED = ["cat/notes.txt", "dog/broken.jpg", "dog/fake.png"]
SIZE = 32


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for relative, (colour, size) in PHOTOS.items():
        write_photo(root / relative, colour, size)
    whole = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(whole, "JPEG")
    (root / "dog/broken.jpg").write_bytes(whole.getvalue()[:len(whole.getvalue()) // 2])
    (root / "dog/fake.png").write_text("not a picture")
    (root / "cat/notes.txt").write_text("notes about cats")
    (root / "cat/.DS_Store").write_bytes(b"\0\1")  # hidden: ignored, not even listed
    (root / "empty-class").mkdir()
    return root


def ingest(photos: Path, out: Path, **options) -> object:
    return ingest_folder(photos, out, **{"image_size": SIZE, "groups_per_shard": 2, "seed": 1,
                                         "workers": 2, "command": ["tests"], **options})


def test_ingest_cli_writes_a_real_set_with_one_view_per_image(photos: Path, tmp_path: Path):
    out = tmp_path / "set"

    result = run_module("shards", "ingest", photos, out, "--image-size", SIZE, "--groups-per-shard", 2,
                        "--seed", 1, "--workers", 2)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "skipped 3 files that are not readable images: cat/notes.txt, dog/broken.jpg, dog/fake.png" \
        in result.stderr
    shard_set = open_set(str(out))
    manifest = shard_set.manifest
    assert (shard_set.kind, shard_set.views, shard_set.groups, shard_set.image_size) == ("real", 1, 6, SIZE)
    assert shard_set.class_names == ["bird", "cat", "dog", "empty-class"]
    assert manifest["class_subset"] == [0, 1, 2] and manifest["skipped"] == SKIPPED
    assert manifest["generator"] is None and manifest["view_method"] == {"name": "none"}
    assert manifest["image"] == {"codec": "jpeg", "quality": 95, "size": SIZE}
    assert [row["groups"] for row in manifest["shards"]] == [2, 2, 2]
    assert verify_set(out).intact

    groups = list(shard_set)
    # anchor order: the sorted files, permuted with the seed
    in_order = sorted(PHOTOS, key=lambda path: (path.split("/")[0], path.split("/", 1)[1]))
    permuted = [in_order[i] for i in np.random.default_rng(1).permutation(len(in_order))]
    assert [group.meta["source"] for group in groups] == permuted
    for anchor, group in enumerate(groups):
        source = group.meta["source"]
        assert group.anchor == group.meta["anchor"] == anchor
        assert group.label == group.meta["class"] == shard_set.class_names.index(source.split("/")[0])
        image = np.asarray(Image.open(io.BytesIO(group.views[0])))
        assert image.shape == (SIZE, SIZE, 3)
        colour = np.array(PHOTOS[source][0])
        centre = image[SIZE // 2, SIZE // 2].astype(int)
        assert np.abs(centre - (colour + 30)).max() <= 12, (source, centre, colour)  # the ramp adds ~30 mid-way


def test_square_rgb_scales_the_shorter_side_and_crops_the_centre(tmp_path: Path):
    for name, size, middle in (("wide.png", (90, 30), (slice(None), slice(30, 60))),
                               ("tall.png", (30, 90), (slice(30, 60), slice(None)))):
        pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
        pixels[..., 0] = 255
        pixels[middle] = (0, 255, 0)
        Image.fromarray(pixels).save(tmp_path / name)

        square = np.asarray(square_rgb(tmp_path / name, 10))

        assert square.shape == (10, 10, 3)
        # only the green middle third is kept (the filter reads a pixel or so past the crop's edge)
        assert (square[..., 1] > 200).all() and (square[..., 0] < 60).all(), name
        assert (square[2:-2, 2:-2] == (0, 255, 0)).all(), name


def test_same_command_into_two_folders_gives_identical_bytes(photos: Path, tmp_path: Path):
    ingest(photos, tmp_path / "a")
    ingest(photos, tmp_path / "b")
    ingest(photos, tmp_path / "c", seed=2)

    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    assert tree_digest(tmp_path / "a")["shard-000000.tar"] != tree_digest(tmp_path / "c")["shard-000000.tar"]


def test_rerun_resumes_and_rewrites_only_missing_shards(photos: Path, tmp_path: Path):
    out = tmp_path / "set"
    ingest(photos, out)
    before = tree_digest(out)
    (out / "shard-000001.json").unlink()
    (out / "shard-000001.tar").unlink()
    (out / "shard-000002.json").unlink()  # a shard without its record does not exist ...
    (out / "shard-000002.tar").write_bytes(b"half-written")  # ... whatever its file holds
    (out / "shard-000000.tar.partial").write_bytes(b"left by a crash")

    report = ingest(photos, out)

    assert (report.shards_written, report.shards_kept) == (2, 1)
    assert tree_digest(out) == before  # the crash's leftover is gone once the set is complete

    again = ingest(photos, out)
    assert (again.shards_written, again.shards_kept) == (0, 3)
    assert tree_digest(out) == before


def test_refuses_a_folder_holding_another_set_and_touches_nothing(photos: Path, tmp_path: Path):
    out = tmp_path / "set"
    ingest(photos, out)
    before = tree_digest(out)

    result = CliRunner().invoke(cli, ["ingest", str(photos), str(out), "--image-size", str(SIZE),
                                      "--groups-per-shard", "2", "--seed", "5"])

    assert result.exit_code == 2
    assert "holds a different shard set" in result.output
    assert tree_digest(out) == before


def test_refuses_records_of_another_set_even_without_a_manifest(photos: Path, tmp_path: Path):
    out = tmp_path / "set"
    write_synthetic_set(out, groups=4, groups_per_shard=2)
    (out / MANIFEST_NAME).unlink()
    before = tree_digest(out)

    with pytest.raises(ShardSetError, match="holds a different shard set"):
        ingest(photos, out)
    assert tree_digest(out) == before


@pytest.mark.parametrize("layout, expected", [
    ({}, "has no class sub-folders"),
    ({"loose.jpg": b"x"}, "has no class sub-folders"),
    ({"cat/broken.jpg": b"\xff\xd8\xff", "dog/readme.md": b"hi"}, "holds no readable image"),
])
def test_folder_without_usable_images_is_one_sentence_and_exits_2(tmp_path: Path, layout, expected):
    root = tmp_path / "photos"
    root.mkdir()
    for relative, data in layout.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)

    result = CliRunner().invoke(cli, ["ingest", str(root), str(tmp_path / "out"), "--image-size", "32"])

    assert result.exit_code == 2
    assert [line for line in result.output.splitlines() if line.startswith("error:")] == \
        [result.output.strip().splitlines()[-1]]
    assert expected in result.output
    assert not (tmp_path / "out").exists()


def test_user_mistakes_in_a_real_process_are_one_sentence(photos: Path, tmp_path: Path):
    missing = run_module("shards", "ingest", tmp_path / "nowhere", tmp_path / "out", "--image-size", 32)
    assert_clean_failure(missing, "is not a folder")
    assert missing.returncode == 2

    inside = CliRunner().invoke(cli, ["ingest", str(photos), str(photos / "set"), "--image-size", "32"])
    assert inside.exit_code == 2 and "must not be inside the ingested folder" in inside.output

    quality = CliRunner().invoke(cli, ["ingest", str(photos), str(tmp_path / "out"), "--image-size", "32",
                                       "--quality", "0"])
    assert quality.exit_code == 2 and "quality must be between 1 and 100" in quality.output


def test_manifest_records_the_source_and_skipped_files(photos: Path, tmp_path: Path):
    ingest(photos, tmp_path / "set")

    manifest = json.loads((tmp_path / "set" / MANIFEST_NAME).read_text())

    assert manifest["source"] == str(photos) and manifest["skipped"] == SKIPPED
    assert manifest["provenance"]["command"] == ["tests"]
