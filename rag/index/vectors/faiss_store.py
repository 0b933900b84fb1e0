"""FAISS vector store. The index type follows the corpus size (``kind="auto"``):

- ``flat``   exact inner product, up to ``FLAT_MAX`` vectors (1.5 KB per 384-d vector);
- ``ivfsq8`` IVF with 8-bit scalar quantisation above that: 4x less memory, recall@10 >= 0.95
  of exact at the default ``nprobe`` (measured by `python -m bench.run`, section ann).

Always wrapped in IndexIDMap2 so chunk ids are the FAISS ids and reconstruct() works.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import faiss
import numpy as np

# A single query scans a flat index on one thread: ~24 ms at 100k x 384-d here, against 0.12 ms for
# IVF-SQ8 at nprobe 32 with recall@10 0.97 of exact (python -m bench.run, 2026-11-26). 50k keeps flat
# (exact) for typical corpora at ~12 ms.
FLAT_MAX = 50_000
FILE = "dense.faiss"


def _choose(n: int) -> str:
    return "flat" if n <= FLAT_MAX else "ivfsq8"


class FaissStore:
    def __init__(self, dim: int, kind: str = "flat", nprobe: int = 32, index: faiss.Index | None = None) -> None:
        self.dim, self.kind, self.nprobe = dim, kind, nprobe
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vectors: np.ndarray, kind: str = "auto",
              nprobe: int = 32) -> FaissStore:
        kind = _choose(len(ids)) if kind == "auto" else kind
        vectors = np.ascontiguousarray(vectors, np.float32)
        inner: Any  # faiss's SWIG stubs type every index as its base class
        if kind == "flat":
            inner = faiss.IndexFlatIP(dim)
        elif kind == "ivfsq8":
            nlist = max(1, min(65536, int(4 * math.sqrt(max(len(ids), 1)))))
            quant = faiss.IndexFlatIP(dim)
            inner = faiss.IndexIVFScalarQuantizer(quant, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                  faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)
            sample = vectors[rng.choice(len(vectors), size=min(len(vectors), nlist * 64), replace=False)]
            inner.train(sample)
            inner.set_direct_map_type(faiss.DirectMap.Array)  # type: ignore[attr-defined]
            inner.nprobe = nprobe
        elif kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efSearch = 64
        else:
            raise ValueError(f"unknown FAISS index kind {kind!r}: flat, ivfsq8, hnsw or auto")
        store = cls(dim, kind, nprobe, faiss.IndexIDMap2(inner))
        if len(ids):
            store.add(ids, vectors)
        return store

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add_with_ids(np.ascontiguousarray(vectors, np.float32), np.asarray(ids, np.int64))

    def remove(self, ids: np.ndarray) -> int:
        return int(self.index.remove_ids(np.asarray(ids, np.int64)))  # type: ignore[arg-type]

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries.reshape(-1, self.dim), np.float32)
        sel = faiss.IDSelectorBatch(np.asarray(allowed, np.int64)) if allowed is not None else None
        # SWIG parameter objects take their fields as keywords (the stubs don't declare them)
        kw: dict[str, Any] = {"sel": sel} if sel is not None else {}
        params: Any = None
        if self.kind == "ivfsq8":
            params = faiss.SearchParametersIVF(**{"nprobe": self.nprobe, **kw})
        elif kw:
            params = faiss.SearchParameters(**kw)
        D, I = self.index.search(q, k, params=params)
        return D, I

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self.index.reconstruct_batch(ids), np.float32)

    def save(self, folder: Path) -> None:
        faiss.write_index(self.index, str(folder / FILE))
        (folder / "dense.json").write_text(json.dumps({"store": "faiss", "kind": self.kind, "dim": self.dim,
                                                       "nprobe": self.nprobe, "ntotal": self.ntotal}))

    @classmethod
    def load(cls, folder: Path, mmap: bool | None = None) -> FaissStore:
        """``mmap`` None: an IVF index's lists are memory-mapped (read-only, which every caller is: a change
        builds a new store), so a server keeps in RAM only the lists its queries probe (0.8% of them each at
        1M chunks, nprobe 32) and the rest stays reclaimable page cache; flat and HNSW indexes are read whole
        (a flat search touches every vector anyway)."""
        meta = json.loads((folder / "dense.json").read_text()) if (folder / "dense.json").exists() else {}
        if mmap is None:
            mmap = meta.get("kind") == "ivfsq8"
        flags = faiss.IO_FLAG_MMAP if mmap else 0
        index = faiss.read_index(str(folder / FILE), flags)
        return cls(int(index.d), meta.get("kind", "flat"), int(meta.get("nprobe", 32)), index)
