"""Incremental index changes: add, replace and delete documents without re-embedding the rest.

Unchanged chunks keep their ids and vectors (read back from the FAISS IndexIDMap2); only new text
is embedded; BM25 is re-fitted over the token lists (cheap next to embedding). The result is
written as a new index version and switched atomically, so readers never see a half-written
index and a crash leaves the last good version.

The whole read-modify-write holds the index folder's lock (``rag.index.lock``), and the version it starts
from is read after taking it: an upload racing a `rag ingest` on the same folder waits for it and then
builds on its result, instead of one of them switching to a version that lacks the other's documents.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.base import Embedder
from rag.core.errors import InvalidInputError, NotFoundError
from rag.core.types import Document
from rag.index import store
from rag.index.bm25 import BM25_META, build_bm25, read_tokens, same_tokenizer
from rag.index.lock import index_lock
from rag.index.vectors import build_store
from rag.ingest.chunking import assign_pages, chunk_all
from rag.ingest.embed import embed_chunks
from rag.ingest.validity import link

logger = logging.getLogger(__name__)


@dataclass
class ChangeReport:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    version: str = ""
    chunks: int = 0


def apply_changes(index_dir: Path, embedder: Embedder, upserts: list[Document], deletes: list[str],
                  chunk_size: int = 300, overlap: int = 1, batch_size: int = 32, index_kind: str = "auto",
                  vector_store: str = "faiss") -> ChangeReport:
    """Upsert documents (same doc_id = new version) and delete doc ids, as one new index version.

    Holds the index folder's write lock throughout; a ``current`` that points nowhere is an
    ``IndexCorruptError`` (never a silent fresh index that drops every earlier document)."""
    with index_lock(index_dir):
        return _apply(index_dir, embedder, upserts, deletes, chunk_size, overlap, batch_size, index_kind,
                      vector_store)


def _apply(index_dir: Path, embedder: Embedder, upserts: list[Document], deletes: list[str], chunk_size: int,
           overlap: int, batch_size: int, index_kind: str, vector_store: str) -> ChangeReport:
    rep = ChangeReport()
    current = store.load(index_dir) if store.check_current(index_dir) else None  # the latest, under the lock
    if current is not None:
        store.check_model(current.manifest, embedder.name, embedder.dim)
    docs = dict(current.documents) if current else {}
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
            rep.unchanged.append(d.doc_id)  # same content: a no-op
            continue
        (rep.replaced if old is not None else rep.added).append(d.doc_id)
        docs[d.doc_id] = d
        fresh.append(d)
    if not fresh and not rep.deleted:
        rep.version = current.path.name if current else ""
        rep.chunks = current.size if current else 0
        return rep
    link(docs)  # which document supersedes which, over the documents of the new version
    gone = set(rep.deleted) | {d.doc_id for d in fresh}
    kept = [c for c in (current.chunks.values() if current else []) if c.doc_id not in gone]
    kept_ids = np.array([c.chunk_id for c in kept], dtype=np.int64)
    kept_vecs = (current.dense.reconstruct(kept_ids) if current is not None and len(kept)
                 else np.zeros((0, embedder.dim), np.float32))
    next_id = int(max(current.chunks, default=-1)) + 1 if current else 0
    new_chunks = chunk_all(fresh, chunk_size, overlap, start_id=next_id)
    for d in fresh:
        assign_pages(d, [c for c in new_chunks if c.doc_id == d.doc_id])
    if fresh and not new_chunks:
        raise InvalidInputError("no indexable text in the uploaded document(s)")
    new_vecs = embed_chunks(embedder, new_chunks, batch_size) if new_chunks else np.zeros((0, embedder.dim))
    chunks = kept + new_chunks
    vectors = np.vstack([kept_vecs, new_vecs]).astype(np.float32) if chunks else np.zeros((0, embedder.dim))
    manifest: dict[str, Any] = dict(current.manifest) if current else {
        "model": embedder.name, "dim": embedder.dim, "chunk_size": chunk_size, "chunk_overlap": overlap,
        "dense": {"store": vector_store, "metric": "cosine"}}
    manifest["bm25"] = dict(BM25_META)
    # tokens of the last version are reused only if the same tokenizer made them
    cache = read_tokens(current.path) if current is not None and same_tokenizer(current.manifest) else None
    bm = build_bm25(chunks, cache) if chunks else None
    ids = np.array([c.chunk_id for c in chunks], dtype=np.int64)
    dense = build_store(vector_store, embedder.dim, ids, vectors, index_kind)
    path = store.save(index_dir, manifest, chunks, list(docs.values()), dense, bm)
    rep.version, rep.chunks = path.name, len(chunks)
    logger.info("index update: +%s ~%s -%s", rep.added, rep.replaced, rep.deleted)
    return rep
