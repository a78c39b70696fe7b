"""An HTTP forward proxy on loopback, as a lab's network puts between its nodes and the world: a GET
for a whole URL is forwarded, a CONNECT opens a tunnel to the host named."""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.shards.loopback import LoopbackServer

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "transfer-encoding"}


@dataclass
class ForwardProxy(LoopbackServer):
    """``with ForwardProxy() as proxy``: ``proxy.url`` is its address; ``proxy.requests`` logs (method,
    target, Proxy-Authorization header) of every request; ``refuses`` answers 407 to every request, as a
    proxy that wants credentials it was not given."""

    refuses: bool = False
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listen(_handler_for(self))


def _handler_for(proxy: ForwardProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            proxy.requests.append(("GET", self.path, self.headers.get("Proxy-Authorization")))
            if proxy.refuses:
                return self.refuse()
            target = urlsplit(self.path)
            upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
            headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
            upstream.request("GET", target.path + (f"?{target.query}" if target.query else ""), headers=headers)
            answer = upstream.getresponse()
            body = answer.read()
            self.send_response(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP | {"content-length"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            upstream.close()

        def do_CONNECT(self) -> None:
            proxy.requests.append(("CONNECT", self.path, self.headers.get("Proxy-Authorization")))
            if proxy.refuses:
                return self.refuse()
            host, _, port = self.path.rpartition(":")
            with socket.create_connection((host, int(port)), timeout=10) as upstream:
                self.send_response(200, "Connection established")
                self.end_headers()
                self._relay(self.connection, upstream)
            self.close_connection = True

        def refuse(self) -> None:
            self.send_response(407, "Proxy Authentication Required")
            self.send_header("Content-Length", "0")
            self.end_headers()

        @staticmethod
        def _relay(client: socket.socket, upstream: socket.socket) -> None:
            """Bytes both ways until either side closes (or resets, as a client refusing a certificate does)."""
            with contextlib.suppress(ConnectionError):
                while True:
                    ready, _, _ = select.select([client, upstream], [], [], 10)
                    if not ready:
                        return
                    for side in ready:
                        data = side.recv(1 << 16)
                        if not data:
                            return
                        (upstream if side is client else client).sendall(data)

    return Handler
