"""Bearer JWTs from an identity provider (issue 20), verified with PyJWT against a JWKS file or URL.

RAG_JWT_JWKS_FILE names the key set (a file, re-read when it changes, or an https URL fetched and cached by
PyJWT); RAG_JWT_ISSUER and RAG_JWT_AUDIENCE are required claims when set; ``exp`` is always required. The
role comes from the RAG_JWT_ROLE_CLAIM claim (reader|editor|admin), the collections from
RAG_JWT_COLLECTIONS_CLAIM (a list or a comma-separated string, ``*`` = all). Any failure is a 401 naming the
reason (unknown key id, bad signature, expired, wrong issuer or audience, missing or bad claim).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path
from typing import Any

import jwt

from api.principals import ROLES, Principal, scope
from api.security import AuthError
from rag.core.config import Settings
from rag.core.errors import ConfigError

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
JWT_RE = re.compile(r"^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


def looks_like_jwt(token: str) -> bool:
    return bool(JWT_RE.match(token))


def _unauthorized(reason: str) -> AuthError:
    return AuthError(401, f"bearer token refused: {reason}", {"WWW-Authenticate": 'Bearer error="invalid_token"'})


class TokenVerifier:
    def __init__(self, jwks: str, issuer: str = "", audience: str = "", role_claim: str = "role",
                 collections_claim: str = "collections") -> None:
        self.jwks, self.issuer, self.audience = jwks, issuer, audience
        self.role_claim, self.collections_claim = role_claim, collections_claim
        self._client = jwt.PyJWKClient(jwks) if jwks.startswith("https://") else None
        self._keys: dict[str, Any] = {}
        self._mtime: float | None = None
        self._lock = threading.Lock()
        if self._client is None:
            self._load()

    @classmethod
    def from_settings(cls, s: Settings) -> TokenVerifier | None:
        if not s.jwt_jwks_file:
            return None
        return cls(s.jwt_jwks_file, s.jwt_issuer, s.jwt_audience, s.jwt_role_claim, s.jwt_collections_claim)

    def _load(self) -> None:
        path = Path(self.jwks)
        try:
            mtime = path.stat().st_mtime
            if mtime == self._mtime:
                return
            data = json.loads(path.read_text(encoding="utf-8"))
            keys = {k.key_id or "": k for k in jwt.PyJWKSet.from_dict(data).keys}
        except (OSError, ValueError, jwt.PyJWKError) as e:
            if self._mtime is None:
                raise ConfigError(f"JWKS file {path} cannot be used: {e}") from None
            return  # a bad edit keeps the keys of before
        self._keys, self._mtime = keys, mtime

    def _signing_key(self, token: str) -> Any:
        try:
            kid = jwt.get_unverified_header(token).get("kid") or ""
        except jwt.PyJWTError as e:
            raise _unauthorized(f"malformed token ({e})") from None
        if self._client is not None:
            try:
                return self._client.get_signing_key(kid).key
            except jwt.PyJWKClientError as e:
                raise _unauthorized(f"unknown signing key ({e})") from None
        with self._lock:
            self._load()
            key = self._keys.get(kid) or (next(iter(self._keys.values())) if not kid and len(self._keys) == 1
                                          else None)
        if key is None:
            raise _unauthorized(f"unknown signing key id {kid[:40]!r}")
        return key.key

    def verify(self, token: str) -> Principal:
        key = self._signing_key(token)
        try:
            claims = jwt.decode(token, key, algorithms=ALGORITHMS, audience=self.audience or None,
                                issuer=self.issuer or None, leeway=30,
                                options={"require": ["exp", *(["iss"] if self.issuer else []),
                                                     *(["aud"] if self.audience else [])],
                                         "verify_aud": bool(self.audience)})
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the token has expired") from None
        except jwt.InvalidSignatureError:
            raise _unauthorized("the signature does not verify") from None
        except jwt.InvalidIssuerError:
            raise _unauthorized("wrong issuer") from None
        except jwt.InvalidAudienceError:
            raise _unauthorized("wrong audience") from None
        except jwt.PyJWTError as e:
            raise _unauthorized(str(e)) from None
        return self.principal(claims)

    def principal(self, claims: dict[str, Any]) -> Principal:
        role = claims.get(self.role_claim)
        if role not in ROLES:
            raise _unauthorized(f"claim {self.role_claim!r} must be one of {', '.join(ROLES)}")
        raw = claims.get(self.collections_claim, [])
        cols = [c.strip() for c in raw.split(",")] if isinstance(raw, str) else raw
        if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
            raise _unauthorized(f"claim {self.collections_claim!r} must be a list of collection names")
        sub = str(claims.get("sub") or "")
        if not sub:
            raise _unauthorized("the token has no subject (sub)")
        owner = "jwt-" + hashlib.sha256(f"{claims.get('iss', '')}|{sub}".encode()).hexdigest()[:12]
        return Principal(f"jwt:{sub[:64]}", role, scope([c for c in cols if c]), owner=owner, source="jwt")
