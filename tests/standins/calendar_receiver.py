"""A webhook receiver for stand-in tests: records every request and answers like a well-behaved app."""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Listens on 127.0.0.1; echoes Graph's validationToken as text/plain, answers 202 to the rest.

    Set `echo_validation = False` to play an endpoint that fails Graph's handshake.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.echo_validation = True
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(Received(parts.path, query, dict(self.headers.items()), body))
                token = query.get("validationToken")
                if token is not None and receiver.echo_validation:
                    payload, status = token.encode(), 200
                else:
                    payload, status = b"", 202
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while not predicate(list(self.received)):
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver saw only {self.received!r}")
            time.sleep(0.02)
        return list(self.received)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
