"""Key comparison, rate limits, same-origin writes, body limits and security headers.

Who a caller is (keys, roles, collections, JWTs) is api/access.py; the rules here serve it:

* Identity for rate limits: the key only once it is valid, else the client address (random keys do not buy
  fresh buckets); failed authentications count against the client address too, so guessing is throttled.
* No-key mode (RAG_API_KEYS empty): writes come from loopback clients only, and only from the same origin:
  a browser request whose ``Origin`` is not the server it was sent to (nor in RAG_CORS_ORIGINS), or whose
  ``Sec-Fetch-Site`` says another site sent it, is refused with 403 (no CSRF through a cross-site form).
  Requests without either header (curl, scripts) are not from a browser page and stay allowed.
* :class:`BodyLimitMiddleware` counts the request body bytes actually received (JSON or multipart, with a
  Content-Length or chunked) and answers 413 as soon as the limit is passed.
* :class:`SecurityHeadersMiddleware` adds nosniff, DENY framing (and CSP frame-ancestors 'none'), no referrer,
  a same-origin opener policy, no powerful features and a Content-Security-Policy to every response.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.core.config import Settings

LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}


class AuthError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def key_matches(given: str | None, key: str) -> bool:
    """Constant-time comparison (bytes: a header may carry non-ASCII characters)."""
    return bool(given) and hmac.compare_digest((given or "").encode("utf-8", "surrogateescape"),
                                               key.encode("utf-8", "surrogateescape"))


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


# -- same-origin writes ----------------------------------------------------------------------------------------
_DEFAULT_PORT = {"http": 80, "https": 443}


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None] | None:
    try:
        u = urlsplit(f"{scheme}://{netloc}")
        port = u.port
    except ValueError:
        return None
    if not u.hostname:
        return None
    return u.hostname.lower().rstrip("."), port if port is not None else _DEFAULT_PORT.get(scheme)


def _rebindable(host: str) -> bool:
    """A DNS name (other than localhost) can be pointed at this machine by a hostile page (DNS rebinding):
    its Origin then equals the Host. IP literals and localhost cannot."""
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        return True


def cross_site(request: Request, settings: Settings) -> str:
    """Why this request was sent by another site's page ("" when it was not): a browser's ``Origin`` that is
    neither the server it was sent to nor listed in RAG_CORS_ORIGINS, or ``Sec-Fetch-Site`` cross-site /
    same-site without such an Origin."""
    origin = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site", "").strip().lower()
    allowed = {o.rstrip("/").lower() for o in settings.cors_origins if o != "*"}
    fix = "open the page from this server, add its origin to RAG_CORS_ORIGINS, or set RAG_API_KEYS"
    if origin is not None:
        o = origin.strip().rstrip("/").lower()
        if o in allowed:
            return ""
        scheme = urlsplit(o).scheme if "://" in o else ""
        mine = _host_port(request.headers.get("host", ""), scheme or "http")
        theirs = _host_port(o.split("://", 1)[1], scheme) if scheme in _DEFAULT_PORT else None
        if theirs is None or mine is None or theirs != mine:
            return f"cross-site write refused: the request comes from a page at {origin[:100]}, not from this " \
                   f"server; {fix}"
        if _rebindable(theirs[0]):
            return f"cross-site write refused: a page at {origin[:100]} (a DNS name, which another site can " \
                   f"point at this machine) may not write without a key; {fix}"
        return ""
    if site and site not in ("same-origin", "none"):
        return f"cross-site write refused: Sec-Fetch-Site is {site[:20]}; {fix}"
    return ""


# -- rate limits -----------------------------------------------------------------------------------------------
class RateLimiter:
    """Sliding one-minute window per identity; returns seconds to wait, 0 when allowed."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, who: str) -> float:
        if self.per_minute <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            q = self._hits.setdefault(who, deque())
            while q and now - q[0] > 60:
                q.popleft()
            if len(q) >= self.per_minute:
                return 60 - (now - q[0])
            q.append(now)
            if len(self._hits) > 10000:  # bound memory: drop idle identities
                for k in [k for k, v in self._hits.items() if not v or now - v[-1] > 60]:
                    del self._hits[k]
            return 0.0


# -- request body limit ----------------------------------------------------------------------------------------
class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")
        self.limit = limit


def _too_large_message(limit: int) -> bytes:
    return json.dumps({"error": "TooLarge", "message": f"request body over {limit} bytes"}).encode()


class BodyLimitMiddleware:
    """413 when a request body passes ``limit_for(path)`` bytes: at once from a Content-Length, else while
    reading (chunked bodies and lying clients): the bytes received are counted and reading stops there."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = int(self.limit_for(scope.get("path", "")))
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                if not v.isdigit() or int(v) > limit:
                    await self._reject(send, limit)
                    return
                break
        received, started = 0, False

        async def counted() -> Message:
            nonlocal received
            if received > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watch)
        except BodyTooLarge:  # not turned into a response on the way out (e.g. read in a middleware)
            if started:
                raise
            await self._reject(send, limit)

    @staticmethod
    async def _reject(send: Send, limit: int) -> None:
        body = _too_large_message(limit)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


# -- security headers ------------------------------------------------------------------------------------------
# The web page (api/web/) loads its scripts and styles from /static and has no inline script, style or
# event-handler attribute; it only talks to this server.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# FastAPI's /docs and /redoc pages: an inline bootstrap script and their bundles from cdn.jsdelivr.net.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
            "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https:; connect-src 'self'; "
            "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"), (b"cross-origin-opener-policy", b"same-origin"),
                    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=()")]


class SecurityHeadersMiddleware:
    """Security headers on every HTTP response (headers a route set itself are kept)."""

    def __init__(self, app: ASGIApp, docs_paths: frozenset[str] = frozenset()) -> None:
        self.app, self.docs_paths = app, docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = (DOCS_CSP if scope.get("path", "") in self.docs_paths else CSP).encode()

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in [*SECURITY_HEADERS, (b"content-security-policy", csp)]
                            if k not in have]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, add_headers)
