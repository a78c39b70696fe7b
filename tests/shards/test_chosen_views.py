"""The trainer's reader: only the chosen views and the class leave the tar, with the whole reader's checks."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from shards import CorruptSampleError, Group, open_set
from shards.reader import TarFormatError, TarReader
from tests.shards.helpers import synthetic_group, synthetic_recipe, truncate_shard, write_set, write_synthetic_set


class _Planted(Group):
    """A group whose members are replaced, removed or doubled, as a foreign writer might leave them."""

    replace: dict[str, bytes] = {}
    drop: tuple[str, ...] = ()
    double: tuple[str, ...] = ()

    def members(self) -> list[tuple[str, bytes]]:
        members = []
        for name, data in super().members():
            suffix = name.partition(".")[2]
            if suffix not in self.drop:
                members.append((name, self.replace.get(suffix, data)))
            if suffix in self.double:
                members.append((name, data))
        return members


def planted(anchor: int, **changes) -> Group:
    group = _Planted(**vars(synthetic_group(anchor, views=3, latent_dim=4)))
    for name, value in changes.items():
        setattr(group, name, value)
    return group


def write(directory: Path, groups: list[Group], per_shard: int = 3) -> Path:
    write_set(directory, groups, synthetic_recipe(groups=len(groups), views=3, latent_dim=4,
                                                  groups_per_shard=per_shard))
    return directory


def first_and(view: int):
    return lambda anchor: [0, view]


def test_chosen_views_are_the_whole_readers_bytes_and_the_rest_is_not_read(tmp_path: Path, monkeypatch):
    write_synthetic_set(tmp_path, groups=6, views=3, groups_per_shard=6)
    shard_set = open_set(str(tmp_path))
    read_bytes = []

    class Counting(io.BufferedReader):
        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            read_bytes.append(len(data))
            return data

    monkeypatch.setattr(shard_set, "open_shard", lambda index: Counting(io.FileIO(shard_set.shard_source(index))))
    chosen = list(shard_set.chosen_views(0, lambda anchor: [0, 1 + anchor % 2, 0]))
    read_by_chosen = sum(read_bytes)
    whole = list(shard_set.shard_groups(0))

    assert [group.anchor for group in chosen] == list(range(6))
    for got, full in zip(chosen, whole):
        assert got.chosen == [0, 1 + got.anchor % 2, 0] and sorted(got.views) == sorted({0, 1 + got.anchor % 2})
        assert all(got.views[view] == full.views[view] for view in got.views)
        assert got.label == full.label and got.source == full.source
    # 6 groups x 6 members: every header, then 2 views and the class of each group; nothing else
    wanted = sum(len(data) for group in chosen for data in group.views.values()) + 6 * 1
    assert read_by_chosen == 36 * 512 + 512 + wanted  # the headers, one end-of-archive block, the data


def test_members_that_are_not_read_are_not_checked_but_must_be_there(tmp_path: Path):
    groups = [planted(0, replace={"2.jpg": b"GIF89a", "latents.npy": b"garbage", "json": b"{not json"}),
              planted(1, drop=("latents.npy",))]
    shard_set = open_set(str(write(tmp_path, groups, per_shard=2)))
    read = shard_set.chosen_views(0, first_and(1))

    assert next(read).anchor == 0  # view 2, the latents and the metadata are never read
    with pytest.raises(CorruptSampleError, match=r"sample 0000000001 has members .* \(missing \['latents.npy'\]\)"):
        next(read)


@pytest.mark.parametrize("group, expected", [
    (planted(0, replace={"1.jpg": b"GIF89a"}), "has a view that is not a JPEG"),
    (planted(0, replace={"cls": b"7"}), "has class '7', not an index below 3"),
    (planted(0, drop=("2.jpg",)), r"missing \['2.jpg'\]"),
    (planted(0, replace={"0.jpg": b"\xff\xd8"}, double=("json",)), "has member json twice"),
])
def test_a_broken_group_is_named_and_a_handler_may_skip_it(tmp_path: Path, group, expected):
    shard_set = open_set(str(write(tmp_path, [group, planted(1)], per_shard=2)))

    with pytest.raises(CorruptSampleError, match=expected) as error:
        list(shard_set.chosen_views(0, first_and(1)))
    assert str(error.value).startswith(f"shard {tmp_path / 'shard-000000.tar'}: sample 0000000000 ")

    skipped = []
    kept = list(shard_set.chosen_views(0, first_and(1), handler=lambda error: skipped.append(error) or True))
    assert [group.anchor for group in kept] == [1] and len(skipped) == 1


def _cut_before_group(shard: Path, anchor: int) -> None:
    with tarfile.open(shard) as tar:
        member = next(member for member in tar.getmembers() if member.name.startswith(f"{anchor:010d}."))
    shard.write_bytes(shard.read_bytes()[:member.offset])


def _swap_first_shards(directory: Path) -> None:
    first, second = directory / "shard-000000.tar", directory / "shard-000001.tar"
    first_bytes = first.read_bytes()
    first.write_bytes(second.read_bytes())
    second.write_bytes(first_bytes)


def _break_a_header(shard: Path) -> None:
    with tarfile.open(shard) as tar:
        offset = tar.getmembers()[3].offset
    data = bytearray(shard.read_bytes())
    data[offset + 5] ^= 0x01  # a later member's name: its header's checksum no longer holds
    shard.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, expected", [
    (lambda d: truncate_shard(d / "shard-000000.tar"), r"could not be read \(unexpected end of data"),
    (lambda d: (d / "shard-000000.tar").write_bytes(b""), r"could not be read \(empty file\)"),
    (lambda d: (d / "shard-000000.tar").unlink(), r"could not be read \(No such file or directory\)"),
    (lambda d: _break_a_header(d / "shard-000000.tar"), r"could not be read \(bad checksum in the header"),
    (lambda d: _cut_before_group(d / "shard-000000.tar", 2), "ends before anchor 2, which the manifest puts"),
    (_swap_first_shards, "holds sample 0000000003 where the manifest puts anchor 0"),
])
def test_a_damaged_shard_is_named_in_one_sentence_and_a_handler_skips_the_rest(tmp_path: Path, damage, expected):
    write_synthetic_set(tmp_path, groups=6, groups_per_shard=3)
    damage(tmp_path)
    shard_set = open_set(str(tmp_path))

    with pytest.raises(CorruptSampleError, match=expected) as error:
        list(shard_set.chosen_views(0, first_and(1)))
    message = str(error.value)
    assert message.startswith(f"shard {tmp_path / 'shard-000000.tar'} ") and message.endswith(".")
    assert "\n" not in message

    skipped = []
    list(shard_set.chosen_views(0, first_and(1), handler=lambda error: skipped.append(error) or True))
    assert len(skipped) == 1


def _tar(format: int, names: list[str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=format) as tar:
        directory = tarfile.TarInfo("a-folder")
        directory.type = tarfile.DIRTYPE
        tar.addfile(directory)
        for index, name in enumerate(names):
            info = tarfile.TarInfo(name)
            data = bytes([index]) * (index * 300 + 1)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


LONG = "d" * 120 + "/0000000000.0.jpg"  # past ustar's 100 characters: a prefix, a GNU name or a pax path


@pytest.mark.parametrize("format", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("seekable", [True, False])
def test_tar_reader_reads_names_and_data_as_tarfile_does(format: int, seekable: bool):
    data = _tar(format, ["0000000000.0.jpg", LONG, "0000000000.json" + ("é" if format == tarfile.PAX_FORMAT else "")])

    class Pipe(io.BytesIO):
        def seekable(self) -> bool:
            return False

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        expected = [(member.name, tar.extractfile(member).read()) for member in tar.getmembers() if member.isreg()]
    with TarReader(io.BytesIO(data) if seekable else Pipe(data)) as reader:
        every = [(name, reader.read()) for name in reader]
    with TarReader(io.BytesIO(data) if seekable else Pipe(data)) as reader:
        second_only = [(name, reader.read()) for index, name in enumerate(reader) if index == 1]

    assert every == expected and second_only == expected[1:2]


def test_tar_reader_refuses_data_that_ends_early():
    data = _tar(tarfile.USTAR_FORMAT, ["a.0.jpg", "a.1.jpg"])
    with pytest.raises(TarFormatError, match="unexpected end of data"):
        with TarReader(io.BytesIO(data[:512 * 3 + 100])) as reader:
            list(reader)  # the second file's data is skipped, past the end
