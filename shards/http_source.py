"""A file on an http(s) server as a ``shards.storage`` source: one GET per try, from a byte offset.

The standard library's client, so that every case is ours to decide: the socket timeout is the
read timeout (no byte for that long), a try at an offset asks for ``Range: bytes=OFFSET-`` (a
server that ignores it answers 200, and the bytes before the offset are read and dropped), the body
is read as it arrives, and a redirect is followed only to another http(s) URL. A proxy is used as
urllib reads the environment: HTTP_PROXY or HTTPS_PROXY by the URL's scheme, unless NO_PROXY names
the host (not ALL_PROXY, nor address ranges in NO_PROXY); an https URL goes through the proxy's
CONNECT tunnel.
"""

from __future__ import annotations

import base64
import errno
import functools
import http.client
import socket
import ssl
from typing import NamedTuple
from urllib.parse import SplitResult, unquote, urljoin, urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment

from shards.transport import HTTP_SCHEMES, EndOfData, Fault, Refusal

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
GONE = (404, 410)
SKIP_PIECE = 1 << 20
USER_AGENT = "genviews"
TUNNEL_FAILED = "Tunnel connection failed:"  # how http.client reports a CONNECT the proxy did not answer 200


class HttpSource:
    piece = 1 << 20
    read_ahead = 8

    def __init__(self, url: str, timeout: float):
        self.url = url
        self.timeout = timeout

    def open(self, start: int) -> HttpBody:
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            proxy = _proxy_for(urlsplit(url))  # each hop's host decides whether it goes through the proxy
            connection, response = self._get(url, start, proxy)
            if response.status not in REDIRECTS:
                return self._body(connection, response, start, proxy)
            location = response.getheader("Location", "")
            connection.close()
            url = urljoin(url, location)
            if urlsplit(url).scheme.lower() not in HTTP_SCHEMES:
                raise Refusal(f"the server redirects it to {url}, which is not an http(s) URL, so it was not followed")
        raise Refusal(f"the server redirects it more than {MAX_REDIRECTS} times")

    def _get(self, url: str, start: int, proxy: Proxy | None
             ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        connection, target, headers = self._connect(urlsplit(url), proxy)
        headers |= {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
        try:
            connection.request("GET", target, headers=headers)
            return connection, connection.getresponse()
        except Exception as error:
            connection.close()
            fault = _fault(error, self.timeout, before_answer=True)
            if proxy is None or "proxy" in fault.what:
                raise fault from None
            raise Fault(f"{fault.what} via the proxy {proxy.shown}", fault.answered) from None

    def _connect(self, parts: SplitResult, proxy: Proxy | None
                 ) -> tuple[http.client.HTTPConnection, str, dict[str, str]]:
        """A connection for ``parts``, the request target to send on it, and the proxy's headers."""
        https = parts.scheme.lower() == "https"
        # The port given, so that http.client does not read the end of an IPv6 address as one.
        host, port = parts.hostname or "", parts.port or (443 if https else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if proxy is None:
            if https:
                return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=_tls_context()), path, {}
            return http.client.HTTPConnection(host, port, timeout=self.timeout), path, {}
        if https:  # a tunnel through the proxy; TLS is then with the server itself
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                proxy.host, proxy.port, timeout=self.timeout, context=_tls_context())
            connection.set_tunnel(host, port, headers=proxy.credentials)
            return connection, path, {}
        # A plain-http proxy is asked for the whole URL.
        absolute = f"http://{parts.netloc.rpartition('@')[2]}{path}"
        return http.client.HTTPConnection(proxy.host, proxy.port, timeout=self.timeout), absolute, proxy.credentials

    def _body(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse,
              start: int, proxy: Proxy | None) -> HttpBody:
        status, reason = response.status, response.reason
        answer = f"the server answered {status} {reason}".rstrip() + (f" via the proxy {proxy.shown}" if proxy else "")
        if proxy and status == 407:
            connection.close()
            raise Refusal(f"the proxy {proxy.shown} answered {status} {reason}; its credentials go in "
                          f"{proxy.variable} as http://USER:PASSWORD@HOST:PORT")
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


class Proxy(NamedTuple):
    host: str
    port: int
    credentials: dict[str, str]  # the Proxy-Authorization header, when the URL has user:password@
    shown: str  # HOST:PORT, for messages: never the credentials
    variable: str  # the environment variable that names it


def _proxy_for(parts: SplitResult) -> Proxy | None:
    """The proxy the environment names for this URL, or None for a direct connection."""
    proxies = getproxies_environment()
    scheme = parts.scheme.lower()
    address = proxies.get(scheme)
    if not address or any(proxy_bypass_environment(host, proxies)
                          for host in (parts.netloc.rpartition("@")[2], parts.hostname or "")):
        return None
    variable = f"{scheme.upper()}_PROXY"
    proxy = urlsplit(address if "://" in address else f"http://{address}")  # "host:port", as curl takes it
    shown = proxy.netloc.rpartition("@")[2]
    try:
        port = proxy.port or 80
    except ValueError:  # a port that is not a number, or out of range
        port = 0
    if proxy.scheme.lower() != "http" or not proxy.hostname or not port:
        raise Refusal(f"{variable} names {proxy.scheme}://{shown}, which is not an http://HOST:PORT proxy, the "
                      "kind supported")
    return Proxy(proxy.hostname, port, _proxy_credentials(proxy), shown, variable)


def _proxy_credentials(proxy: SplitResult) -> dict[str, str]:
    """Basic authentication for a proxy URL with user:password@, as urllib sends it."""
    if proxy.username is None:
        return {}
    pair = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


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
    if isinstance(error, OSError) and str(error).startswith(TUNNEL_FAILED):
        answer = str(error).removeprefix(TUNNEL_FAILED).strip()
        if answer[:1] == "4":  # 407 (credentials) or 403: another try gets the same answer
            raise Refusal(f"the proxy answered {answer} to the tunnel")
        return Fault(f"the proxy answered {answer} to the tunnel", answered=False)
    if isinstance(error, OSError):
        return Fault(error.strerror or type(error).__name__, answered=not before_answer)
    if isinstance(error, http.client.HTTPException):
        return Fault(f"the answer is not valid HTTP ({type(error).__name__})", answered=not before_answer)
    raise error
