"""Opening a shard set and streaming its groups, two ways.

Whole groups (``ShardSet.shard_groups``, ``iter(shard_set)``; what verify, show and the evaluator
read): shard -> tar expansion -> grouping by key -> schema check, every member read and checked.

Chosen members (``ShardSet.chosen_views``; what the trainer reads): a tar walk that parses only
each header's name, size, type and checksum and reads only the members a reader uses (the views it
chose and the class); the others (unchosen views, latents, metadata) are seeked over unread. The
group's member names, its anchor order and the members it reads are checked as the whole-group
reader checks them. The trainer's first read of a shard reads every byte anyway (to hash it), so
that read checks every member as the whole-group reader does; the trainer remembers the verdict.

Only bytes leave the tar: images stay JPEG until a view is chosen, latents load from a checked
``.npy`` header, and nothing is ever unpickled. Both ways check each shard against its manifest row
as they stream (``shards.shard_check``, the check verify applies too: the whole-group reader always
with the sha256, as it reads every byte), open only regular files inside the set's folder, and
refuse a member, an image or an array whose header declares more than a limit allows
(``shards.limits``) before reading it.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from dataclasses import dataclass
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Iterator

from common.files import sha256_bytes
from shards.limits import MEMBER_BYTES
from shards.manifest import (check_location, is_remote, local_file, member_location, parse_manifest,
                             read_manifest_bytes)
from shards.schema import (MANIFEST_NAME, CorruptSampleError, DamagedShardError, Group, group_key,
                           latent_dim_of, oversized_image, parse_sample, split_member_name, view_problem)
from shards.shard_check import HashingStream, ShardCheck
from shards.storage import open_remote
from shards.transport import scheme_of
from shards.jpeg_header import jpeg_dimensions

if TYPE_CHECKING:
    import torch

ErrorHandler = Callable[[Exception], bool]
# What a damaged or missing tar raises while webdataset streams it (truncation, garbage, I/O).
TAR_ERRORS = (tarfile.TarError, EOFError, OSError, ValueError)


def gopen(source: str, size: int | None = None) -> IO[bytes]:
    """A URL's stream from shards.storage (timeouts, retries, resumed reads, at most ``size``
    bytes); else webdataset's opener for a file or an allowed pipe, imported on first use, as
    webdataset imports torch (1.5 s) and ``shards info`` reads no shard."""
    if scheme_of(source):
        return open_remote(source, size)
    from webdataset import gopen as open_source

    return open_source(source)


def reraise(error: Exception) -> bool:
    """The default error handler: no skipping, the error goes to the caller."""
    raise error


class UndecodableViewError(CorruptSampleError):
    """A view whose bytes start like a JPEG but do not decode."""


class BrokenGroupError(CorruptSampleError):
    """One group breaks the schema; the shard's other groups may be intact."""

    def __init__(self, message: str, anchor: int):
        super().__init__(message)
        self.anchor = anchor


def view_size(data: bytes, where: str = "The view") -> tuple[int, int]:
    """(height, width) of a JPEG view from its frame header, checked before anything decodes it:
    a header that does not parse (the decoder would search on for one, unchecked) raises
    UndecodableViewError, a size past the pixel limit CorruptSampleError, each starting with ``where``."""
    dimensions = jpeg_dimensions(data)
    if dimensions is None:
        raise UndecodableViewError(f"{where} is not a decodable JPEG (its frame header does not parse).")
    oversized = oversized_image(data)
    if oversized:
        raise CorruptSampleError(f"{where} {oversized}.")
    width, height = dimensions
    return height, width


def decode_view(data: bytes, where: str = "The view") -> torch.Tensor:
    """A JPEG view as uint8 [3, H, W] (grayscale JPEGs are expanded to RGB); raises
    UndecodableViewError, its message starting with ``where``, when the bytes do not decode."""
    import torch  # torch and torchvision take 2 s to import: only decoding pays for them
    from torchvision.io import ImageReadMode, decode_jpeg

    view_size(data, where)
    try:
        return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except RuntimeError as error:  # torchvision reports every kind of corrupt JPEG data this way
        raise UndecodableViewError(f"{where} is not a decodable JPEG ({error_summary(error)}).") from None


@dataclass
class ChosenViews:
    """The members of one group a reader asked for: some of its views, still JPEG, and its class."""

    anchor: int
    chosen: list[int]  # the view indices as the reader chose them (order kept, repeats included)
    views: dict[int, bytes]  # each chosen view once
    label: int | None
    source: str  # the shard it came from, for error messages


def view_name(group: Group | ChosenViews, view: int) -> str:
    """A view of a group as errors name it: by shard, sample and view."""
    return f"shard {group.source}: sample {group_key(group.anchor)} view {view}"


def decode_group_view(group: Group | ChosenViews, view: int) -> torch.Tensor:
    """View ``view`` of a group, decoded; an undecodable one is named by shard, sample and view."""
    return decode_view(group.views[view], view_name(group, view))


def error_summary(error: BaseException) -> str:
    """An error's own message: its first line, without the stream that webdataset appends
    (" @ <stream>") or the source position that torchvision puts first ("function, file:line, ")."""
    if isinstance(error, OSError) and error.strerror:  # its args are (errno, strerror, ...)
        return error.strerror
    text = str(error.args[0]) if error.args else ""
    text = re.sub(r"^\w+, \S+:\d+, ", "", text.splitlines()[0] if text else "").split(" @ ")[0]
    return text or type(error).__name__


@dataclass
class ShardSet:
    """A finished shard set: its manifest and where its shards live."""

    location: str
    manifest: dict[str, Any]
    manifest_sha256: str

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def groups(self) -> int:
        return int(self.manifest["groups"])

    @property
    def views(self) -> int:
        return int(self.manifest["views"])

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def num_classes(self) -> int:
        return len(self.manifest["classes"])

    @property
    def image_size(self) -> int:
        return int(self.manifest["image"]["size"])

    @cached_property
    def latent_dim(self) -> int | None:
        return latent_dim_of(self.manifest)

    @property
    def shard_rows(self) -> list[dict[str, Any]]:
        return list(self.manifest["shards"])

    @property
    def urls(self) -> list[str]:
        return [member_location(self.location, row["name"]) for row in self.shard_rows]

    def parse(self, sample: dict[str, Any], strict_views: bool = False) -> Group:
        return parse_sample(sample, self.views, self.latent_dim, self.num_classes, strict_views)

    def shard_source(self, index: int) -> str:
        """Where shard ``index`` is read from: its URL, or the absolute path of a regular file inside
        the set's folder (absolute, so that gopen never takes a colon in a folder's name for a URL
        scheme). Raises DamagedShardError for any other file, FileNotFoundError when it is absent."""
        name = self.shard_rows[index]["name"]
        if is_remote(self.location):
            return member_location(self.location, name)
        return os.path.abspath(local_file(self.location, name))

    def open_shard(self, index: int) -> IO[bytes]:
        """Shard ``index``'s bytes, to be read front to back (see ``shard_source``)."""
        source = self.shard_source(index)
        return gopen(source, self.shard_rows[index]["bytes"]) if is_remote(self.location) else open(source, "rb")

    @cached_property
    def member_names(self) -> frozenset[str]:
        """What follows the key in the names of every group's members (``0.jpg``, ``cls``, ...)."""
        names = {f"{view}.jpg" for view in range(self.views)} | {"json"}
        if self.latent_dim is not None:
            names.add("latents.npy")
        if self.num_classes:
            names.add("cls")
        return frozenset(names)

    def chosen_views(self, index: int, choose: Callable[[int], Iterable[int]],
                     handler: ErrorHandler = reraise,
                     check_sha256: bool = False) -> Iterator[ChosenViews]:
        """The groups of shard ``index`` in anchor order, each with only the views
        ``choose(anchor)`` names and its class; its other members are skipped unread (unless
        ``check_sha256``: then every byte is read and hashed, every member checked as the
        whole-group reader and verify check it (latents, metadata, every view's JPEG start and
        declared size), and the sha256 checked at the end).

        Checked: the tar's headers; that the shard holds the anchors its row lists, in order, and
        has the row's size (and sha256); that each group has exactly the members the manifest
        implies; that its chosen views are JPEGs within the pixel limit and its class an index. A
        broken group goes to ``handler`` as a BrokenGroupError (True: skip it and go on); a damaged
        shard, as a DamagedShardError (True: skip the rest of it); otherwise the error, naming the
        shard (and the sample), is raised."""
        url = self.urls[index]
        items = self._read_chosen(index, choose, check_sha256)
        try:
            while True:
                try:
                    item = next(items, None)
                except DamagedShardError as error:
                    problem = error
                    break
                except (TarFormatError, *TAR_ERRORS) as error:
                    problem = DamagedShardError(f"shard {url} could not be read ({error_summary(error)}).")
                    break
                if item is None:
                    return
                if isinstance(item, CorruptSampleError):
                    if handler(item):
                        continue
                    return
                yield item
        finally:
            items.close()  # closes the shard's stream too
        handler(problem)  # whatever it answers, the rest of this shard cannot be trusted

    def _read_chosen(self, index: int, choose: Callable[[int], Iterable[int]],
                     check_sha256: bool) -> Iterator[ChosenViews | BrokenGroupError]:
        """ChosenViews, or the BrokenGroupError of a broken group, in order; raises
        DamagedShardError when the shard is not what its row says, TarFormatError or OSError when
        the tar does not read."""
        url = self.urls[index]
        check = ShardCheck(self.shard_rows[index], f"shard {url}")
        class_member = {"cls"} if self.num_classes else set()  # read beside the chosen views
        group: _GroupMembers | None = None
        stream = self.open_shard(index)
        hashing = HashingStream(stream, url) if check_sha256 else None
        with TarReader(hashing or stream) as tar:
            for name in tar:
                key, suffix = split_member_name(name, url)
                if group is None or key != group.key:
                    if group is not None:
                        yield group.finish(self)
                    anchor = check.next_anchor(key, f"sample {key}")
                    chosen = list(choose(anchor))
                    wanted = None if check_sha256 else {f"{view}.jpg" for view in chosen} | class_member
                    group = _GroupMembers(key, anchor, chosen, wanted, url)
                group.add(suffix, tar)
            if group is not None:
                yield group.finish(self)
            check.check_end()
            if hashing is not None:
                hashing.drain(self.shard_rows[index]["bytes"])
                check.check_bytes(hashing.size, hashing.sha256.hexdigest())
            else:
                check.check_bytes(tar.end, None)

    def shard_groups(self, index: int) -> Iterator[Group]:
        """The groups of shard ``index``, in this process alone; raises CorruptSampleError with one
        sentence when a group breaks the schema, DamagedShardError when the shard cannot be read or
        is not what its row says (anchors, size)."""
        url = self.urls[index]
        hint = f"; python -m shards verify {self.location} names every damaged shard"
        check = ShardCheck(self.shard_rows[index], f"shard {url}", hint)
        try:
            hashing = HashingStream(self.open_shard(index), url)  # every byte is read: hash them too
            with TarReader(hashing) as tar:
                for sample in tar_samples(tar, url):
                    group = self.parse(sample)
                    check.next_anchor(group_key(group.anchor), f"anchor {group.anchor}")
                    yield group
                check.check_end()
                hashing.drain(self.shard_rows[index]["bytes"])
                check.check_bytes(hashing.size, hashing.sha256.hexdigest())
        except (TarFormatError, *TAR_ERRORS) as error:
            raise DamagedShardError(f"shard {url} could not be read ({error_summary(error)}){hint}.") from None

    def __iter__(self) -> Iterator[Group]:
        """Every group in anchor order, in this process alone (no node or worker split); raises
        CorruptSampleError with one sentence at the first shard that is damaged."""
        for index in range(len(self.shard_rows)):
            yield from self.shard_groups(index)


class _GroupMembers:
    """One group's members as the tar walk meets them: every name, the data of the wanted ones
    (``wanted`` None: of every member)."""

    __slots__ = ("key", "anchor", "chosen", "wanted", "source", "present", "data", "twice")

    def __init__(self, key: str, anchor: int, chosen: list[int], wanted: set[str] | None, source: str):
        self.key, self.anchor, self.chosen, self.wanted, self.source = key, anchor, chosen, wanted, source
        self.present: set[str] = set()
        self.data: dict[str, bytes] = {}
        self.twice: str | None = None

    def add(self, suffix: str, tar: TarReader) -> None:
        if suffix in self.present:
            self.twice = suffix
        self.present.add(suffix)
        if self.wanted is None or suffix in self.wanted:
            self.data[suffix] = tar.read()

    def finish(self, shard_set: ShardSet) -> ChosenViews | BrokenGroupError:
        """The group, or why it is broken (the messages of ``parse_sample``)."""
        def fail(problem: str) -> BrokenGroupError:
            return BrokenGroupError(f"shard {self.source}: sample {self.key} {problem}", self.anchor)

        if self.twice is not None:
            return fail(f"has member {self.twice} twice")
        if self.wanted is None:
            return self._checked_whole(shard_set)
        expected, num_classes = shard_set.member_names, shard_set.num_classes
        if self.present != expected:
            missing, extra = sorted(expected - self.present), sorted(self.present - expected)
            return fail(f"has members {sorted(self.present)}; expected {sorted(expected)}"
                        + (f" (missing {missing})" if missing else "")
                        + (f" (unexpected {extra})" if extra else ""))
        views = {view: self.data[f"{view}.jpg"] for view in self.chosen}
        for view, image in views.items():
            problem = view_problem(view, image)
            if problem is not None:
                return fail(problem)
        label = None
        if num_classes:
            text = self.data["cls"].decode("ascii", "replace").strip()
            if not text.isdigit() or int(text) >= num_classes:
                return fail(f"has class {text!r}, not an index below {num_classes}")
            label = int(text)
        return ChosenViews(self.anchor, self.chosen, views, label, self.source)

    def _checked_whole(self, shard_set: ShardSet) -> ChosenViews | BrokenGroupError:
        """Every member checked as the whole-group reader checks it (``parse_sample``), then the
        chosen views. A view whose frame header does not parse is left to the decoder, as there: an
        unchosen one is never decoded, so it does not stop training (verify reports it)."""
        try:
            group = shard_set.parse({**self.data, "__key__": self.key, "__url__": self.source})
        except CorruptSampleError as error:
            return BrokenGroupError(str(error), self.anchor)
        views = {view: group.views[view] for view in self.chosen}
        return ChosenViews(self.anchor, self.chosen, views, group.label, self.source)


class TarFormatError(ValueError):
    """A tar stream that does not parse; the message says what is wrong."""


TAR_BLOCK = 512
_END_OF_ARCHIVE = bytes(TAR_BLOCK)
_FILE_TYPES = (b"0", b"\0", b"7")  # regular and contiguous files


class TarReader:
    """The regular members of a tar stream, one by one: ``for name in tar: data = tar.read()``.

    Of a header it parses only the name (with a ustar prefix, a GNU long name or a pax path), the
    size, the type and the checksum, in a few slices; a member whose data is not read is skipped
    (seeked over when the stream can seek, never copied into a bytes object). Other member types
    (directories, links, pax globals) are passed over. Raises TarFormatError on a bad checksum,
    a malformed size, data that ends early, or a member larger than MEMBER_BYTES (checked from
    its header, before anything of it is read).
    """

    def __init__(self, stream: IO[bytes]):
        self.stream = stream
        self.position = 0  # the offset in the stream of what is read next
        self.end = _stream_size(stream)  # None where the stream cannot tell (a pipe)
        self._size = 0  # the current member's data size
        self._unread = 0  # bytes of its data and padding not read yet

    def __enter__(self) -> TarReader:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stream.close()

    def __iter__(self) -> Iterator[str]:
        next_name: str | None = None
        next_size: int | None = None
        while True:
            self._skip(self._unread)
            header = self._read_exact(TAR_BLOCK, allow_end=True)
            if not header and self.position == 0:
                raise TarFormatError("empty file")
            if not header or header == _END_OF_ARCHIVE:
                return
            at = self.position - TAR_BLOCK
            self._check_checksum(header, at)
            kind = header[156:157]
            size = _checked_size(_header_number(header[124:136], "size", at), at)
            self._size, self._unread = size, size + (-size % TAR_BLOCK)
            if kind == b"L":  # GNU long name: the next member's name is this member's data
                next_name = self.read().split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif kind == b"x":  # pax extended header: path and size of the next member
                records = _pax_records(self.read())
                next_name = records.get("path", next_name)
                next_size = _checked_size(_pax_size(records["size"]), at) if "size" in records else next_size
            elif kind in _FILE_TYPES:
                if next_size is not None:
                    self._size, self._unread = next_size, next_size + (-next_size % TAR_BLOCK)
                name = next_name if next_name is not None else _header_name(header)
                next_name = next_size = None
                yield name
            else:
                next_name = next_size = None

    def read(self) -> bytes:
        """The current member's data (once)."""
        data = self._read_exact(self._size)
        self._unread -= self._size
        self._size = 0
        return data

    def _read_exact(self, size: int, allow_end: bool = False) -> bytes:
        data = self.stream.read(size) if size else b""
        if len(data) != size and not (allow_end and not data):
            raise TarFormatError("unexpected end of data")
        self.position += len(data)
        return data

    def _skip(self, size: int) -> None:
        if not size:
            return
        if self.end is not None:
            if self.position + size > self.end:
                raise TarFormatError("unexpected end of data")
            self.stream.seek(size, io.SEEK_CUR)
            self.position += size
        else:
            while size:
                size -= len(self._read_exact(min(size, 1 << 20)))
        self._unread = 0

    @staticmethod
    def _check_checksum(header: bytes, at: int) -> None:
        stored = _header_number(header[148:156], "checksum", at)
        unsigned = 256 + sum(header) - sum(header[148:156])  # the field counts as 8 spaces
        if stored != unsigned and stored != 256 + sum(_signed(header[:148])) + sum(_signed(header[156:])):
            raise TarFormatError(f"bad checksum in the header at byte {at}")


def _signed(data: bytes) -> list[int]:
    return [byte - 256 if byte > 127 else byte for byte in data]


def _stream_size(stream: IO[bytes]) -> int | None:
    try:
        if stream.seekable() and stream.tell() == 0:
            return os.fstat(stream.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        pass
    return None


def _header_number(field: bytes, what: str, at: int) -> int:
    if field[0] & 0x80:  # GNU base-256, for sizes past 8 GiB
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise TarFormatError(f"malformed {what} in the header at byte {at}") from None


def _checked_size(size: int, at: int) -> int:
    beyond = MEMBER_BYTES.exceeded_by(size)
    if beyond:
        raise TarFormatError(f"the member at byte {at} declares {size} bytes, {beyond}")
    return size


def _pax_size(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise TarFormatError("malformed size in a pax header") from None


def tar_samples(tar: TarReader, source: str) -> Iterator[dict[str, Any]]:
    """The tar's members grouped into samples as webdataset groups them: consecutive members
    whose names share the part before the first dot (the key); each sample is
    ``{"__key__": key, "__url__": source, suffix: data, ...}``. A suffix met twice in one group
    raises CorruptSampleError."""
    sample: dict[str, Any] | None = None
    for name in tar:
        key, suffix = split_member_name(name, source)
        if sample is None or key != sample["__key__"]:
            if sample is not None:
                yield sample
            sample = {"__key__": key, "__url__": source}
        if suffix in sample:
            raise CorruptSampleError(f"shard {source}: sample {key} has member {suffix} twice")
        sample[suffix] = tar.read()
    if sample is not None:
        yield sample


def _header_name(header: bytes) -> str:
    name = header[:100].split(b"\0", 1)[0]
    if header[257:263] == b"ustar\0" and header[345]:  # POSIX ustar: a prefix holds the name's start
        name = header[345:500].split(b"\0", 1)[0] + b"/" + name
    return name.decode("utf-8", "surrogateescape")


def _pax_records(data: bytes) -> dict[str, str]:
    """``LENGTH KEY=VALUE\\n`` records."""
    records, at = {}, 0
    while at < len(data) and data[at:at + 1] not in (b"\0", b""):
        length_text, _, rest = data[at:].partition(b" ")
        try:
            length = int(length_text)
        except ValueError:
            raise TarFormatError("malformed pax header") from None
        key, _, value = rest[:length - len(length_text) - 2].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        at += length
    return records


def open_set(location: str, allow_pipe: bool = False) -> ShardSet:
    """Open a finished shard set by folder or http(s) URL prefix (a ``pipe:`` command only when
    ``allow_pipe``); raises ShardSetError with one clear sentence."""
    location = str(location)
    check_location(location, allow_pipe)
    data = read_manifest_bytes(location)
    manifest = parse_manifest(data, member_location(location, MANIFEST_NAME))
    return ShardSet(location=location, manifest=manifest, manifest_sha256=sha256_bytes(data))
