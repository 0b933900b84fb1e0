"""Who is calling and what they may do (issue 20): the request's credentials -> a :class:`Principal`.

Needs, from least to most: ``read`` (search, answers, documents), ``user`` (its own conversations and
feedback: any key), ``write`` (uploads, replace, delete, metadata: editor or admin, and only in the editor's
collections, checked by the route with :func:`check_write`), ``admin`` (audit log, questions report).

* A key (``X-API-Key`` or ``Authorization: Bearer``) -> its principal (api/principals.py); a Bearer JWT when
  RAG_JWT_JWKS_FILE is set -> the principal its claims name (api/tokens.py). An unknown key is a 403 (as
  before); a bad token a 401 with the reason.
* No credentials, keys configured: an anonymous reader of RAG_PUBLIC_COLLECTIONS (when reads are open), else 401.
* No keys configured at all: every reader sees everything; writes come from this machine and the same origin
  (api/security.py) as a local admin.

The principal is kept on ``request.state.principal``; :func:`principal_of` resolves it (as a reader) when a
route did not, so nothing reads without a scope.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from api.principals import KeyRing, Principal
from api.security import LOOPBACK, AuthError, client_address, cross_site, key_matches
from api.tokens import TokenVerifier, looks_like_jwt
from rag.core.config import Settings

NEEDS = ("read", "user", "write", "admin")
LOCAL = Principal("local", "admin", None, owner="", source="local")
DIFY = Principal("dify", "reader", None, owner="dify", source="dify")


def setup(state: Any, settings: Settings) -> None:
    """Keys and the JWT verifier on the app state (at startup: a keys file that does not parse stops it)."""
    state.keyring = KeyRing(settings)
    state.tokens = TokenVerifier.from_settings(settings)


def _keyring(request: Request) -> KeyRing:
    ring = getattr(request.app.state, "keyring", None)
    if ring is None:
        setup(request.app.state, request.app.state.settings)
        ring = request.app.state.keyring
    return ring  # type: ignore[no-any-return]


def credentials(request: Request) -> str:
    given = request.headers.get("x-api-key")
    if given:
        return given
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


def identify(request: Request) -> Principal | None:
    """The principal of the request's key or token; None without credentials; AuthError when they are bad."""
    given = credentials(request)
    if not given:
        return None
    settings: Settings = request.app.state.settings
    if settings.dify_api_key and key_matches(given, settings.dify_api_key):
        return DIFY  # Dify's service key (POST /retrieval): a reader of every collection
    tokens: TokenVerifier | None = getattr(request.app.state, "tokens", None)
    if tokens is not None and looks_like_jwt(given):
        return tokens.verify(given)  # AuthError(401, reason) when unknown, expired or wrongly signed
    ring = _keyring(request)
    p = ring.lookup(given)
    if p is None:
        if not ring.enabled and tokens is None:
            return None  # no keys at all: a stray header changes nothing (as before)
        raise AuthError(403, "the API key is not valid")
    return p


def anonymous(settings: Settings, ring: KeyRing) -> Principal:
    cols = settings.public_collections
    scope = (None if "*" in cols else frozenset(cols)) if cols is not None else (
        frozenset() if ring.scoped else None)
    return Principal("anonymous", "reader", scope, owner="anonymous" if ring.enabled else "", source="anonymous")


def authenticate(request: Request, need: str) -> Principal:
    """The caller's principal for ``need`` (one of NEEDS), or AuthError (401/403)."""
    settings: Settings = request.app.state.settings
    ring = _keyring(request)
    p = identify(request)
    enabled = ring.enabled or getattr(request.app.state, "tokens", None) is not None
    if p is None:
        if not enabled:
            if need == "read":
                return anonymous(settings, ring)
            if client_address(request) not in LOOPBACK:
                raise AuthError(403, "writes are only allowed from this machine until RAG_API_KEYS is set")
            refused = cross_site(request, settings)
            if refused:
                raise AuthError(403, refused)
            return LOCAL
        if need != "read" or settings.read_keys_required:
            raise AuthError(401, "this endpoint needs an API key: send it in the X-API-Key header",
                            {"WWW-Authenticate": "ApiKey"})
        return anonymous(settings, ring)
    if need == "write" and p.role not in ("editor", "admin"):
        raise AuthError(403, f"{p.name} is a {p.role}: writing needs an editor or admin key")
    if need == "admin" and p.role != "admin":
        raise AuthError(403, f"{p.name} is a {p.role}: this endpoint needs an admin key")
    return p


def principal_of(request: Request) -> Principal:
    """The principal a guard put on the request, else the caller as a reader (never unscoped by omission)."""
    p = getattr(request.state, "principal", None)
    if p is None:
        p = authenticate(request, "read")
        request.state.principal = p
    return p  # type: ignore[no-any-return]


def check_write(principal: Principal, *collections: str) -> None:
    """403 unless ``principal`` may write to every one of ``collections``."""
    for c in collections:
        if not principal.can_write(c):
            raise AuthError(403, f"{principal.name} may not write to collection {c[:100]!r}")
