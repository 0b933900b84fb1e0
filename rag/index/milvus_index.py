"""One Milvus index version read for queries: ``load_version`` returns the same ``IndexData`` the file backend
returns, whose ``dense`` (``MilvusVectors``) and ``bm25`` (``MilvusLexical``) search inside Milvus.

What a replica keeps is memory only: the chunk records, the document records and the BM25 vocabulary with its
document frequencies (the answer generator weighs words by IDF), re-read when the alias moves to a new version.
Vectors and BM25 postings stay in Milvus. Every search and read is strongly consistent.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from rag.core.errors import IndexCorruptError
from rag.core.types import Chunk, Document
from rag.index import milvus_expr as E
from rag.index.milvus_schema import BM25_PARAMS, REINDEX, Milvus, docs_name, lex_text, read_manifest
from rag.index.store import IndexData

FILTER_CHUNK = 10_000  # ids per `chunk_id in [...]` expression
MAX_TOPK = 16_384
SCALE = 1.0 + BM25_PARAMS["bm25_k1"]
STRONG = {"consistency_level": "Strong"}


class MilvusVectors:
    """The VectorStore role over a version's chunk collection (read-only: a new version is a new collection)."""

    kind = "milvus-collection"

    def __init__(self, m: Milvus, name: str, dim: int, n: int) -> None:
        self.m, self.name, self.dim, self._n = m, name, dim, n

    @property
    def ntotal(self) -> int:
        return self._n

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, np.float32).reshape(-1, self.dim)
        scores = np.full((len(q), k), -np.finfo(np.float32).max, np.float32)
        ids = np.full((len(q), k), -1, np.int64)
        if k <= 0 or not len(q):
            return scores, ids
        exprs = [""] if allowed is None else [E.in_ints("chunk_id", part) for part in _parts(allowed)]
        for row, vec in enumerate(q):
            hits: list[tuple[float, int]] = []
            for expr in exprs:
                res = self.m.call("search", self.name, data=[vec.tolist()], anns_field="vector", filter=expr,
                                  limit=min(k, MAX_TOPK), output_fields=["chunk_id"],
                                  search_params={"metric_type": "IP"}, **STRONG)
                hits += [(float(h["distance"]), int(h["chunk_id"])) for h in res[0]]
            hits.sort(key=lambda h: -h[0])
            for j, (s, cid) in enumerate(hits[:k]):
                scores[row, j], ids[row, j] = s, cid
        return scores, ids

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, np.int64).reshape(-1)
        got: dict[int, list[float]] = {}
        for part in _parts(ids, unique=True):
            for r in self.m.call("get", self.name, ids=part.tolist(), output_fields=["chunk_id", "vector"]):
                got[int(r["chunk_id"])] = r["vector"]
        missing = [int(i) for i in ids if int(i) not in got]
        if missing:
            raise KeyError(f"chunk ids not in {self.name}: {missing[:10]}")
        return np.array([got[int(i)] for i in ids], np.float32).reshape(len(ids), self.dim)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        raise NotImplementedError("a Milvus index version is immutable: writes build the next version")

    def remove(self, ids: np.ndarray) -> int:
        raise NotImplementedError("a Milvus index version is immutable: writes build the next version")

    def save(self, folder: Path) -> None:
        raise NotImplementedError("a Milvus index version lives in Milvus, not in a folder")


class MilvusLexical:
    """BM25 inside Milvus (the ``sparse`` field over ``lex``), plus the vocabulary and IDF the answer side reads.
    Milvus scores come back negated on milvus-lite and positive on a server, and carry BM25's (k1 + 1) factor that
    bm25s leaves out: ``abs(d) / (k1 + 1)`` is the file backend's score for the same tokens."""

    remote = True

    def __init__(self, m: Milvus, name: str, tokens: list[list[str]]) -> None:
        self.m, self.name = m, name
        df: dict[str, int] = defaultdict(int)
        for toks in tokens:
            for t in set(toks):
                df[t] += 1
        self.vocab_dict = {t: i for i, t in enumerate(df)}
        n = max(len(tokens), 1)
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}

    def _search(self, tokens: list[str], limit: int, expr: str) -> list[tuple[int, float]]:
        res = self.m.call("search", self.name, data=[lex_text(tokens)], anns_field="sparse", filter=expr,
                          limit=min(limit, MAX_TOPK), output_fields=["chunk_id"],
                          search_params={"metric_type": "BM25"}, **STRONG)
        return [(int(h["chunk_id"]), abs(float(h["distance"])) / SCALE) for h in res[0]]

    def top(self, tokens: list[str], k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, scores) best first, at most ``k``, only chunks that match a token."""
        exprs = [""] if allowed is None else [E.in_ints("chunk_id", p) for p in _parts(allowed)]
        hits = [h for expr in exprs for h in self._search(tokens, k, expr)]
        hits.sort(key=lambda h: (-h[1], h[0]))
        hits = [h for h in hits if h[1] > 0][:k]
        return np.array([h[0] for h in hits], np.int64), np.array([h[1] for h in hits], np.float32)

    def score(self, tokens: list[str], ids: np.ndarray) -> np.ndarray:
        """BM25 score of each of ``ids`` (0 where no token matches)."""
        got: dict[int, float] = {}
        for part in _parts(ids, unique=True):
            got.update(self._search(tokens, len(part), E.in_ints("chunk_id", part)))
        return np.array([got.get(int(i), 0.0) for i in ids], np.float32)


def _parts(ids: np.ndarray, unique: bool = True) -> list[np.ndarray]:
    arr = np.unique(np.asarray(ids, np.int64)) if unique else np.asarray(ids, np.int64)
    return [arr[s : s + FILTER_CHUNK] for s in range(0, len(arr), FILTER_CHUNK)]


def read_documents(m: Milvus, name: str, expr: str = "") -> dict[str, Document]:
    parts: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for r in m.rows(docs_name(name), ["doc_id", "part", "data"], expr):
        parts[r["doc_id"]].append((int(r["part"]), r["data"]))
    return {d: Document(**json.loads("".join(s for _, s in sorted(p)))) for d, p in parts.items()}


def load_version(m: Milvus, name: str) -> IndexData:
    """The version ``name`` as ``IndexData``; its manifest checked (tokenizer, analyzer) and its counts."""
    manifest = read_manifest(m, name)
    rows = m.rows(name, ["chunk_id", "chunk", "lex"])
    rows.sort(key=lambda r: int(r["chunk_id"]))
    chunks = {int(r["chunk_id"]): Chunk.from_json(json.loads(r["chunk"])) for r in rows}
    tokens = [[t.replace("p", ".") if _decimal(t) else t for t in r["lex"].split()] for r in rows]
    documents = read_documents(m, name)
    if len(chunks) != manifest.get("n_chunks") or len(documents) != manifest.get("n_documents"):
        raise IndexCorruptError(f"Milvus version {name} holds {len(chunks)} chunks and {len(documents)} documents, "
                                f"its manifest {manifest.get('n_chunks')} and {manifest.get('n_documents')}: "
                                f"{REINDEX}")
    ids = np.array(sorted(chunks), np.int64)
    dense = MilvusVectors(m, name, int(manifest["dim"]), len(chunks))
    return IndexData(manifest, chunks, documents, dense, MilvusLexical(m, name, tokens), ids, Path(name))


def _decimal(tok: str) -> bool:
    a, sep, b = tok.partition("p")
    return bool(sep) and a.isdigit() and b.isdigit()
