"""Files that appear whole or not at all, their sha256, and OS errors in one sentence.

Every file genviews writes (shards, records, manifests, checkpoints, results, sheets) goes through
``AtomicFile``: it is written under a temporary name of this writer's own, ``NAME.<hex>.partial``,
fsynced and renamed over ``NAME``. While it is being written the writer holds an exclusive
``flock`` on it, so a temporary file whose lock can be taken belongs to a writer that died (the
kernel drops the locks of a killed process): ``remove_stale_temporaries`` deletes exactly those,
and ``being_written`` tells another process to leave a file to its live writer.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from common.errors import UserError

TEMP_SUFFIX = ".partial"
MB = 1 << 20


class WriteError(UserError):
    """The operating system refused a write (no space, too large, permission, read-only, not a folder)."""


def describe_os_error(error: OSError, path: Path, needed_bytes: int | None = None) -> str:
    """One sentence for an OS error met while writing ``path``."""
    code = error.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        place = mount_point(path)
        free = shutil.disk_usage(place).free // MB if place.exists() else 0
        need = f"; about {max(1, -(-needed_bytes // MB))} MB needed" if needed_bytes else ""
        what = "no space left" if code == errno.ENOSPC else "the disk quota is exhausted"
        return f"{what.capitalize()} on {place} while writing {path}{need} ({free} MB free)."
    if code == errno.EFBIG:
        return (f"File too large while writing {path}: it passes the file-size limit (ulimit -f) or the "
                "largest file its file system holds.")
    if code in (errno.EACCES, errno.EPERM):
        return f"Permission denied while writing {path}: choose a folder you can write to."
    if code == errno.EROFS:
        return f"{path} lies on a read-only file system: choose a writable folder."
    if code in (errno.ENOTDIR, errno.EEXIST) and not path.parent.is_dir():
        return f"Cannot write {path}: a part of its folder path is a file, not a folder."
    return f"Could not write {path} ({error.strerror or error})."


def mount_point(path: Path) -> Path:
    """The mount point holding ``path`` (the device a user frees space on)."""
    place = Path(os.path.abspath(path))
    while not place.exists() or not os.path.ismount(place):
        if place.parent == place:
            break
        place = place.parent
    return place


def check_output_path(path: Path) -> None:
    """Refuse, in one sentence, an output path that cannot even be looked up, such as one inside a
    folder this user cannot enter (where ``Path.exists`` raises PermissionError)."""
    try:
        path.exists()
    except PermissionError:
        raise WriteError(f"Permission denied while looking up {path}: a folder on its path cannot be entered; "
                         "choose a folder you can write to.") from None
    except OSError as error:
        raise WriteError(f"Cannot look up {path} ({error.strerror or error}).") from None


def make_folder(path: Path) -> None:
    """``mkdir -p``, with OS errors as one sentence."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise WriteError(f"{path} exists and is not a folder.") from None
    except OSError as error:
        raise WriteError(describe_os_error(error, path)) from None


class AtomicFile:
    """A binary file that exists under its final name only once it is whole.

    Use as a context manager: write to it, then ``commit()``; leaving the block without a commit
    (an error, a kill) leaves nothing at the final name. ``needed_bytes`` is the caller's estimate
    of the space still needed, used only in the no-space message.
    """

    def __init__(self, path: Path, needed_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.needed_bytes = needed_bytes
        self.size = 0
        self.temp_path, self._handle = self._open_locked()

    def _open_locked(self) -> tuple[Path, BinaryIO]:
        while True:
            temp = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
            try:
                handle = open(temp, "xb")
            except OSError as error:
                raise WriteError(describe_os_error(error, temp)) from None
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            # A cleaner may have taken it for stale between create and lock: then start anew.
            if temp.exists() and os.stat(temp).st_ino == os.fstat(handle.fileno()).st_ino:
                return temp, handle
            handle.close()

    def write(self, data: bytes) -> int:
        try:
            written = self._handle.write(data)
        except OSError as error:
            self._fail(error)
        self.size += len(data)
        return written

    def tell(self) -> int:
        return self.size

    def commit(self) -> None:
        """Flush, fsync and rename to the final name, then fsync the folder."""
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            os.replace(self.temp_path, self.path)
            sync_directory(self.path.parent)
        except OSError as error:
            self._fail(error)
        self._handle.close()

    def discard(self) -> None:
        if not self._handle.closed:
            try:
                self._handle.close()
            except OSError:
                pass  # flushing what is being thrown away failed (a full disk): nothing is lost
        self.temp_path.unlink(missing_ok=True)

    def _fail(self, error: OSError) -> None:
        self.discard()
        needed = self.needed_bytes if self.needed_bytes is not None else self.size
        raise WriteError(describe_os_error(error, self.path, needed)) from None

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._handle.closed:
            self.discard()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all; several processes may write the same file."""
    with AtomicFile(path, needed_bytes=len(data)) as file:
        file.write(data)
        file.commit()


def canonical_json(obj: Any) -> bytes:
    """Sorted keys and a fixed indent, so writing the same object twice gives the same bytes."""
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, canonical_json(obj))


def sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporaries(folder: Path, name_prefix: str = "") -> list[Path]:
    """Temporary files of ``AtomicFile`` in ``folder`` whose final name starts with ``name_prefix``."""
    return sorted(folder.glob(f"{name_prefix}*{TEMP_SUFFIX}"))


def _lock_if_stale(path: Path) -> BinaryIO | None:
    """An open handle holding the lock of a temporary file whose writer is gone, else None."""
    try:
        handle = open(path, "rb")
    except OSError:
        return None  # removed meanwhile, or not ours to read
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None  # a live writer holds it
    return handle


def being_written(folder: Path, name: str) -> bool:
    """A live process is writing ``folder/name`` right now."""
    for temp in temporaries(folder, f"{name}."):
        handle = _lock_if_stale(temp)
        if handle is None:
            if temp.exists():
                return True
        else:
            handle.close()
    return False


def remove_stale_temporaries(folder: Path, name_prefix: str = "") -> list[Path]:
    """Delete the temporary files that killed writers left in ``folder``; live writers' stay."""
    removed = []
    for temp in temporaries(folder, name_prefix):
        handle = _lock_if_stale(temp)
        if handle is not None:
            with handle:
                temp.unlink(missing_ok=True)
            removed.append(temp)
    return removed


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def append_line(path: Path, line: str) -> None:
    """Append one line to a log (metrics.jsonl), with OS errors as one sentence."""
    try:
        with open(path, "a") as handle:
            handle.write(line + "\n")
    except OSError as error:
        raise WriteError(describe_os_error(error, path, len(line) + 1)) from None


def load_torch_file(path: Path, error: type[UserError]) -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU; a file that does not load (corrupt,
    foreign, or a pickle that would run code) raises ``error`` with one sentence."""
    import torch  # here, so that importing the helper floor stays cheap (torch takes 1.5 s)

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as problem:  # corrupt, foreign or unsafe files fail in the unpickler or zip reader
        raise error(f"Cannot read {path} ({type(problem).__name__}: "
                    f"{str(problem).strip().splitlines()[0]}).") from None


def read_head(path: Path, max_bytes: int, error: type[UserError]) -> bytes:
    """At most ``max_bytes + 1`` bytes of ``path`` (so a caller can tell a file larger than its bound
    without reading it whole); an OS error raises ``error`` with one sentence."""
    try:
        with open(path, "rb") as handle:
            return handle.read(max_bytes + 1)
    except OSError as problem:
        raise error(f"Cannot read {path} ({problem.strerror or problem}).") from None
