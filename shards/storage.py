"""Where sets live: every byte read from a set on a server or in a bucket comes through here.

A file of a remote set is read forward as one stream (``open_remote``) that applies the failure
rules a network needs, the same for every scheme:

- no byte for GENVIEWS_NET_TIMEOUT seconds (default 60) is a fault, as are a refused or reset
  connection, a body that ends early and a 429 or 5xx answer;
- a fault is tried again, up to GENVIEWS_NET_TRIES tries in a row (default 4) with a doubling
  pause, and each try resumes at the byte reached (an HTTP Range request, a ranged read of the
  object) instead of starting over; a try that brings bytes starts the count again;
- a read is bounded: a shard at its manifest row's size (a longer body is refused at the byte after
  it), a manifest at the member limit;
- what still fails is one sentence naming the URL, what happened and how often it was tried.

A thread reads ahead of the consumer (a few MiB), so the network's waits overlap the reader's work.
The transports: http(s) on the standard library's client (``shards.http_source``; it follows
redirects only to http(s)), s3, gs and hf through fsspec (``shards.bucket_source``).
"""

from __future__ import annotations

import io
import queue
import threading
from typing import IO

from shards.bucket_source import BucketSource
from shards.http_source import HttpSource
from shards.limits import Limit
from shards.schema import DamagedShardError
from shards.transport import HTTP_SCHEMES, EndOfData, Fault, Refusal, Source, scheme_of

NET_TIMEOUT = Limit("GENVIEWS_NET_TIMEOUT", 60, "seconds without a byte")
NET_TRIES = Limit("GENVIEWS_NET_TRIES", 4, "tries in a row")
FIRST_PAUSE = 0.5  # seconds before the second try; it doubles, up to the timeout
# A try that moved on resets the tries in a row, so a server that sends a little and stalls every time
# would be tried without end: a file may fail this many tries more than a row's, one per this many bytes.
BYTES_PER_EXTRA_TRY = 64 << 20
CONSUMER_BUFFER = 1 << 16


class RemoteReadError(DamagedShardError):
    """A remote file could not be read whole; the message names the URL, what happened and the tries.
    A DamagedShardError, so that every reader treats the shard as it treats a damaged one."""


class NetworkReadError(RemoteReadError):
    """The tries ran out on faults of the network or the server (no data in time, a reset, a 5xx):
    unlike a file found shorter, longer or refused, a later read may bring it whole."""


def pause_after(failed: int, timeout: float) -> float:
    """Seconds to wait before the next try, after ``failed`` tries in a row failed."""
    return min(FIRST_PAUSE * 2 ** (failed - 1), timeout)


def tries(count: int) -> str:
    return f"{count} {'try' if count == 1 else 'tries'}"


def source_for(url: str, timeout: float) -> Source:
    """The transport of ``url``'s scheme (one of READ_SCHEMES)."""
    return HttpSource(url, timeout) if scheme_of(url) in HTTP_SCHEMES else BucketSource(url, timeout)


def open_remote(url: str, size: int | None = None, limit: int | None = None) -> IO[bytes]:
    """``url``'s bytes, read forward with the rules above. ``size``: the file must be exactly that
    long (a shard); ``limit``: at most limit + 1 bytes come back, so that a caller sees a longer
    file is one (a manifest). Raises FileNotFoundError when the file is absent, RemoteReadError when
    it cannot be read; either comes before this returns when the first try shows it."""
    timeout, most_tries = NET_TIMEOUT.value, NET_TRIES.value  # read here: a bad setting is the caller's error
    stream = RemoteStream(source_for(url, timeout), url, size, limit, timeout, most_tries)
    try:
        stream.wait_for_start()
    except BaseException:
        stream.close()
        raise
    return io.BufferedReader(stream, CONSUMER_BUFFER)


class RemoteStream(io.RawIOBase):
    """The consumer's side of a reading thread: pieces in order, then the end or the error."""

    def __init__(self, source: Source, url: str, size: int | None, limit: int | None, timeout: float,
                 most_tries: int):
        super().__init__()
        self.source, self.url, self.size, self.limit = source, url, size, limit
        self.timeout, self.most_tries = timeout, most_tries
        self._pieces: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=source.read_ahead)
        self._stop = threading.Event()
        self._piece = memoryview(b"")
        self._error: BaseException | None = None
        self._ended = False
        threading.Thread(target=self._produce, name=f"read {url}", daemon=True).start()

    def readable(self) -> bool:
        return True

    def wait_for_start(self) -> None:
        """Block until the first piece, the end or an error is there (an error raises)."""
        if not self._piece:
            self._next_piece()

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._piece:
            self._next_piece()
        count = min(len(buffer), len(self._piece))
        buffer[:count] = self._piece[:count]
        self._piece = self._piece[count:]
        return count

    def _next_piece(self) -> None:
        if self._error is not None:
            raise self._error  # once failed, every later read fails the same way
        if self._ended:
            return
        item = self._pieces.get()
        if isinstance(item, BaseException):
            self._error = item
            raise item
        if item is None:
            self._ended = True
        else:
            self._piece = memoryview(item)

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            while not self._pieces.empty():  # unblock a thread waiting to hand over a piece
                self._pieces.get_nowait()
        super().close()

    def _put(self, item: bytes | BaseException | None) -> bool:
        """Hand ``item`` to the consumer; False once the consumer closed the stream."""
        while not self._stop.is_set():
            try:
                self._pieces.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            self._put(self._read_all())
        except BaseException as error:  # every way out reaches the consumer, which would wait for ever
            self._put(error if isinstance(error, (RemoteReadError, FileNotFoundError))
                      else RemoteReadError(f"{self.url} could not be read ({type(error).__name__}: {error})."))

    def _read_all(self) -> None:
        """Read from byte 0 to the end, trying again where a try fails; pieces go to the consumer.
        Returns None (the end) or raises what the consumer gets instead."""
        offset, failed, answered, faults = 0, 0, False, 0
        most_faults = self.most_tries + (self.size or 0) // BYTES_PER_EXTRA_TRY
        while not self._stop.is_set():
            try:
                body = self.source.open(offset)
                answered = True
                try:
                    while piece := body.read(self.source.piece):
                        piece = self._bounded(offset, piece)
                        offset += len(piece)
                        failed = 0
                        if not self._put(piece) or (self.limit is not None and offset > self.limit):
                            return None
                finally:
                    body.close()
                if self.size is not None and offset < self.size:
                    raise Fault(f"the body ended at byte {offset} of {self.size}")
                return None
            except Fault as fault:
                failed, faults = failed + 1, faults + 1
                answered = answered or fault.answered
                if failed >= self.most_tries:
                    verb = "read" if answered else "reached"
                    raise NetworkReadError(f"{self.url} could not be {verb}: {fault.what} ({tries(failed)}).") from None
                if faults >= most_faults:
                    raise NetworkReadError(f"{self.url} could not be read: {fault.what} ({tries(faults)}, each "
                                          f"resumed at the byte the last one reached, {offset} bytes in all).") from None
                self._stop.wait(pause_after(failed, self.timeout))
            except Refusal as refusal:
                raise RemoteReadError(f"{self.url} could not be read: {refusal}.") from None
            except EndOfData:
                if self.size is None:  # a file of unknown size ends where it ends
                    return None
                raise RemoteReadError(f"{self.url} ends at byte {offset}, before the {self.size} bytes its "
                                      "manifest row gives (truncated or replaced).") from None
            except FileNotFoundError:
                if offset == 0:
                    raise
                raise RemoteReadError(f"{self.url} disappeared after {offset} bytes were read.") from None
        return None

    def _bounded(self, offset: int, piece: bytes) -> bytes:
        """``piece`` as far as the file may go: past ``size`` is refused, past ``limit`` + 1 cut."""
        end = offset + len(piece)
        if self.size is not None and end > self.size:
            raise RemoteReadError(f"{self.url} is longer than the {self.size} bytes its manifest row gives; "
                                  f"it was refused at byte {self.size + 1}.")
        if self.limit is not None and end > self.limit + 1:
            return piece[:self.limit + 1 - offset]
        return piece
