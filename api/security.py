"""API keys, per-key rate limits. Keys come from settings (RAG_API_KEYS='["k1","k2"]')."""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque

from fastapi import Request

from rag.core.config import Settings

LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}


class AuthError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _key_ok(given: str | None, keys: list[str]) -> bool:
    return bool(given) and any(hmac.compare_digest(given or "", k) for k in keys)


def check_access(request: Request, settings: Settings, write: bool) -> str:
    """Return the caller identity (key or client address) or raise AuthError (401/403)."""
    given = request.headers.get("x-api-key") or _bearer(request)
    client = request.client.host if request.client else ""
    if write or settings.read_keys_required:
        if settings.api_keys:
            if not given:
                raise AuthError(401, "this endpoint needs an API key: send it in the X-API-Key header",
                                {"WWW-Authenticate": "ApiKey"})
            if not _key_ok(given, settings.api_keys):
                raise AuthError(403, "the API key is not valid")
        elif write and client not in LOOPBACK:
            raise AuthError(403, "writes are only allowed from this machine until RAG_API_KEYS is set")
    return f"key:{given}" if given else f"ip:{client}"


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


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
