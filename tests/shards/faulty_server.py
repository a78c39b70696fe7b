"""An HTTP server on loopback that serves a folder (with Range requests) and misbehaves on purpose,
file by file, the way real servers and networks do."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.shards.loopback import LoopbackServer

STALL_LIMIT_SECONDS = 60  # a stalled answer waits at most this long, or until the server stops
ENDLESS_PIECE = bytes(range(256)) * 256

@dataclass
class FaultyServer(LoopbackServer):
    """``with FaultyServer(folder) as server``: ``server.url`` serves ``folder``; ``server.requests``
    logs (file name, first byte asked); ``server.faults`` maps a file name to what the server does
    to every request for it:

    - ``stall``: sends the file up to its middle, then nothing;
    - ``drop``: announces the whole file, sends it up to its middle, then closes;
    - ``endless``: answers 200 without a length, sends the file, then bytes without end;
    - ``huge``: announces 3 GB and sends bytes without end;
    - ``missing``: answers 404; ``redirect-out``: redirects to file:///etc/passwd;
    - ``short``: serves the file without its last KiB, as a server holding a truncated copy;
    - ``drip``: sends 1 KiB from the byte asked, then closes, at every request;
    - ``bad-range``: a request from byte 0 is dropped at the middle, as ``drop``; a resumed one is
      answered 206 with the file from byte 0, labelled as such (a Content-Range that is not the one asked);
    - ``redirect-http``: redirects the request to the same URL with ``?moved``, which is served;
    - ``stall-once``, ``drop-once``, ``error-once`` (a 500): to the first request only, as a
      network that heals; ``error-twice``: to the first two; ``stall-later``: to every request but
      the first.
    """

    root: Path
    faults: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, int]] = field(default_factory=list)
    ignores_range: bool = False  # answer every request with the whole file, as some servers do

    def __post_init__(self) -> None:
        self.stopping = threading.Event()
        self.listen(_handler_for(self))

    def times_asked(self, name: str) -> int:
        return sum(1 for asked, _ in self.requests if asked == name)

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()  # a stalled answer ends, so that shutdown does not wait for it
        super().__exit__(*exc_info)


def _handler_for(server: FaultyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            route, _, query = self.path.partition("?")
            name = route.rsplit("/", 1)[-1]
            start = _range_start(self.headers.get("Range", ""))
            server.requests.append((name, start))
            fault = server.faults.get(name)
            first = server.times_asked(name) == 1
            if fault is not None and fault.endswith("-once"):
                fault = fault.removesuffix("-once") if first else None
            elif fault is not None and fault.endswith("-twice"):
                fault = fault.removesuffix("-twice") if server.times_asked(name) <= 2 else None
            elif fault is not None and fault.endswith("-later"):
                fault = None if first else fault.removesuffix("-later")
            path = server.root / route.lstrip("/")
            if fault == "redirect-http" and query != "moved":
                self.send_response(302)
                self.send_header("Location", f"{server.url}{route}?moved")
                return self.end_headers()
            if fault == "bad-range" and start:
                return self.answer_from_the_start(path)
            try:
                self.answer(fault, path, 0 if server.ignores_range else start)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up on an answer without end, as it should

        def answer(self, fault: str | None, path: Path, start: int) -> None:
            if fault == "missing" or not path.is_file():
                return self.send_error(404)
            if fault == "redirect-out":
                self.send_response(302)
                self.send_header("Location", "file:///etc/passwd")
                return self.end_headers()
            if fault == "error":
                return self.send_error(500)
            data = path.read_bytes()[:-1024] if fault == "short" else path.read_bytes()
            if start >= len(data):
                return self.send_error(416)
            if fault == "huge":
                self.send_response(200)
                self.send_header("Content-Length", str(3 << 30))
                self.end_headers()
                return self.send_without_end()
            if fault == "endless":
                self.send_response(200)
                self.end_headers()
                self.wfile.write(data)
                return self.send_without_end()
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(data) - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            middle = len(data) // 2
            if fault == "bad-range":
                fault = "drop"
            if fault == "drip":
                self.wfile.write(data[start:start + 1024])
                return None  # the connection closes short of the length announced
            if fault in ("stall", "drop"):
                self.wfile.write(data[start:max(start, middle)])
                self.wfile.flush()
                if fault == "stall":
                    server.stopping.wait(STALL_LIMIT_SECONDS)
                return None  # the connection closes short of the length announced
            self.wfile.write(data[start:])
            return None

        def answer_from_the_start(self, path: Path) -> None:
            data = path.read_bytes()
            self.send_response(206)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Range", f"bytes 0-{len(data) - 1}/{len(data)}")
            self.end_headers()
            self.wfile.write(data)

        def send_without_end(self) -> None:
            while not server.stopping.is_set():
                self.wfile.write(ENDLESS_PIECE)

    return Handler


def _range_start(header: str) -> int:
    match = re.fullmatch(r"bytes=(\d+)-", header.strip())
    return int(match.group(1)) if match else 0
