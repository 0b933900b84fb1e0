"""The VectorStore role: ids are the chunk ids shared with BM25 and chunks.jsonl."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class VectorStore(Protocol):
    kind: str
    dim: int

    @property
    def ntotal(self) -> int: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add unit vectors (n, dim) under int64 ids."""
        ...

    def remove(self, ids: np.ndarray) -> int: ...

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n, k); ids -1 where fewer than k. ``allowed`` restricts the ids."""
        ...

    def reconstruct(self, ids: np.ndarray) -> np.ndarray: ...

    def save(self, folder: Path) -> None: ...
