"""Build an index from documents: clean -> chunk -> embed (batches) -> BM25 -> atomic save."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from embeddings.base import Embedder
from rag.core.types import Document
from rag.index import store
from rag.index.bm25 import BM25_META, build_bm25
from rag.index.lock import index_lock
from rag.ingest.chunking import assign_pages, chunk_all
from rag.ingest.embed import Progress, embed_chunks
from rag.ingest.validity import link

logger = logging.getLogger(__name__)


def build_index(index_dir: Path, docs: list[Document], embedder: Embedder, chunk_size: int = 300,
                overlap: int = 1, batch_size: int = 64, progress: Progress | None = None,
                index_kind: str = "auto", vector_store: str = "faiss") -> Path:
    """A fresh index of ``docs`` (replacing whatever is current), built and switched under the folder's lock."""
    with index_lock(index_dir):
        return _build(index_dir, docs, embedder, chunk_size, overlap, batch_size, progress, index_kind,
                      vector_store)


def _build(index_dir: Path, docs: list[Document], embedder: Embedder, chunk_size: int, overlap: int,
           batch_size: int, progress: Progress | None, index_kind: str, vector_store: str) -> Path:
    docs = _dedupe(docs)
    link({d.doc_id: d for d in docs})  # which document supersedes which
    chunks = chunk_all(docs, chunk_size, overlap)
    for d in docs:
        assign_pages(d, [c for c in chunks if c.doc_id == d.doc_id])
    if not chunks:
        from rag.core.errors import InvalidInputError

        raise InvalidInputError("no indexable text found in the given documents")
    vectors = embed_chunks(embedder, chunks, batch_size, progress)
    bm = build_bm25(chunks)
    manifest = {"model": embedder.name, "dim": embedder.dim, "chunk_size": chunk_size,
                "chunk_overlap": overlap, "bm25": dict(BM25_META),
                "dense": {"store": vector_store, "metric": "cosine"}}
    from rag.index.vectors import build_store

    ids = np.array([c.chunk_id for c in chunks], dtype=np.int64)
    dense = build_store(vector_store, embedder.dim, ids, vectors, index_kind)
    return store.save(index_dir, manifest, chunks, docs, dense, bm)


def _dedupe(docs: list[Document]) -> list[Document]:
    seen: dict[str, Document] = {}
    for d in docs:
        if d.doc_id in seen:
            logger.warning("duplicate doc_id %s: keeping the last one", d.doc_id)
        seen[d.doc_id] = d
    return list(seen.values())
