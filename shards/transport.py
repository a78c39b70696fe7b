"""What the transports of ``shards.storage`` (``shards.http_source``, ``shards.bucket_source``) share
with the stream that drives them: the schemes, a remote file as a source opened at any byte offset,
and the three ways a try ends other than with bytes."""

from __future__ import annotations

from typing import Protocol

HTTP_SCHEMES = ("http", "https")
BUCKET_SCHEMES = ("s3", "gs", "hf")
READ_SCHEMES = HTTP_SCHEMES + BUCKET_SCHEMES  # besides local folders


def scheme_of(location: str) -> str:
    """A URL's scheme in lower case, or "" for a folder."""
    scheme, separator, _ = location.partition("://")
    return scheme.lower() if separator else ""


class Fault(Exception):
    """A try that failed in a way worth trying again (timeout, reset, early end, 5xx)."""

    def __init__(self, what: str, answered: bool = True):
        super().__init__(what)
        self.what = what
        self.answered = answered  # False: no server answered (refused, unknown host, no answer in time)


class Refusal(Exception):
    """An answer that another try would not change (403, a redirect out of http(s), a bad range)."""


class EndOfData(Exception):
    """The file holds no byte at the offset asked for: it is shorter than expected."""


class Body(Protocol):
    def read(self, size: int) -> bytes: ...  # b"" at the end; raises Fault
    def close(self) -> None: ...


class Source(Protocol):
    """One remote file, opened at any byte offset."""

    piece: int  # bytes per read of a body
    read_ahead: int  # pieces the thread may hold ahead of the consumer

    def open(self, start: int) -> Body: ...  # raises Fault, Refusal, EndOfData, FileNotFoundError
