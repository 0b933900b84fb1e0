"""Dense, BM25 and hybrid (RRF) retrieval over one IndexData. Functions over arrays, no state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from rag.core.text import tokenize
from rag.core.types import Hit
from rag.index.store import IndexData

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


def bm25_scores(index: IndexData, tokens: list[str], allowed: np.ndarray | None = None) -> np.ndarray | None:
    """BM25 score of every row (row i is chunk ``index.bm25_ids[i]``); None when no token is known."""
    bm = index.bm25
    known = [t for t in tokens if t in bm.vocab_dict] if bm is not None else []
    if not known:
        return None
    scores = np.asarray(bm.get_scores(known), dtype=np.float32)
    if allowed is not None:
        scores = np.where(np.isin(index.bm25_ids, allowed), scores, 0.0).astype(np.float32)
    return scores


def _top(index: IndexData, scores: np.ndarray | None, k: int) -> Ranked:
    k = 0 if scores is None else min(k, int((scores > 0).sum()))
    if scores is None or k <= 0:
        return Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return Ranked(np.asarray(index.bm25_ids[top], np.int64), scores[top])


def bm25_search(index: IndexData, tokens: list[str], k: int, allowed: np.ndarray | None = None) -> Ranked:
    if getattr(index.bm25, "remote", False):
        return _remote_top(index, tokens, k, allowed)
    return _top(index, bm25_scores(index, tokens, allowed), k)


def _remote_top(index: IndexData, tokens: list[str], k: int, allowed: np.ndarray | None) -> Ranked:
    """BM25 inside the index server (the Milvus backend): the same known tokens, the server's own scoring."""
    known = [t for t in tokens if t in index.bm25.vocab_dict]
    if not known or k <= 0 or (allowed is not None and not len(allowed)):
        return Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32))
    ids, scores = index.bm25.top(known, k, allowed)
    return Ranked(ids, scores)


def _rerank_union(index: IndexData, qvec: np.ndarray,
                  scores: np.ndarray | Callable[[np.ndarray], np.ndarray] | None, dense: Ranked,
                  lex: Ranked) -> tuple[Ranked, Ranked]:
    """Both retrievers ranked over the union of their candidates: a chunk one retriever found and the
    other missed gets the other's real score instead of no rank at all, so the fusion compares like
    with like (a dense-only hit that BM25 scores 0 still ranks last there)."""
    union = np.union1d(dense.ids, lex.ids).astype(np.int64)
    if len(union) == 0:
        return dense, lex
    # cosines dense search already returned are kept; only the BM25-only chunks' vectors are read back
    missing = np.setdiff1d(lex.ids, dense.ids).astype(np.int64)
    if len(missing):
        got = (index.dense.reconstruct(missing) @ qvec.reshape(-1)).astype(np.float32)
        ids = np.concatenate([np.asarray(dense.ids, np.int64), missing])
        dscore = np.concatenate([np.asarray(dense.scores, np.float32), got])
        order = np.argsort(-dscore, kind="stable")
        dense = Ranked(ids[order], dscore[order])
    if scores is None:
        return dense, lex
    # every row's BM25 score (files), or a function scoring given ids (the Milvus backend scores them there)
    bscore = scores(union) if callable(scores) else scores[index.bm25_row(union)]
    keep = bscore > 0
    order = np.argsort(-bscore[keep], kind="stable")
    return dense, Ranked(union[keep][order], bscore[keep][order])


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
    lex: Ranked | None = None
    scores: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None
    if mode in ("hybrid", "bm25") and getattr(index.bm25, "remote", False):
        lex = _remote_top(index, tokens, k0, allowed)
        known = [t for t in tokens if t in index.bm25.vocab_dict]
        scores = (lambda ids: index.bm25.score(known, ids)) if known else None
    elif mode in ("hybrid", "bm25"):
        arr = bm25_scores(index, tokens, allowed)
        lex = _top(index, arr, k0)
        scores = arr
    if dense is not None and lex is not None and qvec is not None:
        dense, lex = _rerank_union(index, qvec, scores, dense, lex)
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
