"""Where ``shards copy`` writes a set: a folder (atomic files, as every writer of the project writes
them) or a bucket (s3://, gs://, hf:// through fsspec, where an object appears whole when its upload
ends). A write to a bucket that fails is tried again as a read is (GENVIEWS_NET_TRIES tries in a
row, the same pauses); what still fails is one sentence."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from common.files import (AtomicFile, WriteError, describe_os_error, make_folder, remove_stale_temporaries,
                          write_bytes_atomic)
from shards.bucket_source import bucket_fault, bucket_filesystem
from shards.manifest import member_location, read_set_file
from shards.schema import ShardSetError
from shards.set_writer import belongs_to_a_set
from shards.storage import NET_TIMEOUT, NET_TRIES, pause_after, tries
from shards.transport import BUCKET_SCHEMES, Refusal, scheme_of

T = TypeVar("T")


class Destination:
    """A set's place to write to; ``location`` is its folder or URL prefix."""

    def __init__(self, location: str):
        self.location = location

    def read(self, name: str) -> bytes | None:
        """A small file already there, or None."""
        try:
            return read_set_file(self.location, name)
        except FileNotFoundError:
            return None

    def prepare(self) -> None:
        """Make the place ready for a copy (or refuse it in one sentence)."""

    def write(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def new_file(self, name: str, size: int) -> AtomicFile | BucketUpload:
        """A file written piece by piece that exists under ``name`` only after ``commit()``."""
        raise NotImplementedError


class FolderDestination(Destination):
    def prepare(self) -> None:
        folder = Path(self.location)
        make_folder(folder)
        foreign = sorted(path.name for path in folder.iterdir() if not belongs_to_a_set(path.name))
        if foreign:
            raise ShardSetError(f"{folder} holds files that are not part of a shard set ({foreign[0]}, ...); "
                                "copy into a new folder or into an unfinished copy of the same set.")
        remove_stale_temporaries(folder)

    def write(self, name: str, data: bytes) -> None:
        write_bytes_atomic(Path(self.location) / name, data)

    def new_file(self, name: str, size: int) -> AtomicFile:
        return AtomicFile(Path(self.location) / name, needed_bytes=size)


class BucketDestination(Destination):
    def __init__(self, location: str):
        super().__init__(location.rstrip("/"))
        self.fs = bucket_filesystem(location, NET_TIMEOUT.value)

    def write(self, name: str, data: bytes) -> None:
        url = member_location(self.location, name)
        written(lambda: self.fs.pipe_file(url, data), url)

    def new_file(self, name: str, size: int) -> BucketUpload:
        return BucketUpload(self.fs, member_location(self.location, name))


class BucketUpload:
    """A file spooled to a local temporary file, then uploaded whole by ``commit()``: fsspec's files
    written piece by piece appear under their name when closed, even after a failure."""

    def __init__(self, fs: Any, url: str):
        self.fs, self.url = fs, url
        handle, self.temp_path = tempfile.mkstemp(prefix="genviews-copy-", suffix=".partial")
        self.file = os.fdopen(handle, "wb")

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as error:  # the temporary folder is full, as a rule
            raise WriteError(describe_os_error(error, Path(self.temp_path))) from None

    def commit(self) -> None:
        try:
            self.file.close()
        except OSError as error:
            raise WriteError(describe_os_error(error, Path(self.temp_path))) from None
        written(lambda: self.fs.put_file(self.temp_path, self.url), self.url)

    def __enter__(self) -> BucketUpload:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.file.close()
        except OSError:
            pass  # flushing what is thrown away failed (a full disk): nothing is lost
        os.unlink(self.temp_path)


def destination_for(location: str) -> Destination:
    scheme = scheme_of(location)
    if not scheme:
        return FolderDestination(location)
    if scheme in BUCKET_SCHEMES:
        return BucketDestination(location)
    raise ShardSetError(f"{location} is not a place a set can be copied to: copy to a folder or to an s3://, "
                        "gs:// or hf:// URL.")


def written(action: Callable[[], T], url: str) -> T:
    """``action()`` (a write to ``url``), tried again after a failure, up to GENVIEWS_NET_TRIES tries."""
    failed, timeout, most_tries = 0, NET_TIMEOUT.value, NET_TRIES.value
    while True:
        try:
            return action()
        except PermissionError as error:
            raise ShardSetError(f"{url} could not be written: access was refused ({error}).") from None
        except FileNotFoundError as error:  # no try makes the bucket exist
            raise ShardSetError(f"{url} could not be written: {error or 'its bucket does not exist'}.") from None
        except Exception as error:  # each file system raises its own kinds of network error
            try:
                fault = bucket_fault(error)
            except Refusal as refusal:  # what no later try would fix (no credentials)
                raise ShardSetError(f"{url} could not be written: {refusal}.") from None
            failed += 1
            if failed >= most_tries:
                raise ShardSetError(f"{url} could not be written: {fault.what} ({tries(failed)}).") from None
            time.sleep(pause_after(failed, timeout))
