"""The Milvus index backend (``RAG_BACKEND=milvus``): every write builds a complete new version collection, then
swaps the alias to it in one call and prunes old versions; readers follow the alias.

A write reads the live version, copies the rows of unchanged documents inside Milvus (their vectors and BM25
tokens as they are: nothing is re-embedded), inserts the new chunks, writes every document record, flushes,
checks the counts and only then swaps the alias. A crash or a Milvus failure before the swap leaves the previous
version live (the half-built collection is dropped). Two replicas writing at once: the one that finds the alias
moved since it started builds again on the newer version (``ATTEMPTS`` times), so neither loses the other's
documents; the check and the swap are two calls, so a window of one round trip remains (docs/milvus.md).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from embeddings.base import Embedder
from rag.core import docmeta
from rag.core.config import Settings
from rag.core.errors import IndexBusyError, IndexNotFoundError, InvalidInputError, NotFoundError
from rag.core.text import tokenize_many
from rag.core.types import Chunk, Document
from rag.index import milvus_expr as E
from rag.index import milvus_schema as S
from rag.index.bm25 import BM25_META
from rag.index.milvus_index import load_version, read_documents
from rag.index.store import IndexData, check_model
from rag.index.update import ChangeReport
from rag.ingest.chunking import assign_pages, chunk_all
from rag.ingest.embed import Progress, embed_chunks
from rag.ingest.validity import link

logger = logging.getLogger(__name__)

ATTEMPTS = 3
INSERT_ROWS = 500
COPY_FIELDS = ["chunk_id", "doc_id", "chunk", "lex", "vector"]


def _fits(value: str, what: str) -> str:
    if len(value.encode("utf-8")) > S.MAX_TEXT:
        raise InvalidInputError(f"{what} is longer than Milvus' {S.MAX_TEXT} bytes: use a smaller RAG_CHUNK_SIZE")
    return value


def chunk_row(c: Chunk, doc: Document, lex: str, vector: Any) -> dict[str, Any]:
    """The row of one chunk: scalar fields of its document (validity as of the write), display JSON, tokens."""
    m = doc.meta
    return {"chunk_id": int(c.chunk_id), "doc_id": c.doc_id, "collection": str(m.get("collection", "default")),
            "path": c.path[:600], "status": docmeta.status(m),
            "date_effective": str(m.get("date_effective") or "")[:32],
            "date_expires": str(m.get("date_expires") or "")[:32],
            "chunk": _fits(json.dumps(c.to_json(), ensure_ascii=False), f"chunk {c.chunk_id} of {c.doc_id}"),
            "lex": _fits(lex, f"the BM25 tokens of chunk {c.chunk_id}"),
            "vector": vector.tolist() if hasattr(vector, "tolist") else vector}


def doc_rows(d: Document) -> list[dict[str, Any]]:
    data = json.dumps(d.__dict__, ensure_ascii=False)
    parts = [data[i : i + S.DOC_PART] for i in range(0, len(data), S.DOC_PART)] or [""]
    return [{"key": f"{n}:{d.doc_id}", "doc_id": d.doc_id, "part": n, "data": p, "v": [0.0, 0.0]}
            for n, p in enumerate(parts)]


class _Moved(Exception):
    """The alias moved while this write was building: build again on the newer version."""


class MilvusBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings, self.alias = settings, settings.milvus_alias
        self.m = S.Milvus(settings.milvus_uri, settings.milvus_token, settings.milvus_timeout)
        self._lock = threading.Lock()  # one writer per process; across replicas, the alias check before the swap

    def live_version(self) -> str | None:
        return self.m.live(self.alias)

    def exists(self) -> bool:
        return self.live_version() is not None

    def load(self) -> IndexData:
        name = self.live_version()
        if name is None:
            raise IndexNotFoundError(f"no index in Milvus at {self.m.uri} (alias {self.alias}): run "
                                     "`RAG_BACKEND=milvus rag ingest PATH`")
        return load_version(self.m, name)

    # ---- writes -------------------------------------------------------------------------------------------
    def build(self, docs: list[Document], embedder: Embedder, progress: Progress | None = None) -> str:
        """A fresh index of ``docs`` (replacing whatever is live): the next version, nothing copied."""
        s = self.settings
        byid = {d.doc_id: d for d in docs}  # the last of duplicate ids wins, as in the file backend
        link(byid)
        chunks = chunk_all(list(byid.values()), s.chunk_size, s.chunk_overlap)
        if not chunks:
            raise InvalidInputError("no indexable text found in the given documents")
        for d in byid.values():
            assign_pages(d, [c for c in chunks if c.doc_id == d.doc_id])
        vectors = embed_chunks(embedder, chunks, s.batch_size, progress)
        with self._lock:
            return self._write(None, byid, chunks, vectors, self._manifest(embedder), set(), retry=False)

    def apply(self, embedder: Embedder, upserts: list[Document], deletes: list[str]) -> ChangeReport:
        """Upsert and delete documents as one new version (the file backend's ``apply_changes``)."""
        with self._lock:
            for attempt in range(ATTEMPTS):
                try:
                    return self._apply(embedder, upserts, deletes)
                except _Moved:
                    logger.info("another writer switched the index while this one built (attempt %d)", attempt + 1)
        raise IndexBusyError(f"the Milvus index (alias {self.alias}) changed {ATTEMPTS} times during this write: "
                             "retry")

    def _apply(self, embedder: Embedder, upserts: list[Document], deletes: list[str]) -> ChangeReport:
        s, rep = self.settings, ChangeReport()
        base = self.live_version()
        cur = load_version(self.m, base) if base else None
        if cur is not None:
            check_model(cur.manifest, embedder.name, embedder.dim)
        docs = dict(cur.documents) if cur else {}
        for doc_id in deletes:
            if doc_id not in docs:
                raise NotFoundError(f"no document {doc_id!r} to delete: list them with GET /v1/documents")
            del docs[doc_id]
            rep.deleted.append(doc_id)
        fresh: list[Document] = []
        for d in upserts:
            old = docs.get(d.doc_id)
            if old is not None and old.meta.get("sha256") == d.meta.get("sha256") and \
                    old.meta.get("collection") == d.meta.get("collection"):
                rep.unchanged.append(d.doc_id)
                continue
            (rep.replaced if old is not None else rep.added).append(d.doc_id)
            docs[d.doc_id] = d
            fresh.append(d)
        if cur is not None and not fresh and not rep.deleted:
            rep.version, rep.chunks = base or "", cur.size
            return rep
        link(docs)
        next_id = int(max(cur.chunks, default=-1)) + 1 if cur else 0
        chunks = chunk_all(fresh, s.chunk_size, s.chunk_overlap, start_id=next_id)
        for d in fresh:
            assign_pages(d, [c for c in chunks if c.doc_id == d.doc_id])
        if fresh and not chunks:
            raise InvalidInputError("no indexable text in the uploaded document(s)")
        vectors = embed_chunks(embedder, chunks, s.batch_size) if chunks else np.zeros((0, embedder.dim))
        gone = set(rep.deleted) | {d.doc_id for d in fresh}
        manifest = dict(cur.manifest) if cur else self._manifest(embedder)
        rep.version = self._write(base, docs, chunks, vectors, manifest, gone)
        rep.chunks = self._count(rep.version)
        logger.info("milvus index update: +%s ~%s -%s -> %s", rep.added, rep.replaced, rep.deleted, rep.version)
        return rep

    def edit(self, doc_id: str, fields: Mapping[str, Any]) -> Document:
        """Edit a document's metadata as a new version (rows copied, nothing re-embedded)."""
        from rag.index.edit import apply_fields

        with self._lock:
            base = self.live_version()
            if base is None:
                raise IndexNotFoundError(f"no index in Milvus at {self.m.uri} (alias {self.alias})")
            manifest = S.read_manifest(self.m, base)
            docs = read_documents(self.m, base)
            if doc_id not in docs:
                raise NotFoundError(f"no document {doc_id!r}: list them with GET /v1/documents")
            apply_fields(docs[doc_id], fields)
            link(docs)
            self._write(base, docs, [], np.zeros((0, int(manifest["dim"]))), manifest, set())
            return docs[doc_id]

    def _manifest(self, embedder: Embedder) -> dict[str, Any]:
        s = self.settings
        return {"model": embedder.name, "dim": embedder.dim, "chunk_size": s.chunk_size, "chunk_overlap":
                s.chunk_overlap, "bm25": dict(BM25_META), "analyzer": S.ANALYZER, "lex_encoding": S.LEX_ENCODING,
                "dense": {"store": "milvus", "metric": "cosine"}, "backend": "milvus"}

    def _count(self, name: str) -> int:
        return int(self.m.call("query", name, filter="", output_fields=["count(*)"],
                                consistency_level="Strong")[0]["count(*)"])

    def _write(self, base: str | None, docs: dict[str, Document], chunks: list[Chunk], vectors: np.ndarray,
               manifest: dict[str, Any], gone: set[str], retry: bool = True) -> str:
        """Build the next version from ``base``'s rows (documents in ``gone`` left out) + ``chunks``, then swap."""
        name = S.version_name(self.alias)
        manifest = {**manifest, "bm25": dict(BM25_META), "analyzer": S.ANALYZER, "lex_encoding": S.LEX_ENCODING}
        S.create_version(self.m, name, int(manifest["dim"]), {**manifest, "complete": False})
        try:
            rows: list[dict[str, Any]] = []
            if base is not None:
                for r in self.m.rows(base, COPY_FIELDS, E.in_strings("doc_id", sorted(gone), negate=True)):
                    c = Chunk.from_json(json.loads(r["chunk"]))
                    if c.doc_id in docs and docs[c.doc_id].title != c.title:
                        c.title = docs[c.doc_id].title  # an edited title: citations show it
                    rows.append(chunk_row(c, docs[c.doc_id], r["lex"], r["vector"]))
            lex = tokenize_many([c.embed_text() for c in chunks])
            rows += [chunk_row(c, docs[c.doc_id], S.lex_text(t), v) for c, t, v in zip(chunks, lex, vectors)]
            for i in range(0, len(rows), INSERT_ROWS):
                self.m.call("insert", name, rows[i : i + INSERT_ROWS])
            n = len(rows)
            drows = [r for d in docs.values() for r in doc_rows(d)]
            for i in range(0, len(drows), INSERT_ROWS):
                self.m.call("insert", S.docs_name(name), drows[i : i + INSERT_ROWS])
            for coll in (name, S.docs_name(name)):
                self.m.call("flush", coll)  # milvus-lite reads unflushed rows slowly; a server seals segments
            if self._count(name) != n:
                raise IndexBusyError(f"Milvus version {name} holds {self._count(name)} chunks, {n} were written")
            S.set_manifest(self.m, name, {**manifest, "complete": True, "n_chunks": n, "n_documents": len(docs),
                                          "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
            if self.live_version() != base and retry:
                raise _Moved()
            S.swap_alias(self.m, self.alias, name)
        except BaseException:
            S.drop_version(self.m, name)
            raise
        dropped = S.prune(self.m, self.alias, keep=name)
        logger.info("milvus index version %s live (%d chunks, %d documents); pruned %s", name, n, len(docs), dropped)
        return name


def ingest_path(settings: Settings, path: Any, collection: str, rebuild: bool,
                progress: Progress | None = None) -> tuple[str, list[Any]]:
    """``rag ingest PATH`` on the Milvus backend: a fresh version (``--rebuild``, or no index yet) or the changes
    as one new version. Returns the message and the files that could not be read."""
    from embeddings.factory import create_embedder
    from rag.ingest.loaders import load_path

    s = settings
    docs, failures = load_path(path, meta={"collection": collection})
    embedder = create_embedder(s.embedder, s.models_dir, s.model_name, s.dtype, s.batch_size, s.torch_threads,
                               s.query_backend)
    backend = MilvusBackend(s)
    where = f"Milvus {s.milvus_uri} (alias {s.milvus_alias})"
    if rebuild or not backend.exists():
        name = backend.build(docs, embedder, progress)
        return f"indexed {len(docs)} documents -> {where}: collection {name}", failures
    rep = backend.apply(embedder, docs, [])
    return (f"added {len(rep.added)}, replaced {len(rep.replaced)}, unchanged {len(rep.unchanged)} -> {where}: "
            f"collection {rep.version} ({rep.chunks} chunks)"), failures


def import_index(backend: MilvusBackend, index: IndexData) -> str:
    """A new live version holding a file-backend version as it is (same chunk ids, vectors and documents; BM25
    tokens made again by this release's tokenizer): moving an index into Milvus without re-embedding it."""
    chunks = [index.chunks[int(i)] for i in sorted(index.chunks)]
    vectors = index.dense.reconstruct(np.array([c.chunk_id for c in chunks], np.int64))
    keep = ("model", "dim", "chunk_size", "chunk_overlap")
    manifest = {**{k: index.manifest[k] for k in keep if k in index.manifest}, "analyzer": S.ANALYZER,
                "lex_encoding": S.LEX_ENCODING, "dense": {"store": "milvus", "metric": "cosine"}, "backend": "milvus",
                "imported_from": str(index.path)}
    with backend._lock:
        return backend._write(None, dict(index.documents), chunks, vectors, manifest, set(), retry=False)
