"""Principals (issue 20): named API keys with a role and the collections they may read and write.

Sources, merged by name (a later one wins):

* ``RAG_API_KEYS`` (the keys of before): each is an ``admin`` of every collection, named ``key-<sha8>``;
* ``RAG_PRINCIPALS``: a JSON list of entries as in the keys file;
* ``RAG_KEYS_FILE``: a JSON (``{"keys": [...]}``) or TOML (``[[keys]]``) file of entries
  ``{name, role: reader|editor|admin, collections: ["A", "B"] | ["*"], hash}``, re-read when its mtime changes
  (rotate a key by editing the file; no restart). A file that does not parse stops the server at startup with
  the line number; a later bad edit keeps the keys of before and logs the error.

Only hashes are stored: ``sha256:<hex>`` of the key, or ``pbkdf2_sha256$<iterations>$<salt>$<hex>``
(``python -m api.keys add`` writes these and prints the key once). Keys made by it look like
``rk_<kid>_<secret>``: the ``kid`` names the one entry to verify, so a wrong key costs one PBKDF2 at most.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.conversations import owner_name
from rag.core.config import Settings
from rag.core.errors import ConfigError

logger = logging.getLogger("api")
ROLES = ("reader", "editor", "admin")
ALL = "*"
KEY_RE = re.compile(r"^rk_([0-9a-f]{8})_[A-Za-z0-9_-]{20,}$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``collections`` None = every collection. ``owner`` names its stored conversations."""

    name: str
    role: str
    collections: frozenset[str] | None
    owner: str = ""
    source: str = "key"  # key | jwt | dify | anonymous | local

    def can_read(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections

    def can_write(self, collection: str) -> bool:
        return self.role == "admin" or (self.role == "editor" and self.can_read(collection))

    @property
    def authenticated(self) -> bool:
        return self.source not in ("anonymous", "local")


def scope(collections: list[str] | tuple[str, ...] | None) -> frozenset[str] | None:
    cols = [str(c) for c in (collections or [])]
    return None if ALL in cols else frozenset(cols)


def hash_key(key: str, iterations: int = 100_000, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", key.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify(key: str, stored: str) -> bool:
    """Constant-time check of ``key`` against a stored hash (``sha256:`` or ``pbkdf2_sha256$``)."""
    if stored.startswith("sha256:"):
        return hmac.compare_digest(hashlib.sha256(key.encode()).hexdigest(), stored[7:].lower())
    parts = stored.split("$")
    if len(parts) == 4 and parts[0] == "pbkdf2_sha256" and parts[1].isdigit():
        digest = hashlib.pbkdf2_hmac("sha256", key.encode(), bytes.fromhex(parts[2]), int(parts[1]))
        return hmac.compare_digest(digest.hex(), parts[3].lower())
    return False


@dataclass(frozen=True)
class Entry:
    principal: Principal
    hash: str
    kid: str = ""


def parse_entry(raw: Any, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: each key entry is a table/object with name, role, collections and hash")
    name, role, h = str(raw.get("name", "")).strip(), str(raw.get("role", "reader")), str(raw.get("hash", ""))
    cols = raw.get("collections", [ALL])
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name):
        raise ConfigError(f"{where}: name {name[:40]!r} must be 1-64 letters, digits, _ . @ -")
    if role not in ROLES:
        raise ConfigError(f"{where}: role {role[:20]!r} of {name} is not one of {', '.join(ROLES)}")
    if not isinstance(cols, list) or not all(isinstance(c, str) and c for c in cols):
        raise ConfigError(f"{where}: collections of {name} must be a list of names (or [\"*\"])")
    if not (h.startswith("sha256:") or h.startswith("pbkdf2_sha256$")):
        raise ConfigError(f"{where}: hash of {name} must be sha256:<hex> or pbkdf2_sha256$... (never the key "
                          "itself): make one with `python -m api.keys add`")
    p = Principal(name, role, scope(cols), owner=f"p-{name}")
    return Entry(p, h, str(raw.get("kid", "")))


def read_keys_file(path: Path) -> list[Entry]:
    """Entries of a JSON or TOML keys file; ConfigError naming the line of a syntax error."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"keys file {path} does not parse: line {e.lineno}, column {e.colno}: {e.msg}") from None
    else:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            raise ConfigError(f"keys file {path}: TOML needs Python 3.11; write it as JSON") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:  # its message ends "(at line N, column M)"
            raise ConfigError(f"keys file {path} does not parse: {e}") from None
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list):
        raise ConfigError(f"keys file {path}: expected a 'keys' list ([[keys]] in TOML, {{\"keys\": []}} in JSON)")
    return [parse_entry(k, f"keys file {path}, key {i + 1}") for i, k in enumerate(keys)]


class KeyRing:
    """The principals of settings and the keys file; ``lookup`` re-reads the file when its mtime changed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = Path(settings.keys_file) if settings.keys_file else None
        self._static = [Entry(Principal(owner_name(k), "admin", None, owner=owner_name(k)), "plain:" + k)
                        for k in settings.api_keys]
        self._static += [parse_entry(raw, f"RAG_PRINCIPALS entry {i + 1}") for i, raw in enumerate(settings.principals)]
        self._file: list[Entry] = []
        self._mtime: float | None = None
        self._verified: dict[str, Principal] = {}  # sha256 of a verified key -> its principal (this generation)
        self._lock = threading.Lock()
        if self.path is not None:
            self._load(strict=True)

    @property
    def enabled(self) -> bool:
        """Any key configured: requests without one are anonymous readers (or refused)."""
        return bool(self._static or self._file or self.path is not None)

    @property
    def scoped(self) -> bool:
        return any(e.principal.collections is not None for e in self._entries())

    def _entries(self) -> list[Entry]:
        by_name = {e.principal.name: e for e in [*self._static, *self._file]}
        return list(by_name.values())

    def _load(self, strict: bool = False) -> None:
        assert self.path is not None
        try:
            mtime = self.path.stat().st_mtime
        except OSError as e:
            if strict:
                raise ConfigError(f"keys file {self.path} cannot be read: {e.strerror}") from None
            return
        if mtime == self._mtime:
            return
        try:
            entries = read_keys_file(self.path)
        except ConfigError as e:
            if strict:
                raise
            logger.error("%s; the keys of before stay in use", e.message)
            self._mtime = mtime
            return
        self._file, self._mtime, self._verified = entries, mtime, {}
        logger.info("keys file %s: %d principals", self.path, len(entries))

    def lookup(self, key: str) -> Principal | None:
        if not key or len(key) > 512:
            return None
        with self._lock:
            if self.path is not None:
                self._load()
            digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
            if digest in self._verified:
                return self._verified[digest]
            found = self._find(key)
            if found is not None and len(self._verified) < 10_000:
                self._verified[digest] = found
            return found

    def _find(self, key: str) -> Principal | None:
        m = KEY_RE.match(key)
        found: Principal | None = None
        for e in self._entries():
            if e.hash.startswith("plain:"):  # RAG_API_KEYS: compared in constant time, kept in memory only
                ok = hmac.compare_digest(key.encode("utf-8", "surrogateescape"),
                                         e.hash[6:].encode("utf-8", "surrogateescape"))
            elif e.kid and not (m and m.group(1) == e.kid):
                ok = False  # another key's id: not worth a PBKDF2
            else:
                ok = verify(key, e.hash)
            if ok and found is None:
                found = e.principal
        return found
