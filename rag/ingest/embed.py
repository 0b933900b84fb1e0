"""Chunks -> vectors: the embedding step of ingestion, in length-sorted batches."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from embeddings.base import Embedder
from rag.core.types import Chunk

Progress = Callable[[int, int], None]
GROUP = 16  # batches per embedder call (progress is reported per call)


def embed_chunks(embedder: Embedder, chunks: list[Chunk], batch_size: int = 64,
                 progress: Progress | None = None) -> np.ndarray:
    """Embed in length-sorted batches (less padding), returned in chunk order.

    The embedder gets ``GROUP`` batches per call: it batches them itself (length-sorted), and the ONNX path runs
    one batch per core at once only when a call holds several (``embeddings.onnx.OnnxEncoder.encode``)."""
    texts = [c.embed_text() for c in chunks]
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), embedder.dim), np.float32)
    step = batch_size * GROUP
    for s in range(0, len(texts), step):
        idx = order[s : s + step]
        out[idx] = embedder.encode_passages([texts[i] for i in idx])
        if progress:
            progress(min(s + step, len(texts)), len(texts))
    return out
