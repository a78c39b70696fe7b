"""Opening a shard set and streaming its groups, two ways.

Whole groups (``ShardSet.shard_groups``, ``iter(shard_set)``; what verify, show and the evaluator
read): a webdataset pipeline built from its parts, shard list -> tar expansion -> grouping by key
-> schema check, every member read and checked.

Chosen members (``ShardSet.chosen_views``; what the trainer reads): a tar walk that parses only
each header's name, size, type and checksum and reads only the members a reader uses (the views it
chose and the class); the others (unchosen views, latents, metadata) are seeked over unread. The
group's member names, its anchor order and the members it reads are checked as the whole-group
reader checks them.

Only bytes leave the tar: images stay JPEG until a view is chosen, latents load with
``allow_pickle=False``, and nothing is ever unpickled.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from dataclasses import dataclass
from functools import cached_property
from typing import IO, Any, Callable, Iterable, Iterator

import torch
import webdataset as wds
from webdataset import gopen

from common.files import sha256_bytes
from shards.manifest import member_location, parse_manifest, read_manifest_bytes
from shards.schema import (MANIFEST_NAME, CorruptSampleError, Group, group_key, latent_dim_of,
                           parse_sample)

ErrorHandler = Callable[[Exception], bool]
# What a damaged or missing tar raises while webdataset streams it (truncation, garbage, I/O).
TAR_ERRORS = (tarfile.TarError, EOFError, OSError, ValueError)


class UndecodableViewError(CorruptSampleError):
    """A view whose bytes start like a JPEG but do not decode."""


def decode_view(data: bytes, where: str = "The view") -> torch.Tensor:
    """A JPEG view as uint8 [3, H, W] (grayscale JPEGs are expanded to RGB); raises
    UndecodableViewError, its message starting with ``where``, when the bytes do not decode."""
    from torchvision.io import ImageReadMode, decode_jpeg  # 2 s to import; writers never decode

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


def decode_group_view(group: Group | ChosenViews, view: int) -> torch.Tensor:
    """View ``view`` of a group, decoded; an undecodable one is named by shard, sample and view."""
    return decode_view(group.views[view], f"shard {group.source}: sample {group_key(group.anchor)} view {view}")


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

    def parse(self, sample: dict[str, Any]) -> Group:
        return parse_sample(sample, self.views, self.latent_dim, self.num_classes)

    def pipeline(self, urls: list[str], handler: ErrorHandler = wds.reraise_exception) -> wds.DataPipeline:
        """The groups of the given shards, in this process (callers split shards over ranks and
        workers themselves, by shard index), as an iterable of checked ``Group``. ``handler``
        decides about a broken tar or sample: ``wds.reraise_exception`` stops, a handler returning
        True skips it."""
        return wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples(handler=handler),
                                wds.map(self.parse, handler=handler))

    def member_names(self) -> frozenset[str]:
        """What follows the key in the names of every group's members (``0.jpg``, ``cls``, ...)."""
        names = {f"{view}.jpg" for view in range(self.views)} | {"json"}
        if self.latent_dim is not None:
            names.add("latents.npy")
        if self.num_classes:
            names.add("cls")
        return frozenset(names)

    def chosen_views(self, index: int, choose: Callable[[int], Iterable[int]],
                     handler: ErrorHandler = wds.reraise_exception) -> Iterator[ChosenViews]:
        """The groups of shard ``index`` in anchor order, each with only the views
        ``choose(anchor)`` names and its class; its other members are skipped unread.

        Checked: the tar's headers; that the shard holds the anchors its row lists, in order; that
        each group has exactly the members the manifest implies; that its chosen views are JPEGs
        and its class an index. A broken group goes to ``handler`` (True: skip it and go on); a
        shard that cannot be read or holds other anchors too (True: skip the rest of it);
        otherwise CorruptSampleError naming the shard (and the sample) is raised."""
        url = self.urls[index]
        items = self._read_chosen(url, self.shard_rows[index], choose)
        try:
            while True:
                try:
                    item = next(items, None)
                except CorruptSampleError as error:  # the shard holds other anchors than its row lists
                    problem = error
                    break
                except (TarFormatError, *TAR_ERRORS) as error:
                    problem = CorruptSampleError(f"shard {url} could not be read ({error_summary(error)}).")
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

    def _read_chosen(self, url: str, row: dict[str, Any],
                     choose: Callable[[int], Iterable[int]]) -> Iterator[ChosenViews | CorruptSampleError]:
        """ChosenViews, or the CorruptSampleError of a broken group, in order; raises
        CorruptSampleError when the anchors differ from the row's, TarFormatError or OSError when
        the tar does not read."""
        expected = self.member_names()
        labelled = self.num_classes > 0
        anchors = iter(range(row["first_anchor"], row["last_anchor"] + 1))
        group: _GroupMembers | None = None
        with TarReader(gopen(url)) as tar:
            for name in tar:
                key, _, suffix = name.partition(".")
                if group is None or key != group.key:
                    if group is not None:
                        yield group.finish(expected, self.num_classes)
                    anchor = next(anchors, None)
                    if anchor is None or key != group_key(anchor):
                        place = f"anchor {anchor}" if anchor is not None else "the end of the shard"
                        raise CorruptSampleError(f"shard {url} holds sample {key} where the manifest "
                                                 f"puts {place}.")
                    chosen = list(choose(anchor))
                    wanted = {f"{view}.jpg" for view in chosen} | ({"cls"} if labelled else set())
                    group = _GroupMembers(key, anchor, chosen, wanted, url)
                group.add(suffix, tar)
        if group is not None:
            yield group.finish(expected, self.num_classes)
        missing = next(anchors, None)
        if missing is not None:  # a tar cut at a member boundary reads as a shorter, intact one
            raise CorruptSampleError(f"shard {url} ends before anchor {missing}, which the manifest puts in it.")

    def shard_groups(self, index: int) -> Iterator[Group]:
        """The groups of shard ``index``, in this process alone; raises CorruptSampleError with one
        sentence when the shard cannot be read or does not hold the anchors its row lists."""
        row, url = self.shard_rows[index], self.urls[index]
        hint = f"python -m shards verify {self.location} names every damaged shard"
        expected = iter(range(row["first_anchor"], row["last_anchor"] + 1))
        try:
            for group in self.pipeline([url]):
                anchor = next(expected, None)
                if group.anchor != anchor:
                    place = f"anchor {anchor}" if anchor is not None else "the end of the shard"
                    raise CorruptSampleError(f"shard {url} holds anchor {group.anchor} where the manifest "
                                             f"puts {place}; {hint}.")
                yield group
        except TAR_ERRORS as error:
            raise CorruptSampleError(f"shard {url} could not be read ({error_summary(error)}); {hint}.") from None
        missing = next(expected, None)
        if missing is not None:  # a tar cut at a member boundary reads as a shorter, intact one
            raise CorruptSampleError(f"shard {url} ends before anchor {missing}, which the manifest puts "
                                     f"in it; {hint}.")

    def __iter__(self) -> Iterator[Group]:
        """Every group in anchor order, in this process alone (no node or worker split); raises
        CorruptSampleError with one sentence at the first shard that is damaged."""
        for index in range(len(self.shard_rows)):
            yield from self.shard_groups(index)


class _GroupMembers:
    """One group's members as the tar walk meets them: every name, the data of the wanted ones."""

    __slots__ = ("key", "anchor", "chosen", "wanted", "source", "present", "data", "twice")

    def __init__(self, key: str, anchor: int, chosen: list[int], wanted: set[str], source: str):
        self.key, self.anchor, self.chosen, self.wanted, self.source = key, anchor, chosen, wanted, source
        self.present: set[str] = set()
        self.data: dict[str, bytes] = {}
        self.twice: str | None = None

    def add(self, suffix: str, tar: TarReader) -> None:
        if suffix in self.present:
            self.twice = suffix
        self.present.add(suffix)
        if suffix in self.wanted:
            self.data[suffix] = tar.read()

    def finish(self, expected: frozenset[str], num_classes: int) -> ChosenViews | CorruptSampleError:
        """The group, or why it is broken (the messages of ``parse_sample``)."""
        def fail(problem: str) -> CorruptSampleError:
            return CorruptSampleError(f"shard {self.source}: sample {self.key} {problem}")

        if self.twice is not None:
            return fail(f"has member {self.twice} twice")
        if self.present != expected:
            missing, extra = sorted(expected - self.present), sorted(self.present - expected)
            return fail(f"has members {sorted(self.present)}; expected {sorted(expected)}"
                        + (f" (missing {missing})" if missing else "")
                        + (f" (unexpected {extra})" if extra else ""))
        views = {view: self.data[f"{view}.jpg"] for view in self.chosen}
        if not all(image[:2] == b"\xff\xd8" for image in views.values()):
            return fail("has a view that is not a JPEG")
        label = None
        if num_classes:
            text = self.data["cls"].decode("ascii", "replace").strip()
            if not text.isdigit() or int(text) >= num_classes:
                return fail(f"has class {text!r}, not an index below {num_classes}")
            label = int(text)
        return ChosenViews(self.anchor, self.chosen, views, label, self.source)


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
    a malformed size or data that ends early.
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
            header = self._read_exact(TAR_BLOCK, "a header", allow_end=True)
            if not header and self.position == 0:
                raise TarFormatError("empty file")
            if not header or header == _END_OF_ARCHIVE:
                return
            at = self.position - TAR_BLOCK
            self._check_checksum(header, at)
            kind = header[156:157]
            size = _header_number(header[124:136], "size", at)
            self._size, self._unread = size, size + (-size % TAR_BLOCK)
            if kind == b"L":  # GNU long name: the next member's name is this member's data
                next_name = self.read().split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif kind == b"x":  # pax extended header: path and size of the next member
                records = _pax_records(self.read())
                next_name = records.get("path", next_name)
                next_size = int(records["size"]) if "size" in records else next_size
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
        data = self._read_exact(self._size, "a member's data")
        self._unread -= self._size
        self._size = 0
        return data

    def _read_exact(self, size: int, what: str, allow_end: bool = False) -> bytes:
        data = self.stream.read(size) if size else b""
        if len(data) != size and not (allow_end and not data):
            raise TarFormatError(f"unexpected end of data in {what} at byte {self.position}")
        self.position += len(data)
        return data

    def _skip(self, size: int) -> None:
        if not size:
            return
        if self.end is not None:
            if self.position + size > self.end:
                raise TarFormatError(f"unexpected end of data in a member at byte {self.position}")
            self.stream.seek(size, io.SEEK_CUR)
            self.position += size
        else:
            while size:
                size -= len(self._read_exact(min(size, 1 << 20), "a member's data"))
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


def open_set(location: str) -> ShardSet:
    """Open a finished shard set by folder or URL prefix; raises ShardSetError with one clear sentence."""
    location = str(location)
    data = read_manifest_bytes(location)
    manifest = parse_manifest(data, member_location(location, MANIFEST_NAME))
    return ShardSet(location=location, manifest=manifest, manifest_sha256=sha256_bytes(data))
