"""The query path: embed -> dense + BM25 -> RRF -> (rerank top-N) -> cut k -> generate. Loaded once."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.base import Embedder
from embeddings.factory import create_embedder
from rag.answer.answering import flag
from rag.answer.extractive import REFUSAL, Calibration, ExtractiveGenerator, Generator, language
from rag.answer.learned import ReaderGenerator
from rag.answer.model_reader import OnnxReader
from rag.core import docmeta
from rag.core.config import Settings
from rag.core.errors import InvalidInputError, NotFoundError
from rag.core.text import TOKENIZER, has_cjk, tokenize
from rag.core.types import Answer, Document, Filters, Hit
from rag.index import store
from rag.index.backend import IndexBackend, create_backend
from rag.index.bm25 import build_bm25, same_tokenizer
from rag.index.doctable import stub, stubs
from rag.index.store import IndexData
from rag.search.crosslingual import Translator, create_translator
from rag.search.rerank import Reranker, create_reranker, rerank_hits
from rag.search.retrieve import MODES, hybrid

logger = logging.getLogger(__name__)


def bm25_idf(index: IndexData) -> dict[str, float]:
    """IDF per BM25 vocabulary term, from the index's column pointers (document frequency)."""
    bm = index.bm25
    if bm is None:
        return {}
    if isinstance(getattr(bm, "idf", None), dict):  # the Milvus backend's vocabulary (rag/index/milvus_index.py)
        return dict(bm.idf)
    df = np.diff(np.asarray(bm.scores["indptr"]))
    n = max(index.size, 1)
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    return {t: float(idf[i]) for t, i in bm.vocab_dict.items() if i < len(idf)}


def judged(judge: Reranker, query: str, ans: Answer, min_cos: float, sentences: int = 3) -> Answer:
    """An extractive answer the judge model does not see supported by any of its first cited sentences
    becomes a refusal (RGB's same-event distractors pass the extractive checks more often than this)."""
    ans.mode = "extractive+judge"
    if not ans.answerable or not ans.citations or has_cjk(query) != has_cjk(ans.citations[0].quote):
        return ans  # cross-lingual cosines run lower: the judge's threshold was fitted within one language
    if max(judge.rerank(query, [c.quote for c in ans.citations[:sentences]])) >= min_cos:
        return ans
    return Answer("", False, [], ans.hits, REFUSAL[language(query)], mode=ans.mode,
                  warnings=["the refusal judge found no cited sentence close enough to the question"])


class Pipeline:
    def __init__(self, settings: Settings, embedder: Embedder | None = None,
                 reranker: Reranker | None = None, judge: Reranker | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._reranker = reranker
        self._judge = judge
        self.index: IndexData | None = None
        self.generator: Generator | None = None
        self._reader: OnnxReader | None = None
        # (index, day, allowed ids) of the default validity filter; the index itself, not its id(): a reloaded
        # index may reuse a freed one's id
        self._in_force: tuple[IndexData | None, str, np.ndarray | None] = (None, "", None)
        self._cjk_vocab: tuple[int, bool] = (0, False)  # (id of the BM25 index, whether it holds CJK words)
        self.generators: dict[str, Generator] = {}  # "rules", and "model" when settings.reader is model
        self.translator: Translator | None = None
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one writer at a time; readers never wait on it
        # Retrievals at once (dense + BM25 + fusion): each holds corpus-sized score arrays (BM25 scores and their
        # partition: 12 MB per query at 1M chunks); on 2 cores 32 of them at once only queue for the CPU while
        # their buffers stay resident (the 1M server grew 280 MB of heap under 32 clients).
        self._retrieve_slots = threading.BoundedSemaphore(os.cpu_count() or 1)
        self._refresh_lock = threading.Lock()
        self._backend: IndexBackend | None = None

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            s = self.settings
            self._embedder = create_embedder(s.embedder, s.models_dir, s.model_name, s.dtype, s.batch_size,
                                             s.torch_threads, s.query_backend)
        return self._embedder

    @property
    def reranker(self) -> Reranker | None:
        """The one given, else the one ``settings.rerank`` names (None for ``none``); weights load in ``load``."""
        if self._reranker is None and self.settings.rerank != "none":
            self._reranker = create_reranker(self.settings.rerank, self.settings.models_dir)
        return self._reranker

    @property
    def judge(self) -> Reranker | None:
        """The refusal judge ``settings.judge`` names (the reranker's model when both are gemma), else None."""
        if self._judge is None and self.settings.judge != "none":
            same = self.settings.rerank == self.settings.judge
            self._judge = self.reranker if same else create_reranker(self.settings.judge, self.settings.models_dir)
        return self._judge

    @property
    def backend(self) -> IndexBackend:
        """Where the index lives: version folders (``files``) or Milvus (``RAG_BACKEND=milvus``)."""
        if self._backend is None:
            self._backend = create_backend(self.settings)
        return self._backend

    def refresh(self) -> None:
        """Milvus backend: load the live version when another replica made a new one (one alias look-up per
        call; a Milvus failure is an ``IndexUnavailableError``, 503). The file backend reloads after its own
        writes only, as before."""
        if self.settings.backend != "milvus":
            return
        live = self.backend.live_version()
        index = self.index
        if index is not None and live == index.path.name:
            return
        with self._refresh_lock:
            index = self.index
            if index is None or live != index.path.name:
                self.load()

    def load(self) -> Pipeline:
        """Load model and the current index version (raises typed errors on mismatch/corruption)."""
        index = self.backend.load()
        store.check_model(index.manifest, self.embedder.name, self.embedder.dim)
        if index.bm25 is not None and not same_tokenizer(index.manifest):  # an index from an older release
            logger.warning("BM25 was built by tokenizer %r, this release uses %r: re-tokenised in memory "
                           "(the next upload or `rag ingest --rebuild` writes it)",
                           index.manifest.get("bm25", {}).get("tokenizer"), TOKENIZER)
            index.bm25 = build_bm25([index.chunks[int(i)] for i in index.bm25_ids])
        idf = bm25_idf(index)
        translator = create_translator(idf) if self.settings.crosslingual else None
        rules = ExtractiveGenerator(self.embedder, idf, index.size, Calibration.load(), translate=translator)
        gens: dict[str, Generator] = {"rules": rules}
        if self.settings.reader == "model":
            if self._reader is None:  # at startup (the API lifespan); raises if `make model` did not export it
                self._reader = OnnxReader(Path(self.settings.models_dir) / "reader-e5-small",
                                          threads=self.settings.torch_threads, parallel=self.settings.reader_parallel,
                                          t2s=self.settings.reader_t2s, device=self.settings.device)
            gens["model"] = ReaderGenerator(self._reader, self.settings.reader_passages,
                                            margin=self.settings.reader_margin, crosslingual=rules,
                                            cascade=self.settings.reader_cascade,
                                            cascade_margin=self.settings.reader_cascade_margin)
        for model in (self.reranker, self.judge):  # at startup (the API lifespan), not on the first query
            if model is not None:
                model.load()
        with self._lock:  # swap both at once; in-flight queries keep their old references
            self.index, self.generator, self.translator = index, gens[self.settings.reader], translator
            self.generators = gens
        return self

    @property
    def ready(self) -> bool:
        return self.index is not None

    def _check(self, query: str, top_k: int, mode: str) -> str:
        q = query.strip() if isinstance(query, str) else ""
        if not q:
            raise InvalidInputError("query is empty: send a question or keywords")
        if len(q) > self.settings.max_query_chars:
            raise InvalidInputError(f"query is {len(q)} characters; the limit is {self.settings.max_query_chars}")
        if not 1 <= top_k <= self.settings.max_top_k:
            raise InvalidInputError(f"top_k must be between 1 and {self.settings.max_top_k}, got {top_k}")
        if mode not in MODES:
            raise InvalidInputError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        return q

    def allowed_ids(self, index: IndexData, filters: Filters | None) -> np.ndarray | None:
        """Chunk ids of the documents the filters and validity admit (None: every document): documents in
        force on ``as_of`` (today) unless ``include_superseded`` (the request's, else the setting)."""
        f = filters or Filters()
        include = self.settings.include_superseded if f.include_superseded is None else f.include_superseded
        if f.empty() and include:
            return None
        if f.collection is not None and not any(
                d.meta.get("collection", "default") == f.collection for d in stubs(index.documents)):
            raise NotFoundError(f"unknown collection {f.collection!r}: see GET /v1/collections")
        day = docmeta.today()
        cached, cached_day, cached_ids = self._in_force
        if f.empty() and cached is index and cached_day == day:  # the default: cached per index and day
            return cached_ids
        docs = [d for d in stubs(index.documents) if f.match(d) and docmeta.usable(d.meta, f.as_of, include)]
        ids = None if len(docs) == len(index.documents) else np.array(
            [cid for d in docs for cid in index.doc_chunks.get(d.doc_id, [])], dtype=np.int64)
        if f.empty():
            self._in_force = (index, day, ids)
        return ids

    def validity_notes(self, ans: Answer, filters: Filters | None = None) -> list[str]:
        """A warning for each cited document that is superseded, expired or not yet in effect (on ``as_of``):
        ``《A》：该文件已于2024年3月1日被《B》废止``."""
        index = self.index
        if index is None:
            return []
        as_of = filters.as_of if filters is not None else None
        notes: list[str] = []
        for doc_id in dict.fromkeys(c.hit.chunk.doc_id for c in ans.citations):
            d = stub(index.documents, doc_id) if doc_id in index.documents else None
            note = docmeta.validity_note(d.title, d.meta, as_of) if d is not None else ""
            if note:
                notes.append(note)
        return notes

    def search(self, query: str, top_k: int = 5, mode: str = "hybrid", timings: dict[str, float] | None = None,
               filters: Filters | None = None, rerank: bool | None = None) -> tuple[list[Hit], np.ndarray | None]:
        """``rerank`` None follows ``settings.rerank``; True needs a reranker, False skips it."""
        q = self._check(query, top_k, mode)
        use = self.settings.rerank != "none" if rerank is None else rerank
        reranker = self.reranker if use else None
        if use and reranker is None:
            raise InvalidInputError("rerank requested but no reranker is configured: set RAG_RERANK=gemma")
        n = max(top_k, self.settings.rerank_top_n) if reranker is not None else top_k
        self.refresh()  # Milvus: another replica's write is searched at once
        index = self.index
        if index is None:
            raise store.IndexNotFoundError("index not loaded: run `rag ingest PATH`")
        allowed = self.allowed_ids(index, filters)
        t = timings if timings is not None else {}
        t0 = time.perf_counter()
        qvec = self.embedder.encode_queries([q])[0] if mode != "bm25" else None
        t1 = time.perf_counter()
        translator = self.translator
        lex_terms = translator(q) if translator is not None and not has_cjk(q) else None
        with self._retrieve_slots:
            hits = hybrid(index, qvec, q, n, mode, self.settings.candidate_factor, self.settings.rrf_k, allowed,
                          lex_terms)
        t2 = time.perf_counter()
        t["embed_ms"], t["retrieve_ms"] = (t1 - t0) * 1000, (t2 - t1) * 1000
        if reranker is not None:
            s = self.settings
            hits = rerank_hits(reranker, q, hits, s.rerank_top_n, s.rerank_fusion, s.rrf_k)[:top_k]
            t["rerank_ms"] = (time.perf_counter() - t2) * 1000
        return hits, qvec

    def ask(self, query: str, top_k: int = 5, filters: Filters | None = None) -> Answer:
        timings: dict[str, float] = {}
        hits, qvec = self.search(query, top_k, "hybrid", timings, filters)
        assert qvec is not None
        ans = self.extractive(query.strip(), qvec, hits, timings)
        flag(ans, self.validity_notes(ans, filters))
        ans.timings = {k: round(v, 2) for k, v in timings.items() if not math.isnan(v)}
        return ans

    def unknown_words(self, query: str) -> bool:
        """No letter, digit or CJK character at all (``？？？。。。``, emoji), or no word the index knows, in the
        question or its dictionary translation (``xyzzy``, ``asdfghjkl qwertyuiop``): nothing here can answer."""
        if not any(ch.isalnum() for ch in query):
            return True
        index = self.index
        bm = index.bm25 if index is not None else None
        if bm is None:
            return False
        if has_cjk(query) and not self._has_cjk_words(bm):
            return False  # a Chinese question over English-only documents: matched by meaning, not by words
        tokens = tokenize(query)
        if self.translator is not None and not has_cjk(query):
            tokens += [t for term in self.translator(query) for t in tokenize(term)]
        return not any(t in bm.vocab_dict for t in tokens)

    def _has_cjk_words(self, bm: object) -> bool:
        key = id(bm)
        if self._cjk_vocab[0] != key:
            self._cjk_vocab = (key, any(has_cjk(t) for t in bm.vocab_dict))  # type: ignore[attr-defined]
        return self._cjk_vocab[1]

    def extractive(self, query: str, qvec: np.ndarray, hits: list[Hit], timings: dict[str, float]) -> Answer:
        """The extractive answer over ``hits`` (the refusal decision), through the judge when one is set."""
        gen = self.generator
        assert gen is not None
        if self.unknown_words(query):
            return Answer("", False, [], hits, REFUSAL[language(query)],
                          warnings=["the question has no word that occurs in the documents"])
        t0 = time.perf_counter()
        ans = gen.answer(query, qvec, hits)
        timings["generate_ms"] = (time.perf_counter() - t0) * 1000
        if self.judge is not None:
            t1 = time.perf_counter()
            ans = judged(self.judge, query, ans, self.settings.judge_min_cos)
            timings["judge_ms"] = (time.perf_counter() - t1) * 1000
        return ans

    def edit_metadata(self, doc_id: str, fields: dict[str, Any]) -> Document:
        """Edit a document's metadata as a new index version (no re-embedding), then switch readers to it."""
        with self._write_lock:
            doc = self.backend.edit(doc_id, fields)
            self.load()
        return doc

    def update(self, upserts: list[Document], deletes: list[str] | None = None):  # type: ignore[no-untyped-def]
        """Apply document changes as a new index version, then switch readers to it."""
        with self._write_lock:
            rep = self.backend.apply(self.embedder, upserts, deletes or [])
            if rep.added or rep.replaced or rep.deleted or self.index is None:
                self.load()
        return rep
