"""Milvus vector store (pymilvus), for milvus-lite (a local folder) or a Milvus server/cluster.

One collection holds one index version: primary key ``id`` (INT64, the chunk id shared with BM25 and
chunks.jsonl) and ``vector`` (FLOAT_VECTOR, unit vectors, metric IP = cosine).

Where the data lives (see docs/milvus.md):

- **milvus-lite** (default: no ``uri``, or a ``uri`` ending in ``.db``): the data is a folder
  ``milvus.db/`` inside the index version folder. ``build()`` fills a private temp copy;
  ``save(folder)`` closes it (milvus-lite flushes and drains its background index builds on close),
  copies it to ``folder/milvus.db`` and records ``{"store": "milvus", "uri": "milvus.db", ...}`` in
  ``folder/dense.json`` with the path relative to the folder, so ``rag.index.store`` can rename the folder.
  ``load(folder)`` opens ``folder/milvus.db`` in place and never writes to it: the first
  ``add``/``remove`` on a loaded store copies it to a private temp folder first (versions are
  immutable). milvus-lite takes an exclusive per-process lock on the folder, so when another process
  (e.g. the API server) has the same version open, ``load`` opens a private copy instead.
- **server / cluster** (``uri`` = ``http://host:19530``; token from ``RAG_MILVUS_TOKEN``): one
  collection per version (``rag_<stamp>``), recorded in dense.json; the data stays on the server.
  ``set_alias()`` points a stable alias at a version's collection atomically; ``drop()`` deletes one.

Settings (env, read here so no config change is needed): ``RAG_MILVUS_URI`` (server uri for new
stores; also overrides the server uri recorded in dense.json on load), ``RAG_MILVUS_TOKEN``
(``user:password`` or an API key), ``RAG_MILVUS_INDEX_TYPE`` (default FLAT on milvus-lite, AUTOINDEX
on a server).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

DB_DIR = "milvus.db"  # milvus-lite data folder inside a version folder (pymilvus needs the .db suffix)
LITE_COLLECTION = "chunks"
ID, VEC = "id", "vector"
FILTER_CHUNK = 10_000  # ids per `id in [...]` expression (allowed lists and reconstruct are chunked)
MAX_TOPK = 16_384  # Milvus' limit on `limit`
INSERT_BYTES = 4 << 20  # rows per insert request: about 4 MB of vectors
PAD_SCORE = -np.finfo(np.float32).max  # what FAISS returns beside id -1


def _env(name: str) -> str:
    return os.environ.get(f"RAG_MILVUS_{name}", "").strip()


def is_server_uri(uri: str | None) -> bool:
    return bool(uri) and str(uri).startswith(("http://", "https://", "tcp://", "unix:"))


# ---- milvus-lite servers: one in-process server per data folder, shared by refcount ---------------
_refs: dict[str, int] = {}
_refs_lock = threading.Lock()


def _lite_acquire(path: str) -> None:
    with _refs_lock:
        _refs[path] = _refs.get(path, 0) + 1


def _lite_release(path: str) -> None:
    with _refs_lock:
        n = _refs.get(path, 0) - 1
        if n > 0:
            _refs[path] = n
            return
        _refs.pop(path, None)
    try:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(path)  # closes the db: flush, drain bg tasks, unlock
    except Exception:  # noqa: BLE001 - best effort at teardown
        logger.debug("releasing milvus-lite server for %s failed", path, exc_info=True)


def _locked_elsewhere(path: str) -> bool:
    """True when another process holds milvus-lite's LOCK on ``path`` (an exclusive flock)."""
    with _refs_lock:
        if path in _refs:
            return False  # open in this process: pymilvus reuses our server
    lock = os.path.join(path, "LOCK")
    if not os.path.exists(lock):
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _copy_lite(src: str, dst: str) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("LOCK"))


class _Conn:
    """The open client and what to clean up; kept apart from the store so weakref.finalize can run it."""

    def __init__(self, uri: str, token: str, lite: bool, owned_dir: str | None) -> None:
        self.uri, self.token, self.lite, self.owned_dir = uri, token, lite, owned_dir
        self.client: Any = None
        self._lock = threading.Lock()

    def open(self, load: str | None = None) -> Any:
        """The client, connecting on first use; ``load`` names a collection to load when connecting."""
        if self.client is not None:
            return self.client
        with self._lock:
            if self.client is not None:
                return self.client
            from pymilvus import MilvusClient

            if self.lite:
                _lite_acquire(self.uri)
            client = None
            try:
                client = MilvusClient(uri=self.uri, token=self.token)
                if load:  # milvus-lite reopens collections released; load is a no-op if already loaded
                    client.load_collection(load)
            except Exception:
                if client is not None:
                    client.close()
                if self.lite:
                    _lite_release(self.uri)
                raise
            self.client = client
        return self.client

    def close(self) -> None:
        """Close the client; for milvus-lite also stop the folder's server (flushes it, drops the lock)."""
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001
                logger.debug("closing milvus client failed", exc_info=True)
            self.client = None
            if self.lite:
                _lite_release(self.uri)

    def dispose(self) -> None:
        self.close()
        if self.owned_dir:
            shutil.rmtree(self.owned_dir, ignore_errors=True)
            self.owned_dir = None


class MilvusStore:
    """VectorStore over one Milvus collection. ``kind`` is "milvus"; ``index_type`` is Milvus' index."""

    kind = "milvus"

    def __init__(self, dim: int, uri: str, collection: str, *, token: str = "", lite: bool = True,
                 owned_dir: str | None = None, shared: bool = False, index_type: str = "FLAT",
                 ntotal: int | None = None) -> None:
        self.dim, self.collection, self.index_type = dim, collection, index_type
        self._conn = _Conn(uri, token, lite, owned_dir)
        self._shared = shared  # opened in place inside a version folder: copy before any write
        self._ntotal = ntotal
        self._finalizer = weakref.finalize(self, _Conn.dispose, self._conn)

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vectors: np.ndarray, uri: str | None = None,
              collection: str | None = None, token: str | None = None, index_type: str | None = None,
              kind: str | None = None) -> MilvusStore:
        """A new collection holding ``vectors`` under ``ids``. ``kind`` (a FAISS index kind) is ignored."""
        uri = uri or _env("URI") or None
        token = token if token is not None else _env("TOKEN")
        if is_server_uri(uri):
            assert uri is not None
            collection = collection or f"rag_{time.strftime('%Y%m%dT%H%M%S')}_{time.time_ns() % 10**9:09d}"
            store = cls(dim, uri, collection, token=token, lite=False,
                        index_type=index_type or _env("INDEX_TYPE") or "AUTOINDEX")
        else:
            owned = None
            if uri is None:
                owned = tempfile.mkdtemp(prefix="rag-milvus-")
                uri = os.path.join(owned, DB_DIR)
            elif not str(uri).endswith(".db"):
                raise ValueError(f"milvus uri {uri!r}: give http(s)://host:port for a server or a path "
                                 "ending in .db for milvus-lite")
            store = cls(dim, os.path.abspath(uri), collection or LITE_COLLECTION, lite=True, owned_dir=owned,
                        index_type=index_type or _env("INDEX_TYPE") or "FLAT")
        store._create()
        if len(ids):
            store.add(ids, vectors)
        return store

    def _create(self) -> None:
        from pymilvus import DataType

        c = self._conn.open()
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(ID, DataType.INT64, is_primary=True)
        schema.add_field(VEC, DataType.FLOAT_VECTOR, dim=self.dim)
        params = c.prepare_index_params()
        params.add_index(field_name=VEC, index_type=self.index_type, metric_type="IP")
        # Strong: a search right after an insert sees it (a server defaults to Bounded staleness)
        c.create_collection(self.collection, schema=schema, index_params=params, consistency_level="Strong")
        self._ntotal = 0

    @classmethod
    def load(cls, folder: Path) -> MilvusStore:
        meta = json.loads((Path(folder) / "dense.json").read_text())
        dim, collection = int(meta["dim"]), str(meta["collection"])
        index_type = str(meta.get("index_type", "FLAT"))
        uri = str(meta["uri"])
        if is_server_uri(uri):
            store = cls(dim, _env("URI") or uri, collection, token=_env("TOKEN"), lite=False,
                        index_type=index_type)
        else:
            path = os.path.abspath(Path(folder) / uri)  # relative to the (possibly renamed) folder
            if not os.path.isdir(path):
                raise FileNotFoundError(f"milvus-lite data {path} is missing")
            if not _locked_elsewhere(path):
                store = cls(dim, path, collection, shared=True, index_type=index_type)
                try:
                    store._client()
                    return store
                except Exception as e:  # e.g. a read-only index folder, or a lock race
                    store.close()
                    logger.warning("cannot open %s in place (%s): searching a private copy", path, e)
            else:
                logger.info("%s is open in another process: searching a private copy", path)
            owned = tempfile.mkdtemp(prefix="rag-milvus-")
            _copy_lite(path, os.path.join(owned, DB_DIR))
            store = cls(dim, os.path.join(owned, DB_DIR), collection, owned_dir=owned, index_type=index_type)
        store._client()
        return store

    # ---- VectorStore ------------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        return self._conn.uri

    @property
    def ntotal(self) -> int:
        if self._ntotal is None:
            res = self._client().query(self.collection, filter="", output_fields=["count(*)"])
            self._ntotal = int(res[0]["count(*)"])
        return self._ntotal

    def _client(self) -> Any:
        return self._conn.open(load=self.collection)

    def _writable(self) -> Any:
        """Copy-on-write: a store opened in place in a version folder moves to a private copy first."""
        if self._shared:
            src = self._conn.uri
            owned = tempfile.mkdtemp(prefix="rag-milvus-")
            dst = os.path.join(owned, DB_DIR)
            _copy_lite(src, dst)
            self._conn.close()
            self._finalizer.detach()
            self._conn = _Conn(dst, "", True, owned)
            self._finalizer = weakref.finalize(self, _Conn.dispose, self._conn)
            self._shared = False
        return self._client()

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(ids, np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(len(ids), self.dim)
        if not len(ids):
            return
        c = self._writable()
        step = max(1, INSERT_BYTES // (4 * self.dim))
        for s in range(0, len(ids), step):
            rows = [{ID: int(i), VEC: v} for i, v in zip(ids[s : s + step].tolist(), vectors[s : s + step],
                                                                  strict=True)]
            c.insert(self.collection, rows)
        self._ntotal = None

    def remove(self, ids: np.ndarray) -> int:
        ids = np.unique(np.asarray(ids, np.int64))
        if not len(ids):
            return 0
        present = self._present(ids)
        if not len(present):
            return 0
        c = self._writable()
        for s in range(0, len(present), FILTER_CHUNK):
            c.delete(self.collection, ids=present[s : s + FILTER_CHUNK].tolist())
        self._ntotal = None
        return int(len(present))

    def _present(self, ids: np.ndarray) -> np.ndarray:
        found: list[int] = []
        for s in range(0, len(ids), FILTER_CHUNK):
            part = ids[s : s + FILTER_CHUNK].tolist()
            found += [int(r[ID]) for r in self._client().get(self.collection, ids=part, output_fields=[ID])]
        return np.array(sorted(set(found)), np.int64)

    def search(self, queries: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, np.float32).reshape(-1, self.dim)
        n = len(q)
        scores = np.full((n, k), PAD_SCORE, np.float32)
        labels = np.full((n, k), -1, np.int64)
        if k <= 0 or n == 0:
            return scores, labels
        limit = min(k, MAX_TOPK)
        params: dict[str, Any] = {"metric_type": "IP"}
        if self.index_type.upper().startswith("HNSW"):
            params["params"] = {"ef": max(64, limit)}
        if allowed is None:
            parts: list[list[list[tuple[float, int]]]] = [self._search(q, limit, params, "")]
        else:
            allow = np.unique(np.asarray(allowed, np.int64))
            if not len(allow):
                return scores, labels
            parts = [self._search(q, min(limit, FILTER_CHUNK), params,
                                  f"{ID} in [{','.join(map(str, allow[s : s + FILTER_CHUNK].tolist()))}]")
                     for s in range(0, len(allow), FILTER_CHUNK)]
        for row in range(n):
            hits = [h for p in parts for h in p[row]]
            if len(parts) > 1:
                hits.sort(key=lambda h: -h[0])
            for j, (score, cid) in enumerate(hits[:k]):
                scores[row, j], labels[row, j] = score, cid
        return scores, labels

    def _search(self, q: np.ndarray, limit: int, params: dict[str, Any],
                expr: str) -> list[list[tuple[float, int]]]:
        res = self._client().search(self.collection, data=list(q), limit=limit, filter=expr,
                                    output_fields=[ID], search_params=params, anns_field=VEC)
        return [[(float(h["distance"]), int(h["id"])) for h in hits] for hits in res]

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, np.int64).reshape(-1)
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        uniq = np.unique(ids)
        got: dict[int, Any] = {}
        for s in range(0, len(uniq), FILTER_CHUNK):
            part = uniq[s : s + FILTER_CHUNK].tolist()
            for r in self._client().get(self.collection, ids=part, output_fields=[VEC]):
                got[int(r[ID])] = r[VEC]
        missing = [int(i) for i in uniq if int(i) not in got]
        if missing:
            raise KeyError(f"ids not in the Milvus collection {self.collection!r}: {missing[:10]}")
        return np.asarray([got[int(i)] for i in ids], np.float32).reshape(len(ids), self.dim)

    def save(self, folder: Path) -> None:
        """Write ``dense.json`` (and, for milvus-lite, a closed copy of the data) into ``folder``."""
        folder = Path(folder)
        meta: dict[str, Any] = {"store": "milvus", "collection": self.collection, "dim": self.dim,
                                "metric": "IP", "index_type": self.index_type, "ntotal": self.ntotal}
        if self._conn.lite:
            if not self._shared:
                self._conn.close()  # flush + drain background index builds, so the folder copy is complete
            _copy_lite(self._conn.uri, str(folder / DB_DIR))  # reopened lazily on next use
            meta["uri"] = DB_DIR  # relative: the version folder is renamed after save
        else:
            self._client().flush(self.collection)
            meta["uri"] = self._conn.uri  # never the token
        (folder / "dense.json").write_text(json.dumps(meta))

    # ---- extras -----------------------------------------------------------------------------------
    def set_alias(self, alias: str) -> None:
        """Point ``alias`` at this collection (atomic on the server: readers of the alias switch at once)."""
        c = self._client()
        if alias in c.list_aliases(collection_name=self.collection).get("aliases", []):
            return
        try:
            c.describe_alias(alias)
            exists = True
        except Exception:  # noqa: BLE001 - pymilvus raises when the alias is unknown
            exists = False
        (c.alter_alias if exists else c.create_alias)(self.collection, alias)

    def drop(self) -> None:
        """Delete this collection (a server version being pruned); milvus-lite folders are just removed."""
        self._client().drop_collection(self.collection)
        self._ntotal = 0

    def close(self) -> None:
        """Close the connection and remove any private temp copy (also done when garbage-collected)."""
        self._finalizer()

    def __repr__(self) -> str:
        where = self._conn.uri if self._conn.lite else f"{self._conn.uri} (server)"
        return f"MilvusStore({self.collection!r} at {where}, dim={self.dim}, index={self.index_type})"
