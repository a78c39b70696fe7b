"""Opening a shard set and streaming its groups: a webdataset pipeline built from its parts.

shard list -> (deterministic shard shuffle) -> node split -> worker split -> tar expansion ->
grouping by key -> schema check. Only bytes leave the tar: images stay JPEG until a view is chosen,
latents load with ``allow_pickle=False``, and nothing is ever unpickled.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Iterator

import torch
import webdataset as wds

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


def decode_group_view(group: Group, view: int) -> torch.Tensor:
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


def open_set(location: str) -> ShardSet:
    """Open a finished shard set by folder or URL prefix; raises ShardSetError with one clear sentence."""
    location = str(location)
    data = read_manifest_bytes(location)
    manifest = parse_manifest(data, member_location(location, MANIFEST_NAME))
    return ShardSet(location=location, manifest=manifest, manifest_sha256=sha256_bytes(data))
