"""Plumbing the calendar stand-ins share: a loopback HTTP(S) server on a background thread, routing,
fault injection, test-control calls and fire-and-forget outbound deliveries (webhooks).

A stand-in lives in the test process. `start()` returns once the port is bound, so the first request
never races the server; `stop()` closes the port and every kept-alive connection, so a client pool
that outlives the stand-in fails loudly instead of talking to a ghost.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import http.client
import ipaddress
import json
import queue
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import traceback
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

UTC = dt.UTC


def utcnow() -> dt.datetime:
    # Read per call (not cached) so a test that moves the clock with time-machine moves the stand-in too.
    return dt.datetime.now(UTC)


class BadRequest(Exception):
    """Malformed input; each stand-in renders it in its provider's error format."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Response:
    status: int
    body: Any = None  # dict/list -> JSON, str/bytes -> sent as is
    headers: dict[str, str] = field(default_factory=dict)


class Reply(Exception):
    """Raised inside a handler to answer at once (errors, redirects)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    query_list: list[tuple[str, str]]
    headers: Message
    body: bytes

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            value = json.loads(self.body)
        except ValueError as exc:
            raise BadRequest(f"Invalid JSON payload received. {exc}", "parseError") from exc
        if not isinstance(value, dict):
            raise BadRequest("Invalid JSON payload received: expected an object.", "parseError")
        return value

    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode(), keep_blank_values=True))

    def bearer_token(self) -> str | None:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None

    def client_credentials(self, form: dict[str, str]) -> tuple[str, str]:
        """The OAuth client id and secret, from HTTP Basic auth (requests-oauthlib) or the form (others)."""
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "basic":
            try:
                pair = base64.b64decode(value).decode()
            except ValueError:
                pair = ":"
            client_id, _, secret = pair.partition(":")
            return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)
        return form.get("client_id", ""), form.get("client_secret", "")


@dataclass
class Delivery:
    """One outbound notification and how the receiver answered (status None: unreachable)."""

    url: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None


Handler = Callable[..., Response]


def child_stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a stand-in running as a child process (idempotent): politely, then for sure."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def http_post(
    url: str, *, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int | None, str, str]:
    """POST and return (status, content type, body text); status None when nothing answered.

    http.client rather than urllib: it keeps header names as written (X-Goog-Channel-ID) and never
    routes loopback traffic through a proxy from the environment.
    """
    parts = urllib.parse.urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        connection.request("POST", target, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type", ""), answer.read().decode(errors="replace")
    except (OSError, http.client.HTTPException):
        return None, "", ""
    finally:
        connection.close()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """Write a certificate for 127.0.0.1/localhost that is its own CA; return (cert, key) paths.

    It is marked as a CA with a key usage for signing so OpenSSL accepts it as a trust anchor when a
    client passes it as `verify=`; nothing else trusts it.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1 calendar stand-in")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # A fixed, wide validity: OpenSSL checks it against the real clock, while the stand-in's own
        # clock may be moved by time-machine in the test that starts it.
        .not_valid_before(dt.datetime(2000, 1, 1, tzinfo=UTC))
        .not_valid_after(dt.datetime(2100, 1, 1, tzinfo=UTC))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


def parse_instant(value: dt.datetime | dt.date | str) -> dt.datetime | dt.date:
    """A control-call time: aware datetime, or a date for all-day events (ISO strings over HTTP)."""
    if isinstance(value, str):
        value = dt.date.fromisoformat(value) if len(value) == 10 else dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        raise BadRequest("control times must be timezone-aware")
    return value


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httplib2 and requests expect from Google/Microsoft
    timeout = 60  # idle kept-alive connections do not pin a thread forever

    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        super().finish()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urllib.parse.urlsplit(self.path)
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        request = Request(self.command, parts.path, dict(pairs), pairs, self.headers, body)
        response = self.server.standin.dispatch(request)
        payload = response.body
        content_type = response.headers.pop("Content-Type", None)
        if isinstance(payload, dict | list):
            payload = json.dumps(payload).encode()
            content_type = content_type or "application/json; charset=UTF-8"
        elif isinstance(payload, str):
            payload = payload.encode()
            content_type = content_type or "text/plain; charset=UTF-8"
        payload = payload or b""
        self.send_response(response.status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status not in (204, 304):
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keeps test output readable; failures surface as HTTP errors in the client


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    standin: StandInServer
    connections: set[socket.socket]


class StandInServer:
    """Base of a stand-in: subclasses register routes and answer in their provider's formats.

    Guarantees: binds 127.0.0.1 only, on a free port; handlers registered `locked=True` (the default)
    run one at a time, so each sees and leaves the in-memory state consistent.
    """

    API_PREFIX = "/"  # requests under it are subject to fail_next()
    CONTROL_METHODS: tuple[str, ...] = ("reset", "fail_next", "deliveries")

    def __init__(self, *, tls: bool = False) -> None:
        self.lock = threading.RLock()
        self._routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []
        self._failures: list[tuple[int, dict[str, Any]]] = []
        self._deliveries: list[Delivery] = []
        self._outbox: queue.Queue[Delivery | None] = queue.Queue()
        self._directory = Path(tempfile.mkdtemp(prefix="standin-"))
        self.ca_cert: str | None = None
        self._httpd = _HTTPServer(("127.0.0.1", 0), _RequestHandler)
        self._httpd.standin = self
        self._httpd.connections = set()
        if tls:
            cert, key = self_signed_certificate(self._directory)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            self.ca_cert = str(cert)
        host, port = self._httpd.server_address[:2]
        self.url = f"{'https' if tls else 'http'}://{host}:{port}"
        self._threads = [
            # A short poll interval makes stop() take milliseconds, not half a second per test.
            threading.Thread(
                target=self._httpd.serve_forever, args=(0.02,), name=type(self).__name__, daemon=True
            ),
            threading.Thread(target=self._deliver_forever, name=f"{type(self).__name__}-out", daemon=True),
        ]

    @classmethod
    def start(cls, **kwargs: Any) -> Self:
        """Start a stand-in on a free loopback port; it answers as soon as this returns."""
        server = cls(**kwargs)
        for thread in server._threads:
            thread.start()
        return server

    def stop(self) -> None:
        """Close the port and all open connections; pending notifications are dropped."""
        self._httpd.shutdown()
        self._httpd.server_close()
        for connection in list(self._httpd.connections):
            with contextlib.suppress(OSError):  # already closed by the peer
                connection.shutdown(socket.SHUT_RDWR)
        self._outbox.put(None)
        self._threads[1].join(timeout=5)
        shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- routing ---------------------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler, *, locked: bool = True) -> None:
        self._routes.append((method, re.compile(pattern), handler, locked))

    def dispatch(self, request: Request) -> Response:
        try:
            if request.path.startswith("/_control/"):
                return self._control(request)
            if request.path.startswith(self.API_PREFIX):
                with self.lock:
                    failure = self._failures.pop(0) if self._failures else None
                if failure:
                    return self.failure_response(failure[0], **failure[1])
            for method, pattern, handler, locked in self._routes:
                match = pattern.fullmatch(request.path)
                if match and method == request.method:
                    args = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items() if v is not None}
                    if not locked:
                        return handler(request, **args)
                    with self.lock:
                        return handler(request, **args)
            return self.not_found(request)
        except Reply as reply:
            return reply.response
        except BadRequest as exc:
            return self.bad_request(str(exc), exc.reason)
        except Exception:  # noqa: BLE001 - a bug in the stand-in must answer 500, not kill the connection
            traceback.print_exc(file=sys.stderr)
            return Response(500, {"error": {"code": 500, "message": "stand-in crashed; see stderr"}})

    def _control(self, request: Request) -> Response:
        name = request.path.removeprefix("/_control/").strip("/")
        if request.method != "POST" or name not in self.CONTROL_METHODS:
            return Response(404, {"error": f"unknown control call {request.method} {name!r}"})
        try:
            result = getattr(self, name)(**request.json())
        except (TypeError, KeyError, LookupError, ValueError) as exc:
            return Response(400, {"error": f"{type(exc).__name__}: {exc}"})
        return Response(200, {"result": jsonable(result)})

    # --- provider formats (overridden) -----------------------------------------------------------

    def not_found(self, request: Request) -> Response:
        return Response(404, {"error": f"no route for {request.method} {request.path}"})

    def bad_request(self, message: str, reason: str) -> Response:
        return Response(400, {"error": message})

    def failure_response(self, status: int, **options: Any) -> Response:
        return Response(status, {"error": "injected failure"})

    # --- control shared by both stand-ins --------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 503, **options: Any) -> None:
        """Answer the next `count` API calls with `status` in the provider's format, before routing."""
        with self.lock:
            self._failures.extend([(status, options)] * count)

    def reset(self) -> None:
        """Forget everything a test did: data, tokens, injected failures and the delivery log."""
        with self.lock:
            self._failures.clear()
            self._deliveries.clear()
            self.clear_state()

    def clear_state(self) -> None:
        raise NotImplementedError

    # --- outbound notifications ------------------------------------------------------------------

    def notify(self, url: str, *, body: bytes = b"", headers: dict[str, str]) -> None:
        """Queue a notification; they leave one at a time, in order, after the change is committed."""
        self._outbox.put(Delivery(url, headers, body))

    def deliveries(self) -> list[Delivery]:
        """Notifications attempted so far, oldest first (status None: the receiver was unreachable)."""
        with self.lock:
            return list(self._deliveries)

    def wait_for_deliveries(self, timeout: float = 10.0) -> list[Delivery]:
        """Block until every queued notification was attempted; return the log.

        :raises TimeoutError: if the receivers keep the queue busy longer than `timeout` seconds.
        """
        with self._outbox.all_tasks_done:
            if not self._outbox.all_tasks_done.wait_for(lambda: not self._outbox.unfinished_tasks, timeout):
                raise TimeoutError("notifications still pending")
        return self.deliveries()

    def _deliver_forever(self) -> None:
        while (delivery := self._outbox.get()) is not None:
            try:
                # Like Google and Graph, a receiver that fails is not retried here and does not
                # block the next one for long.
                delivery.status = http_post(
                    delivery.url, body=delivery.body, headers=delivery.headers, timeout=10
                )[0]
                with self.lock:
                    self._deliveries.append(delivery)
            finally:
                self._outbox.task_done()
        self._outbox.task_done()
