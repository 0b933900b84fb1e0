"""Text-embedding cache shared by the extractive answer path and the reranker."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np


class SentenceVectors:
    """Bounded LRU of text embeddings: answers keep citing the same sentences, and rerank candidates are the
    same chunks again and again, while each encode holds the model (measured: ~0.3 s per cross-lingual ask
    uncached). ``encode`` is the batch encoder behind it (an Embedder's ``encode_passages``)."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray], dim: int, capacity: int = 20_000) -> None:
        self.encode, self.dim, self.capacity = encode, dim, capacity
        self.hits = self.misses = 0
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for t in texts:
                if t in self._cache:
                    self._cache.move_to_end(t)
                    found[t] = self._cache[t]
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:  # encoded outside the lock; a concurrent eviction can't lose them
            found.update(zip(missing, self.encode(missing)))
        with self._lock:
            self.hits, self.misses = self.hits + len(texts) - len(missing), self.misses + len(missing)
            for t in missing:
                self._cache[t] = found[t]
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return np.vstack([found[t] for t in texts])
