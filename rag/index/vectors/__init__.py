"""Vector stores behind one protocol; ``create_store`` picks the backend by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.index.vectors.base import VectorStore
from rag.index.vectors.faiss_store import FaissStore

BACKENDS = ("faiss", "milvus")


def build_store(backend: str, dim: int, ids: np.ndarray, vectors: np.ndarray, kind: str = "auto",
                **options: object) -> VectorStore:
    if backend == "faiss":
        return FaissStore.build(dim, ids, vectors, kind)
    if backend == "milvus":
        from rag.index.vectors.milvus_store import MilvusStore

        return MilvusStore.build(dim, ids, vectors, **options)  # type: ignore[arg-type]
    raise ValueError(f"unknown vector store {backend!r}; choose one of {', '.join(BACKENDS)}")


def load_store(folder: Path) -> VectorStore:
    import json

    meta = json.loads((folder / "dense.json").read_text()) if (folder / "dense.json").exists() else {}
    if meta.get("store", "faiss") == "milvus":
        from rag.index.vectors.milvus_store import MilvusStore

        return MilvusStore.load(folder)
    return FaissStore.load(folder)


def server_collection(folder: Path) -> str | None:
    """The Milvus *server* collection a version folder's vectors live in (None for files and milvus-lite)."""
    import json

    path = folder / "dense.json"
    try:
        meta = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        return None
    if meta.get("store") != "milvus":
        return None
    from rag.index.vectors.milvus_store import is_server_uri

    return str(meta["collection"]) if is_server_uri(str(meta.get("uri", ""))) else None


def release(folder: Path, keep: set[str]) -> None:
    """Before a pruned version's folder is deleted: drop its Milvus server collection unless a kept version
    still uses it (files and milvus-lite data go with the folder)."""
    name = server_collection(folder)
    if name is None or name in keep:
        return
    import logging

    from rag.index.vectors.milvus_store import MilvusStore

    try:
        store = MilvusStore.load(folder)
        store.drop()
        store.close()
    except Exception as e:  # noqa: BLE001 - pruning never fails an ingest; the collection stays, logged
        logging.getLogger(__name__).warning("could not drop Milvus collection %s of %s: %s", name, folder, e)


__all__ = ["VectorStore", "FaissStore", "build_store", "load_store", "release", "server_collection"]
