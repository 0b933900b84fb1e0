"""The IndexBackend role: where index versions live, how one is read and how the next is written.

``files`` (the default) keeps versioned folders under ``RAG_INDEX_DIR`` (``rag.index.store``; writes under the
folder's lock); ``milvus`` keeps every version as Milvus collections behind an alias (``rag.index.milvus_backend``)
so API replicas share one index and keep nothing on disk. Both return the same ``IndexData`` and take the same
writes: a fresh build, upserts and deletes, a metadata edit. ``create_backend`` picks one from the settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from embeddings.base import Embedder
from rag.core.config import Settings
from rag.core.types import Document
from rag.index.store import IndexData
from rag.index.update import ChangeReport
from rag.ingest.embed import Progress

BACKENDS = ("files", "milvus")


class IndexBackend(Protocol):
    def load(self) -> IndexData:
        """The live version (typed errors when there is none or it is unusable)."""
        ...

    def live_version(self) -> str | None:
        """Name of the live version as the store sees it now (None: no index). Replicas compare it with the
        version they hold to pick up another replica's write."""
        ...

    def exists(self) -> bool: ...

    def build(self, docs: list[Document], embedder: Embedder, progress: Progress | None = None) -> str:
        """A fresh index of ``docs``, made live; returns the version name."""
        ...

    def apply(self, embedder: Embedder, upserts: list[Document], deletes: list[str]) -> ChangeReport: ...

    def edit(self, doc_id: str, fields: Mapping[str, Any]) -> Document: ...


class FileBackend:
    """Versioned folders under ``settings.index_dir`` (FAISS or Milvus vectors per ``RAG_VECTOR_STORE``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.index_dir = Path(settings.index_dir)

    def load(self) -> IndexData:
        from rag.index import store

        return store.load(self.index_dir)

    def live_version(self) -> str | None:
        from rag.index import store

        return store.current_path(self.index_dir).resolve().name if store.exists(self.index_dir) else None

    def exists(self) -> bool:
        from rag.index import store

        return store.check_current(self.index_dir)

    def build(self, docs: list[Document], embedder: Embedder, progress: Progress | None = None) -> str:
        from rag.index.build import build_index

        s = self.settings
        return build_index(self.index_dir, docs, embedder, s.chunk_size, s.chunk_overlap, s.batch_size, progress,
                           s.index_kind, s.vector_store).name

    def apply(self, embedder: Embedder, upserts: list[Document], deletes: list[str]) -> ChangeReport:
        from rag.index.update import apply_changes

        s = self.settings
        return apply_changes(self.index_dir, embedder, upserts, deletes, s.chunk_size, s.chunk_overlap, s.batch_size,
                             s.index_kind, s.vector_store)

    def edit(self, doc_id: str, fields: Mapping[str, Any]) -> Document:
        from rag.index.edit import edit_metadata

        return edit_metadata(self.index_dir, doc_id, fields)


def create_backend(settings: Settings) -> IndexBackend:
    if settings.backend == "milvus":
        from rag.index.milvus_backend import MilvusBackend

        return MilvusBackend(settings)
    if settings.backend == "files":
        return FileBackend(settings)
    raise ValueError(f"unknown index backend {settings.backend!r}; choose one of {', '.join(BACKENDS)}")
