"""What every request passes first: an ASGI middleware that refuses foreign `Host` headers and cross-origin
writes, adds the usual security headers to every answer, and answers an unexpected failure with an id
instead of its details.

Why: the app has no authentication and listens on localhost. A web page the user visits could still post
to it (a form or `fetch` to `http://127.0.0.1:8000` is a "simple" cross-origin request, sent without a
preflight), or read its answers through DNS rebinding (a name of the attacker's that resolves to
127.0.0.1: the browser then sends that name as `Host`). So only the names the server is reached by are
answered, and a request that changes state must come from the server's own pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InputError

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")  # always answered (with any port)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # methods that change nothing: no Origin check
LINGER_S = 5.0  # s: how long the rest of a refused upload is read (and dropped) before the connection is closed
_DEFAULT_PORTS = {"http": 80, "https": 443}

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),  # a PNG or JSON answer is never run as a script or page
    (b"x-frame-options", b"DENY"),  # no framing (clickjacking); `frame-ancestors` says it to newer browsers
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),  # other sites may not embed the answers
)
# Answers without a policy of their own: JSON and images load nothing; HTML (FastAPI's /docs, which
# takes Swagger UI from a CDN) keeps what it loads but may not be framed either.
_API_CSP = b"default-src 'none'; frame-ancestors 'none'"
_HTML_CSP = b"frame-ancestors 'none'"


def split_host(value: str) -> tuple[str, int | None]:
    """`name`, `name:port` or `[v6]:port` -> (lowercase name without brackets, port or None); ("", None) if bad."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket:
            return "", None
    elif value.count(":") > 1:  # a bare IPv6 address is no valid Host
        return "", None
    else:
        name, colon, port = value.partition(":")
        rest = colon + port
    if not rest:
        return name, None
    digits = rest[1:]
    if not rest.startswith(":") or not digits.isascii() or not digits.isdigit() or int(digits) > 65535:
        return "", None
    return name, int(digits)


def origin_of(url: str) -> str | None:
    """The origin `scheme://host[:port]` of an http(s) URL, lowercase, without a default port; None if it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, name = parts.scheme.lower(), parts.hostname
    if scheme not in _DEFAULT_PORTS or not name:
        return None
    host = f"[{name}]" if ":" in name else name
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def _host_rules(names: Iterable[str]) -> set[tuple[str, int | None]]:
    """(name, port) pairs from `localhost`, `example.org:8443`, `[::1]` or `::1`; port None matches any."""
    rules = set()
    for entry in names:
        if entry == "*":
            rules.add(("*", None))
            continue
        rule = (entry.strip().lower(), None) if entry.count(":") > 1 and "[" not in entry else split_host(entry)
        if not rule[0] or "/" in rule[0]:
            raise InputError(f"allowed host '{entry}' is not a host name (e.g. example.org or example.org:8443)")
        rules.add(rule)
    return rules


class AccessPolicy:
    """Which requests are answered: Host names (400 for others) and, for unsafe methods, Origins (403).

    `allowed_hosts` are names answered besides localhost, 127.0.0.1 and [::1] (`name` with any port,
    `name:port` with that one, `*` any name); `allowed_origins` are origins (`https://app.example`)
    whose pages may post besides the server's own. A malformed entry raises `InputError` here.
    """

    def __init__(self, allowed_hosts: Iterable[str] = (), allowed_origins: Iterable[str] = ()):
        self.hosts = _host_rules([*LOCAL_HOSTS, *allowed_hosts])
        self.origins = set()
        for url in allowed_origins:
            origin = origin_of(url)
            if origin is None:
                raise InputError(f"allowed origin '{url}' is not an http(s) origin (e.g. https://app.example)")
            self.origins.add(origin)

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """(status, message) when the request must be refused, else None."""
        headers = {}
        for key, value in scope["headers"]:
            headers.setdefault(key, value.decode("latin-1"))
        host = headers.get(b"host", "")
        name, port = split_host(host)
        if not name:
            return 400, "the request has no valid Host header"
        if ("*", None) not in self.hosts and (name, None) not in self.hosts and (name, port) not in self.hosts:
            return 400, f"this server does not answer for host '{name}' (start it with --allow-host {name})"
        if scope["method"] in SAFE_METHODS:
            return None
        origin = headers.get(b"origin")
        if origin is None:  # not sent by a browser's cross-origin request, unless the browser says otherwise
            site = headers.get(b"sec-fetch-site", "")
            return (403, "cross-site requests are refused") if site in ("cross-site", "same-site") else None
        own = origin_of(f"{scope.get('scheme', 'http')}://{host}")
        normalized = origin_of(origin)
        if normalized is not None and (normalized == own or normalized in self.origins):
            return None
        return 403, f"requests from pages of origin '{origin[:100]}' are refused (start the server with --allow-origin)"


class Guard:
    """ASGI middleware: the `AccessPolicy`'s refusals, security headers on every answer, internal errors by id,
    and refusals of uploads that end the connection cleanly.

    An error answer to a request whose body has not been read to its end (a full queue, a body over the
    limit, another origin) is held back while the rest of the body is read and dropped, for at most
    `linger` seconds, and the connection is closed after it. Why: an HTTP/1.1 client reads the answer
    only once it has sent its body, and closing on a client that is still sending turns the close into
    a reset, which loses the answer; a connection left open instead stays open as long as the client
    trickles. Nothing is kept of the dropped body, so this costs no memory. A client that sent
    `Expect: 100-continue` and was never asked for its body has sent none: it is answered at once.
    """

    def __init__(self, app: ASGIApp, *, policy: AccessPolicy, linger: float = LINGER_S):
        self.app, self.policy, self.linger = app, policy, linger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the lifespan; this app has no websockets
            await self.app(scope, receive, send)
            return
        body = _Body(receive, dict(scope["headers"]))
        started = False

        async def send_secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                out = secured(message.get("headers", []))
                if message["status"] >= 400 and not body.done:
                    out = await body.drop(out, self.linger)
                message = {**message, "headers": out}
            await send(message)

        refusal = self.policy.refusal(scope)
        if refusal is not None:
            await send_json(send_secured, *refusal)
            return
        try:
            await self.app(scope, body.receive, send_secured)
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("internal error %s on %s %s", error_id, scope["method"], scope["path"])
            if started:  # part of the answer is out: the connection is dropped
                raise
            await send_json(send_secured, 500, f"internal error (id {error_id}); the server's log has the details")


class _Body:
    """A request's `receive`, noting whether the body has been read to its end."""

    def __init__(self, receive: Receive, headers: dict[bytes, bytes]):
        self._receive = receive
        self.done = headers.get(b"content-length", b"0") == b"0" and b"transfer-encoding" not in headers
        self.waiting = headers.get(b"expect", b"").lower() == b"100-continue"  # for a go-ahead: it sent nothing

    async def receive(self) -> Message:
        self.waiting = False  # the body is asked for: the server says 100 Continue
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.done = True
        return message

    async def drop(self, headers: list[tuple[bytes, bytes]], seconds: float) -> list[tuple[bytes, bytes]]:
        """Read and drop the rest of the body for at most `seconds`; the answer's headers, closing the connection."""
        if any(key.lower() == b"connection" and value.lower() == b"close" for key, value in headers):
            return headers  # the app cuts the connection off itself (a stalled upload): no waiting for it
        if not self.waiting:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    while not self.done:
                        await self.receive()
        return [*headers, (b"connection", b"close")]


def secured(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The answer's headers plus the security headers it does not set itself."""
    out = list(headers)
    present = {key.lower() for key, _ in out}
    out += [(key, value) for key, value in SECURITY_HEADERS if key not in present]
    if b"content-security-policy" not in present:
        kind = next((value for key, value in out if key.lower() == b"content-type"), b"")
        out.append((b"content-security-policy", _HTML_CSP if kind.startswith(b"text/html") else _API_CSP))
    return out


async def send_json(send: Send, status: int, detail: str) -> None:
    """A complete `{"detail": ...}` answer, as FastAPI's own errors look."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
