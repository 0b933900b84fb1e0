"""Chunks -> vectors: the embedding step of ingestion, in length-sorted batches."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from embeddings.base import Embedder
from rag.core.types import Chunk

Progress = Callable[[int, int], None]


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
