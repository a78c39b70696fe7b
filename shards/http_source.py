"""A file on an http(s) server as a ``shards.storage`` source: one GET per try, from a byte offset.

The standard library's client, so that every case is ours to decide: the socket timeout is the
read timeout (no byte for that long), a try at an offset asks for ``Range: bytes=OFFSET-`` (a
server that ignores it answers 200, and the bytes before the offset are read and dropped), the body
is read as it arrives, and a redirect is followed only to another http(s) URL.
"""

from __future__ import annotations

import errno
import functools
import http.client
import socket
import ssl
from urllib.parse import urljoin, urlsplit

from shards.transport import HTTP_SCHEMES, EndOfData, Fault, Refusal

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
GONE = (404, 410)
SKIP_PIECE = 1 << 20
USER_AGENT = "genviews"


class HttpSource:
    piece = 1 << 20
    read_ahead = 8

    def __init__(self, url: str, timeout: float):
        self.url = url
        self.timeout = timeout

    def open(self, start: int) -> HttpBody:
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            connection, response = self._get(url, start)
            if response.status not in REDIRECTS:
                return self._body(connection, response, start)
            location = response.getheader("Location", "")
            connection.close()
            url = urljoin(url, location)
            if urlsplit(url).scheme.lower() not in HTTP_SCHEMES:
                raise Refusal(f"the server redirects it to {url}, which is not an http(s) URL, so it was not followed")
        raise Refusal(f"the server redirects it more than {MAX_REDIRECTS} times")

    def _get(self, url: str, start: int) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        parts = urlsplit(url)
        if parts.scheme.lower() == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=self.timeout, context=_tls_context())
        else:
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=self.timeout)
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("GET", target, headers=headers)
            return connection, connection.getresponse()
        except Exception as error:
            connection.close()
            raise _fault(error, self.timeout, before_answer=True) from None

    def _body(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse,
              start: int) -> HttpBody:
        status, reason = response.status, response.reason
        answer = f"the server answered {status} {reason}".rstrip()
        if status in GONE:
            connection.close()
            raise FileNotFoundError(errno.ENOENT, answer)
        if status == 416:  # Range Not Satisfiable: nothing at or after ``start``
            connection.close()
            raise EndOfData()
        if status == 429 or status >= 500:
            connection.close()
            raise Fault(answer)
        if status not in (200, 206):
            connection.close()
            raise Refusal(answer)
        body = HttpBody(connection, response, self.timeout)
        if status == 206:
            first = _range_start(response.getheader("Content-Range", ""))
            if first != start:
                body.close()
                raise Refusal(f"the server answered a request for bytes from {start} on with bytes from {first} on")
        elif start:
            body.skip(start)
        return body


class HttpBody:
    """A response body read as it arrives; faults raise Fault, so that the stream tries again."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse, timeout: float):
        self.connection = connection
        self.response = response
        self.timeout = timeout

    def read(self, size: int) -> bytes:
        remaining = self.response.length  # what Content-Length still promises (None: unknown)
        try:
            data = self.response.read1(size)
        except Exception as error:
            raise _fault(error, self.timeout) from None
        if not data and remaining:
            raise Fault(f"the connection closed {remaining} bytes before the end of the body")
        return data

    def skip(self, count: int) -> None:
        """Drop the first ``count`` bytes (a server that ignores Range sends the file from byte 0)."""
        while count:
            data = self.read(min(count, SKIP_PIECE))
            if not data:
                self.close()
                raise EndOfData()
            count -= len(data)

    def close(self) -> None:
        self.connection.close()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The system's certificates, loaded once per process rather than once per read."""
    return ssl.create_default_context()


def _range_start(content_range: str) -> int | None:
    """The first byte of ``bytes FIRST-LAST/TOTAL``, or None when it does not parse."""
    unit, _, span = content_range.strip().partition(" ")
    first = span.partition("-")[0]
    return int(first) if unit == "bytes" and first.isdigit() else None


def _fault(error: Exception, timeout: float, before_answer: bool = False) -> Fault:
    """What went wrong with a try, in words; ``before_answer``: no response had begun."""
    if isinstance(error, TimeoutError):  # socket.timeout is TimeoutError
        return Fault(f"no answer for {timeout:g} s" if before_answer else f"no data for {timeout:g} s",
                     answered=not before_answer)
    if isinstance(error, ConnectionRefusedError):
        return Fault("the connection was refused", answered=False)
    if isinstance(error, socket.gaierror):
        return Fault(f"the host name does not resolve ({error.strerror})", answered=False)
    if isinstance(error, (ConnectionResetError, http.client.RemoteDisconnected)):
        return Fault("the connection was reset", answered=not before_answer)
    if isinstance(error, http.client.IncompleteRead):
        return Fault("the connection closed before the end of the body")
    if isinstance(error, ssl.SSLCertVerificationError):  # no later try makes the certificate trusted
        raise Refusal(f"its server's certificate is not trusted ({error.verify_message or error.reason})")
    if isinstance(error, ssl.SSLError):
        return Fault(f"TLS failed ({error.reason or error})", answered=False)
    if isinstance(error, OSError):
        return Fault(error.strerror or type(error).__name__, answered=not before_answer)
    if isinstance(error, http.client.HTTPException):
        return Fault(f"the answer is not valid HTTP ({type(error).__name__})", answered=not before_answer)
    raise error
