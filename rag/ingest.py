"""Build an index from documents: clean -> chunk -> embed (batches) -> BM25 -> atomic save."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.base import Embedder
from rag import store
from rag.chunking import chunk_document
from rag.core.text import TOKENIZER, tokenize_many
from rag.core.types import Chunk, Document

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def chunk_all(docs: list[Document], chunk_size: int, overlap: int, start_id: int = 0) -> list[Chunk]:
    chunks: list[Chunk] = []
    for d in docs:
        for c in chunk_document(d, chunk_size, overlap):
            c.chunk_id = start_id + len(chunks)
            chunks.append(c)
        if not d.title:
            d.title = chunks[-1].title if chunks and chunks[-1].doc_id == d.doc_id else d.doc_id
    return chunks


def embed_chunks(embedder: Embedder, chunks: list[Chunk], batch_size: int = 64,
                 progress: Progress | None = None) -> np.ndarray:
    """Embed in length-sorted batches (less padding), returned in chunk order."""
    texts = [c.embed_text() for c in chunks]
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), embedder.dim), np.float32)
    for s in range(0, len(texts), batch_size):
        idx = order[s : s + batch_size]
        out[idx] = embedder.encode_passages([texts[i] for i in idx])
        if progress:
            progress(min(s + batch_size, len(texts)), len(texts))
    return out


# BM25 parameters and tokenizer, recorded in every version's manifest.
BM25_META = {"k1": 1.5, "b": 0.75, "tokenizer": TOKENIZER}


def same_tokenizer(manifest: dict[str, Any]) -> bool:
    """The version's BM25 tokens were made by this release's tokenizer (else they are re-made)."""
    return bool(manifest.get("bm25", {}).get("tokenizer") == TOKENIZER)


def build_bm25(chunks: list[Chunk], cache: dict[int, list[str]] | None = None) -> Any:
    """Fit BM25 over the chunks; tokens of chunks in ``cache`` (from the previous version's
    tokens.jsonl) are reused, so an incremental update only tokenises new text."""
    import bm25s

    cache = cache or {}
    todo = [c for c in chunks if c.chunk_id not in cache]
    fresh = dict(zip((c.chunk_id for c in todo), tokenize_many([c.embed_text() for c in todo])))
    tokens = [cache.get(c.chunk_id) or fresh.get(c.chunk_id, []) for c in chunks]
    bm = bm25s.BM25()
    bm.index(tokens, show_progress=False)
    bm.chunk_tokens = tokens  # written by store.save as tokens.jsonl
    return bm


def build_index(index_dir: Path, docs: list[Document], embedder: Embedder, chunk_size: int = 300,
                overlap: int = 1, batch_size: int = 64, progress: Progress | None = None,
                index_kind: str = "auto", vector_store: str = "faiss") -> Path:
    from rag.update import assign_pages

    docs = _dedupe(docs)
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
    from rag.vectors import build_store

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
