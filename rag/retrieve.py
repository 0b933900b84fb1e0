"""Dense, BM25 and hybrid (RRF) retrieval over one IndexData. Functions over arrays, no state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from rag.store import IndexData
from rag.text import tokenize
from rag.types import Hit

MODES = ("hybrid", "dense", "bm25")


class Ranked(NamedTuple):
    """Chunk ids best first, with the retriever's own scores."""

    ids: np.ndarray
    scores: np.ndarray


def dense_search(index: IndexData, qvec: np.ndarray, k: int, allowed: np.ndarray | None = None) -> Ranked:
    """Top-k by inner product; ``allowed`` restricts to those chunk ids (exact, inside FAISS)."""
    k = min(k, index.dense.ntotal if allowed is None else len(allowed))
    if k <= 0:
        return Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32))
    D, I = index.dense.search(qvec.reshape(1, -1), k, allowed)
    keep = I[0] >= 0
    return Ranked(I[0][keep], D[0][keep])


def bm25_search(index: IndexData, tokens: list[str], k: int, allowed: np.ndarray | None = None) -> Ranked:
    bm = index.bm25
    if bm is None or not tokens:
        return Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32))
    known = [t for t in tokens if t in bm.vocab_dict]
    if not known:
        return Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32))
    scores = np.asarray(bm.get_scores(known), dtype=np.float32)
    if allowed is not None:
        scores = np.where(np.isin(index.bm25_ids, allowed), scores, 0.0).astype(np.float32)
    k = min(k, int((scores > 0).sum()))
    if k <= 0:
        return Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return Ranked(index.bm25_ids[top], scores[top])


def rrf(rankings: Sequence[Ranked], k: int = 60) -> dict[int, float]:
    """Reciprocal rank fusion: score(d) = sum over rankings of 1 / (k + rank), rank from 1."""
    fused: dict[int, float] = {}
    for r in rankings:
        for rank, cid in enumerate(r.ids.tolist(), start=1):
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (k + rank)
    return fused


def hybrid(index: IndexData, qvec: np.ndarray | None, query: str, top_k: int, mode: str = "hybrid",
           candidate_factor: int = 4, rrf_k: int = 60, allowed: np.ndarray | None = None,
           lex_terms: list[str] | None = None) -> list[Hit]:
    """Retrieve ``top_k`` chunks; each retriever contributes ``top_k * candidate_factor`` candidates.
    ``lex_terms``: BM25 query terms other than the query's own (an English query's Chinese translation)."""
    k0 = max(top_k * candidate_factor, 20)
    use_dense = mode in ("hybrid", "dense") and qvec is not None
    dense = dense_search(index, qvec, k0, allowed) if use_dense and qvec is not None else None
    tokens = tokenize(query) + [t for term in lex_terms or [] for t in tokenize(term)]
    lex = bm25_search(index, tokens, k0, allowed) if mode in ("hybrid", "bm25") else None
    dmap = dict(zip(dense.ids.tolist(), dense.scores.tolist())) if dense is not None else {}
    bmap = dict(zip(lex.ids.tolist(), lex.scores.tolist())) if lex is not None else {}
    if mode == "dense":
        order = list(dmap.items())
    elif mode == "bm25":
        order = list(bmap.items())
    else:
        fused = rrf([r for r in (dense, lex) if r is not None], rrf_k)
        order = sorted(fused.items(), key=lambda kv: -kv[1])
    hits = []
    for rank, (cid, score) in enumerate(order[:top_k], start=1):
        hits.append(Hit(index.chunks[int(cid)], float(score), rank, dmap.get(cid), bmap.get(cid)))
    return hits
