"""Rerank the fused candidates with a stronger model: the Reranker role and one bi-encoder implementation.

``rerank_hits`` takes the hybrid top-``top_n`` hits, scores them with the reranker and reorders them; the
hits below ``top_n`` keep their hybrid order (and score) after them. The bi-encoder is EmbeddingGemma-300m
(`make gemma`): 308M parameters (~100M outside the token embeddings, ~5x e5-small's), so ~5x the compute per
token of the e5-small embedder that built the index. It only sees the query and the top-N chunk texts, so the
index stays on the small model; the price is encoding up to N uncached passages per query (seconds on 2
cores, hence the cache).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from embeddings.cache import SentenceVectors
from rag.core.errors import InvalidInputError, ModelNotInstalledError
from rag.core.types import Hit

logger = logging.getLogger(__name__)

RERANKERS = ("none", "gemma")
# How the reranker's rank is fused with what retrieval already knows (RRF, rrf_k as for hybrid):
#   bm25:   RRF(BM25 rank, reranker rank): the reranker takes the place of the small model's dense vote.
#   hybrid: RRF(hybrid rank, reranker rank).   model: the reranker's order alone.
# bm25 is the default. Chosen on seed gold + 150 CMRC/DRCD/RGB queries each (random seed 1, not the eval's 0),
# top_n 20, hit@1 without rerank / bm25 / hybrid / model: seed .923/.949/.923/.936, CMRC .987/.980/.987/.993,
# DRCD .933/.940/.887/.867, RGB .820/.860/.873/.867: the one rule that never fell more than a query below
# hybrid. Alone, the bi-encoder prefers passages on the query's topic over the one holding the asked-for
# fact (SQuAD-style DRCD questions); the lexical vote keeps that one.
FUSIONS = ("bm25", "hybrid", "model")


@runtime_checkable
class Reranker(Protocol):
    name: str

    def load(self) -> None:
        """Load the weights now (the constructor stays cheap); idempotent."""
        ...

    def rerank(self, query: str, passages: list[str]) -> list[float]:
        """One relevance score per passage, higher is better; one call per query."""
        ...


class BiEncoderReranker:
    """Cosine between the query and each passage under a sentence-transformers model (EmbeddingGemma's
    retrieval prompts by default). Passage vectors are cached in an LRU (``SentenceVectors``, as on the answer
    path): the same chunks come back as candidates for many queries."""

    def __init__(self, path: Path, query_prompt: str = "task: search result | query: ",
                 doc_prompt: str = "title: none | text: ", cache_size: int = 8192, batch_size: int = 16) -> None:
        if cache_size < 0:
            raise InvalidInputError(f"cache_size must be >= 0, got {cache_size}")
        self.path, self.name = Path(path), Path(path).name
        self.query_prompt, self.doc_prompt = query_prompt, doc_prompt
        self.batch_size = batch_size
        self._model: Any = None  # SentenceTransformer once loaded
        self._lock = threading.Lock()  # one forward pass at a time (torch already uses every core)
        self._vectors = SentenceVectors(lambda texts: self._encode(texts, self.doc_prompt), 0, cache_size)

    def load(self) -> None:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
                logger.info("reranker %s loaded from %s", self.name, self.path)

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        import torch

        if self._model is None:
            self.load()
        assert self._model is not None
        with self._lock, torch.inference_mode():
            vecs = self._model.encode(texts, prompt=prompt, batch_size=self.batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def encode_passages(self, passages: list[str]) -> np.ndarray:
        """(n, dim) unit vectors; cached ones from the LRU, the rest in one batch."""
        return self._vectors(passages)

    @property
    def hits(self) -> int:
        return self._vectors.hits

    @property
    def misses(self) -> int:
        return self._vectors.misses

    @property
    def _cache(self) -> OrderedDict[str, np.ndarray]:
        return self._vectors._cache

    def rerank(self, query: str, passages: list[str]) -> list[float]:
        if not passages:
            return []
        q = self._encode([query], self.query_prompt)[0]
        return [float(s) for s in self.encode_passages(passages) @ q]


def create_reranker(kind: str, models_dir: Path) -> Reranker | None:
    """``none`` -> None; ``gemma`` -> BiEncoderReranker over the installed EmbeddingGemma (not loaded yet)."""
    if kind == "none":
        return None
    if kind == "gemma":
        from embeddings.fetch_gemma import gemma_path, is_installed

        path = gemma_path(models_dir)
        if not is_installed(path):
            raise ModelNotInstalledError(f"reranker model not installed at {path}: run `make gemma`")
        return BiEncoderReranker(path)
    raise InvalidInputError(f"unknown reranker {kind!r}; choose one of {', '.join(RERANKERS)}")


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each score, best first (ties: earlier first)."""
    r = np.empty(len(scores))
    r[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    return r


def rerank_hits(reranker: Reranker, query: str, hits: list[Hit], top_n: int = 20, fusion: str = "bm25",
                rrf_k: int = 60) -> list[Hit]:
    """Reorder the first ``top_n`` hits by the reranker, fused as ``fusion`` says (see FUSIONS)."""
    if fusion not in FUSIONS:
        raise InvalidInputError(f"fusion {fusion!r} is not one of {', '.join(FUSIONS)}")
    head, tail = hits[:top_n], hits[top_n:]
    if len(head) < 2:
        return hits
    scores = np.asarray(reranker.rerank(query, [h.chunk.embed_text() for h in head]), dtype=np.float64)
    if fusion != "model":
        scores = 1.0 / (rrf_k + _ranks(scores))
    if fusion == "hybrid":
        scores += 1.0 / (rrf_k + np.arange(1, len(head) + 1))
    elif fusion == "bm25":  # a hit BM25 did not retrieve gets no lexical vote
        bm = np.array([np.nan if h.bm25 is None else h.bm25 for h in head])
        lex = 1.0 / (rrf_k + _ranks(np.nan_to_num(bm, nan=-np.inf)))
        scores += np.where(np.isnan(bm), 0.0, lex)
    order = np.argsort(-scores, kind="stable")  # ties keep the hybrid order
    out = [replace(head[i], score=float(scores[i])) for i in order] + tail
    return [replace(h, rank=rank) for rank, h in enumerate(out, start=1)]
