"""A local Stripe for tests and the demo: localstripe, plus the parts of Stripe the project relies on.

`python -m standins.stripe_server --port 12111` serves it on 127.0.0.1; `StripeStandIn.start()`
runs it in a child process on a free port. Point the real client at it with
`stripe.StripeClient(key, base_addresses={"api": url})` (any `sk_` key works) and the browser at
`{url}/js.stripe.com/v3/`.

On top of localstripe (https://github.com/adrienverge/localstripe) this adds:

- Idempotency-Key replay: a POST repeating a key gets the first answer (status and body, with
  `Idempotent-Replayed: true`) and changes nothing; the same key with another method, path or body
  is refused with an `idempotency_error`. Keys live in the store, so they persist and reset with it.
- SetupIntents created with `payment_method`/`confirm`; a succeeded one attaches its payment method
  to its customer, as Stripe does, so later off-session payments can use it.
- `amount_capturable`, `amount_received` (PaymentIntent) and `amount_captured` (Charge); a partial
  capture releases the rest, shown as a refund of the remainder as Stripe shows it.
- Refunds above what is left of the captured amount are refused with Stripe's messages.
- Events localstripe never sends: `payment_intent.amount_capturable_updated`, `.canceled`,
  `.payment_failed` after failed 3-D Secure, `charge.refunded`, `refund.created`, `refund.updated`,
  `setup_intent.succeeded`, `.setup_failed`, `.canceled`; `GET /v1/events` lists newest first.
- Parameters Stripe accepts and localstripe refused (`automatic_payment_methods`,
  `cancellation_reason`, refund `reason`, `confirm(payment_method=...)`, `payment_method_data`).
- Card errors shaped like Stripe's (`type: card_error`, `decline_code`, the intent in the error).
  Test cards 4000 0000 0000 0002 and 4000 0000 0000 9995 decline when charged, as on Stripe.
- A Stripe.js with the Payment Element and `confirmPayment`/`confirmSetup` (stripe_v3.js).
- Publishable-key calls limited to what Stripe.js may do, each checked against the intent's secret.
- Each server keeps its pickled store in its own directory, never in the shared /tmp file.

The pieces: this module serves (middleware for keys and idempotency, the app, `run`, `StripeStandIn`);
`standins.stripe_resources` gives localstripe's resources Stripe's fields, errors and events;
`standins.stripe_endpoints` replaces the endpoints localstripe lacks or gets wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import ipaddress
import logging
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from aiohttp import web
from localstripe.errors import UserError
from localstripe.resources import (
    PaymentIntent,
    SetupIntent,
    store,
)

from standins._base import child_stop
from standins.clock import child_environment, follow_caller_clock

with warnings.catch_warnings():
    # localstripe registers plain functions as handlers, which aiohttp deprecates; build_app wraps them.
    warnings.simplefilter("ignore", DeprecationWarning)
    from localstripe import server as localstripe_server
from standins.stripe_endpoints import (
    authenticate_payment_intent,
    cancel_payment_intent,
    cancel_setup_intent,
    confirm_payment_intent,
    confirm_setup_intent,
    create_payment_intent,
    create_refund,
    create_setup_intent,
    list_charges,
    list_events,
    list_payment_intents,
    list_payment_methods,
    update_refund,
)
from standins.stripe_resources import install_additions, keep_store_in, stripe_error

DEFAULT_PORT = 12111
JS_PATH = Path(__file__).with_name("stripe_v3.js")
ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("stripe_standin")


async def stripe_js(request: web.Request) -> web.Response:
    return web.Response(text=JS_PATH.read_text(), content_type="application/javascript")


ENDPOINTS = (
    ("POST", "/v1/payment_intents", create_payment_intent),
    ("POST", "/v1/payment_intents/{id}/confirm", confirm_payment_intent),
    ("POST", "/v1/payment_intents/{id}/cancel", cancel_payment_intent),
    ("POST", "/v1/payment_intents/{id}/_authenticate", authenticate_payment_intent),
    ("POST", "/v1/setup_intents", create_setup_intent),
    ("POST", "/v1/setup_intents/{id}/confirm", confirm_setup_intent),
    ("POST", "/v1/setup_intents/{id}/cancel", cancel_setup_intent),
    ("POST", "/v1/refunds", create_refund),
    ("POST", "/v1/refunds/{id}", update_refund),
    ("GET", "/v1/events", list_events),
    ("GET", "/v1/payment_intents", list_payment_intents),
    ("GET", "/v1/charges", list_charges),
    ("GET", "/v1/payment_methods", list_payment_methods),
)


# --- middleware ---------------------------------------------------------------------------------

# What Stripe.js may call with a publishable key; calls on an intent must also carry its client secret.
PUBLISHABLE_KEY_ROUTES = (
    ("POST", re.compile(r"/v1/(payment_methods|tokens|sources)")),
    ("POST", re.compile(r"/v1/(payment|setup)_intents/(?P<id>\w+)/(confirm|_authenticate)")),
    ("POST", re.compile(r"/v1/setup_intents/(?P<id>\w+)/cancel")),
    ("GET", re.compile(r"/v1/(payment|setup)_intents/(?P<id>\w+)")),
)


def _api_key(request: web.Request, params: dict[str, Any]) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme == "Bearer":
        return credentials
    if scheme == "Basic":
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            return base64.b64decode(credentials).decode().partition(":")[0]
    key = params.get("key")
    return key if isinstance(key, str) else ""


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Let secret keys do anything and publishable keys only what Stripe.js may do."""
    if request.path.startswith(("/js.stripe.com/", "/_config/")):
        return await handler(request)
    if request.method == "POST":
        params = await localstripe_server.get_post_data(request, remove_auth=False) or {}
    else:
        params = localstripe_server.unflatten_data(request.query)
    key = _api_key(request, params)
    if key.startswith(("sk_", "rk_")) and len(key) > 5:
        return await handler(request)
    if key.startswith("pk_"):
        for method, pattern in PUBLISHABLE_KEY_ROUTES:
            match = pattern.fullmatch(request.path)
            if match and request.method == method:
                intent_id = match.groupdict().get("id")
                if intent_id:
                    kind = SetupIntent if intent_id.startswith("seti_") else PaymentIntent
                    if params.get("client_secret") != kind._api_retrieve(intent_id).client_secret:
                        raise stripe_error(
                            404, f"No such {kind.object}: '{intent_id}'", param="client_secret"
                        )
                return await handler(request)
    raise stripe_error(401, "Invalid API Key provided, or this key may not make this call.")


_idempotency_lock = asyncio.Lock()


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer a repeated Idempotency-Key with the first answer, without running the request again.

    Requests carrying a key run one at a time, so a retry racing the original waits for its answer.
    Answers of 500 and above are not kept, so such a request may be retried with the same key.
    """
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    fingerprint = hashlib.sha256(
        b"%s %s\n%s" % (request.method.encode(), request.path_qs.encode(), await request.read())
    ).hexdigest()
    async with _idempotency_lock:
        saved = store.get(f"idempotency:{key}")
        if saved is not None:
            if saved["fingerprint"] != fingerprint:
                raise stripe_error(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they were "
                    f"first used with. Try using a key other than '{key}' if you meant to execute a "
                    "different request.",
                    type="idempotency_error",
                )
            return web.Response(
                status=saved["status"],
                body=saved["body"],
                content_type="application/json",
                headers={"Idempotency-Key": key, "Idempotent-Replayed": "true"},
            )
        try:
            response = await handler(request)
        except UserError as error:
            response = error.to_response()
        if response.status < 500:
            store[f"idempotency:{key}"] = {
                "fingerprint": fingerprint,
                "status": response.status,
                "body": response.body or b"",
            }
        response.headers["Idempotency-Key"] = key
        return response


# --- serving ------------------------------------------------------------------------------------


def build_app(data_dir: Path) -> web.Application:
    """The stand-in's aiohttp application, keeping its data in `data_dir` (loaded if present)."""
    install_additions()
    keep_store_in(data_dir)
    store.try_load_from_disk()
    app = web.Application(
        middlewares=[
            localstripe_server.error_middleware,
            auth_middleware,
            idempotency_middleware,
            localstripe_server.save_store_middleware,
        ]
    )
    app.on_response_prepare.append(localstripe_server.add_cors_headers)
    # aiohttp matches routes in the order they were added, so ours go first and shadow localstripe's.
    replaced = {(method, path) for method, path, _ in ENDPOINTS} | {("GET", "/js.stripe.com/v3/")}
    for method, path, endpoint in ENDPOINTS:
        app.router.add_route(method, path, localstripe_server.api_extra(endpoint, path))
    app.router.add_get("/js.stripe.com/v3/", stripe_js)
    for route in localstripe_server.app.router.routes():
        method = "GET" if route.method == "HEAD" else route.method
        if (method, route.resource.canonical) not in replaced:
            app.router.add_route(route.method, route.resource.canonical, _as_coroutine(route.handler))
    return app


def _as_coroutine(handler: Any) -> Any:
    if asyncio.iscoroutinefunction(handler):
        return handler

    async def call(request: web.Request) -> web.StreamResponse:
        return handler(request)

    return call


def _require_loopback(host: str) -> None:
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"The Stripe stand-in listens on loopback only, not on {host}.")


def run(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    data_dir: Path | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, on a loopback address only.

    Data persists in `data_dir` across restarts; without one it lives in a temporary directory that
    is removed on exit. `sock` is an already bound loopback socket to serve instead of host/port.

    :raises ValueError: when asked to listen on anything but a loopback address.
    """
    _require_loopback(sock.getsockname()[0] if sock else host)
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stripe-standin-")))
        app = build_app(data_dir)
        bound_host, bound_port = sock.getsockname()[:2] if sock else (host, port)
        address = f"http://{bound_host}:{bound_port}"
        logger.info("Stripe stand-in on %s (data in %s)", address, data_dir)
        options = {"sock": sock} if sock else {"host": host, "port": port}
        web.run_app(app, print=None, shutdown_timeout=1, **options)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m standins.stripe_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--data-dir", type=Path, help="keep data here across restarts (default: a temp dir)")
    parser.add_argument("--fd", type=int, help="serve this inherited, bound socket (used by StripeStandIn)")
    args = parser.parse_args(argv)
    follow_caller_clock()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.INFO)
    sock = socket.socket(fileno=args.fd) if args.fd is not None else None
    try:
        run(args.host, args.port, data_dir=args.data_dir, sock=sock)
    except ValueError as error:
        parser.error(str(error))


# --- running it from tests and the dev launcher -------------------------------------------------


@dataclass
class StripeStandIn:
    """A stand-in server in a child process; it answers as soon as `start()` returns.

    Each instance has its own data directory, so parallel test processes never share state.
    """

    url: str
    data_dir: Path
    process: subprocess.Popen

    @classmethod
    def start(cls, data_dir: Path, *, timeout: float = 30.0) -> Self:
        """Start a server on a free loopback port, keeping its data and log in `data_dir`.

        :raises RuntimeError: if the server exits or does not answer within `timeout` seconds.
        """
        data_dir.mkdir(parents=True, exist_ok=True)
        # Bound here and inherited by the child: the port is known at once and nobody can take it.
        with socket.socket() as listener, (data_dir / "stripe-standin.log").open("ab") as log:
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "standins.stripe_server"),
                    *("--fd", str(listener.fileno()), "--data-dir", str(data_dir)),
                ],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(listener.fileno(),),
                env=child_environment(),  # signs webhooks on the caller's clock, moved or not
            )
            standin = cls(f"http://127.0.0.1:{listener.getsockname()[1]}", data_dir, process)
        try:
            standin._wait_until_answering(timeout)
        except RuntimeError:
            standin.stop()
            raise
        return standin

    def _wait_until_answering(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The Stripe stand-in exited; see {self.data_dir / 'stripe-standin.log'}")
            with contextlib.suppress(OSError):
                self._call("GET", "/js.stripe.com/v3/", timeout=2)
                return
            time.sleep(0.05)
        raise RuntimeError(f"The Stripe stand-in did not answer within {timeout}s")

    def _call(
        self, method: str, path: str, data: dict[str, Any] | None = None, *, timeout: float = 10
    ) -> bytes:
        body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
        request = urllib.request.Request(self.url + path, data=body, method=method)  # noqa: S310 - our loopback URL
        with _DIRECT.open(request, timeout=timeout) as response:
            return response.read()

    def register_webhook(
        self, url: str, secret: str, *, events: list[str] | None = None, name: str = "default"
    ) -> None:
        """Deliver events (all, or only `events`) to `url`, signed with `secret` as Stripe signs them.

        Registrations live in the server's memory: register again after a restart.
        """
        data: dict[str, Any] = {"url": url, "secret": secret}
        if events is not None:
            data["events[]"] = events
        self._call("POST", f"/_config/webhooks/{urllib.parse.quote(name)}", data)

    def reset(self) -> None:
        """Forget every object and idempotency key (webhook registrations stay)."""
        self._call("DELETE", "/_config/data")

    def stop(self) -> None:
        """Stop the server and wait for it to exit."""
        child_stop(self.process)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# Calls to the stand-in go straight to loopback, whatever proxy the environment names.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


if __name__ == "__main__":
    main()
