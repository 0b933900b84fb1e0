"""Vector stores behind one protocol; ``create_store`` picks the backend by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.vectors.base import VectorStore
from rag.vectors.faiss_store import FaissStore

BACKENDS = ("faiss", "milvus")


def build_store(backend: str, dim: int, ids: np.ndarray, vectors: np.ndarray, kind: str = "auto",
                **options: object) -> VectorStore:
    if backend == "faiss":
        return FaissStore.build(dim, ids, vectors, kind)
    if backend == "milvus":
        from rag.vectors.milvus_store import MilvusStore

        return MilvusStore.build(dim, ids, vectors, **options)  # type: ignore[arg-type]
    raise ValueError(f"unknown vector store {backend!r}; choose one of {', '.join(BACKENDS)}")


def load_store(folder: Path) -> VectorStore:
    import json

    meta = json.loads((folder / "dense.json").read_text()) if (folder / "dense.json").exists() else {}
    if meta.get("store", "faiss") == "milvus":
        from rag.vectors.milvus_store import MilvusStore

        return MilvusStore.load(folder)
    return FaissStore.load(folder)


__all__ = ["VectorStore", "FaissStore", "build_store", "load_store"]
