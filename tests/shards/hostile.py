"""Hostile shard sets, as a careless or malicious lab could send them: members with crafted
headers, shards replaced or cut with their manifest rows re-hashed to match, nested JSON."""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from shards import CorruptSampleError, open_set
from shards.schema import MANIFEST_NAME
from shards.verify import verify_set
from tests.cli import cli_env
from tests.shards.helpers import jpeg_bytes

Members = list[tuple[str, bytes]]
NESTED = b"[" * 200_000 + b"]" * 200_000  # far deeper than any JSON parser recurses


def read_members(shard: Path) -> Members:
    with tarfile.open(shard) as tar:
        return [(member.name, tar.extractfile(member).read()) for member in tar.getmembers()]


def tar_bytes(members: Members) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def change_manifest(directory: Path, change: Callable[[dict[str, Any]], None]) -> None:
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    change(manifest)
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))


def replace_shard(directory: Path, index: int, data: bytes) -> None:
    """Put ``data`` in place of shard ``index`` and re-hash its manifest row, as a sender who
    wants the set to pass a size and sha256 check would."""
    (directory / f"shard-{index:06d}.tar").write_bytes(data)
    rehash_row(directory, index)


def rehash_row(directory: Path, index: int) -> None:
    """Shard ``index``'s manifest row made to match its present bytes (size and sha256), so that what
    a reader finds is the damage inside the shard, not the changed hash."""
    row_name = f"shard-{index:06d}.tar"
    data = (directory / row_name).read_bytes()

    def rehash(manifest: dict[str, Any]) -> None:
        row = next(row for row in manifest["shards"] if row["name"] == row_name)
        row.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())

    change_manifest(directory, rehash)


def replace_member(directory: Path, index: int, name: str, data: bytes) -> None:
    """Replace one member's data in shard ``index``, rows re-hashed."""
    members = read_members(directory / f"shard-{index:06d}.tar")
    assert name in dict(members), name
    replace_shard(directory, index, tar_bytes([(old, data if old == name else value) for old, value in members]))


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header is patched to declare width x height pixels."""
    data = bytearray(jpeg_bytes((90, 120, 30)))
    frame = data.index(b"\xff\xc0")
    data[frame + 5:frame + 7] = height.to_bytes(2, "big")
    data[frame + 7:frame + 9] = width.to_bytes(2, "big")
    return bytes(data)


def npy_declaring(shape: tuple[int, ...]) -> bytes:
    """An .npy header declaring a float32 array of ``shape``, followed by no data at all."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def pickled_npy() -> bytes:
    """An .npy file of Python objects: loading it means unpickling."""
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"run": "code"}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def rename_member(directory: Path, index: int, name: str, new_name: str) -> None:
    """Rename one member of shard ``index``, rows re-hashed."""
    members = read_members(directory / f"shard-{index:06d}.tar")
    assert name in dict(members), name
    replace_shard(directory, index, tar_bytes([(new_name if old == name else old, data) for old, data in members]))


def tar_with_huge_member(name: str, declared: int) -> bytes:
    """A tar whose member ``name`` declares ``declared`` bytes in its header, with 512 bytes of
    data after it: a reader that trusts the header allocates what it says."""
    info = tarfile.TarInfo(name)
    info.size = declared
    return info.tobuf(tarfile.GNU_FORMAT) + bytes(512) + bytes(1024)


def cut_before_group(shard: Path, anchor: int) -> bytes:
    """The shard's bytes up to the first member of ``anchor``, plus an end-of-archive: a valid,
    shorter tar."""
    members = read_members(shard)
    return tar_bytes([(name, data) for name, data in members if int(name.partition(".")[0]) < anchor])


def every_reader_refuses(location: Path, *fragments: str, shard: int = 0,
                         verify_says: tuple[str, ...] | None = None, unread_members: bool = False) -> None:
    """The whole-group reader, the trainer's chosen-views reader (on its first read of a shard, which
    reads every byte, and on later reads, which read only the chosen views and the class) and verify
    all refuse ``shard`` (and verify nothing else), each in one line holding every fragment (verify:
    ``verify_says``, when its sentence words the problem otherwise). ``unread_members``: the damage
    lies in members that later reads skip, so only the first read sees it."""
    shard_set = open_set(str(location))
    with pytest.raises(CorruptSampleError) as whole:
        list(shard_set.shard_groups(shard))
    with pytest.raises(CorruptSampleError) as first_read:
        list(shard_set.chosen_views(shard, lambda anchor: [0, 1], check_sha256=True))
    messages = [(str(whole.value), fragments), (str(first_read.value), fragments)]
    if not unread_members:
        with pytest.raises(CorruptSampleError) as later_read:
            list(shard_set.chosen_views(shard, lambda anchor: [0, 1]))
        messages.append((str(later_read.value), fragments))
    problems = verify_set(location).problems
    assert [problem.shard for problem in problems] == [f"shard-{shard:06d}.tar"], problems
    for message, expected in [*messages, (problems[0].message, verify_says or fragments)]:
        assert "\n" not in message and "Traceback" not in message and "BufferedReader" not in message, message
        assert all(fragment in message for fragment in expected), (message, expected)


def copy_set(source: Path, directory: Path) -> Path:
    shutil.copytree(source, directory)
    return directory


def memory_limited(gibibytes: float) -> Callable[[], None]:
    """A preexec_fn capping the child's address space, so an allocation a header asks for fails
    instead of taking the machine's memory."""
    limit = int(gibibytes * 2**30)
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def without_file_permissions_bypass() -> list[str]:
    """The command prefix that makes file permissions apply: root reads any folder, so as root the
    command runs with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped (setpriv)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv, so file permissions cannot be made to apply")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def run_restricted(*command: object, timeout: float = 300) -> subprocess.CompletedProcess:
    """A command under file permissions (see without_file_permissions_bypass)."""
    return subprocess.run([*without_file_permissions_bypass(), *map(str, command)], env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)
