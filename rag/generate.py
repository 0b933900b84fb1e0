"""Answer generators. Extractive (default, no model): the best supporting sentences, cited."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import jieba
import numpy as np

from embeddings.base import Embedder
from rag.text import STOPWORDS, has_cjk, normalize
from rag.types import Answer, Citation, Hit, Sentence

REFUSAL = {
    "zh-Hans": "文档中没有找到这个问题的答案。",
    "zh-Hant": "文件中沒有找到這個問題的答案。",
    "en": "The documents do not contain an answer to this question.",
}


def language(text: str) -> str:
    if not has_cjk(text):
        return "en"
    from rag.text import _t2s

    return "zh-Hant" if _t2s().convert(text) != text else "zh-Hans"


@dataclass
class Calibration:
    """Refusal thresholds, fitted on the seed gold set by eval/calibrate.py."""

    min_cos: float = 0.82  # best sentence cosine to the query
    min_coverage: float = 0.7  # IDF-weighted share of query terms found in the passage (CJK queries)
    min_cos_crosslingual: float = 0.84  # queries with no CJK: only the cosine speaks


class Generator(Protocol):
    name: str

    def answer(self, query: str, qvec: np.ndarray, hits: list[Hit]) -> Answer: ...


def query_terms(query: str) -> list[str]:
    return [t for t in dict.fromkeys(jieba.lcut(normalize(query))) if t.strip() and t not in STOPWORDS
            and any(ch.isalnum() for ch in t)]


def coverage(terms: list[str], text: str, idf: dict[str, float], max_idf: float) -> float:
    """IDF-weighted share of ``terms`` present in ``text``; unknown terms weigh the most."""
    if not terms:
        return 0.0
    t = normalize(text)
    w = [idf.get(x, max_idf) for x in terms]
    got = sum(wi for x, wi in zip(terms, w) if x in t)
    return got / sum(w) if sum(w) else 0.0


class ExtractiveGenerator:
    name = "extractive"

    def __init__(self, embedder: Embedder, idf: dict[str, float], n_docs: int,
                 calibration: Calibration | None = None, max_sentences: int = 3, passages: int = 5) -> None:
        self.embedder = embedder
        self.idf = idf
        self.max_idf = math.log(1 + (n_docs + 0.5) / 0.5)
        self.cal = calibration or Calibration()
        self.max_sentences = max_sentences
        self.passages = passages

    def score(self, query: str, qvec: np.ndarray, hits: list[Hit]) -> tuple[list[tuple[float, Hit, Sentence]], float]:
        """Score candidate sentences of the top passages; also the best passage coverage."""
        cands: list[tuple[Hit, Sentence]] = []
        seen: set[tuple[int, int]] = set()
        for h in hits[: self.passages]:
            for s in h.chunk.sentences:
                if (s.start, s.end) not in seen and len(s.text) >= 4:
                    seen.add((s.start, s.end))
                    cands.append((h, s))
        if not cands:
            return [], 0.0
        terms = query_terms(query)
        cov = max(coverage(terms, h.chunk.embed_text(), self.idf, self.max_idf) for h in hits[:3])
        vecs = self.embedder.encode_passages([s.text for _, s in cands])
        cos = vecs @ qvec.reshape(-1)
        scored = []
        for (h, s), c in zip(cands, cos.tolist()):
            lex = coverage(terms, s.text, self.idf, self.max_idf)
            scored.append((c + 0.05 * lex, h, s))
        scored.sort(key=lambda x: -x[0])
        return scored, cov

    def answerable(self, query: str, best_cos: float, cov: float) -> bool:
        if not has_cjk(query):
            return best_cos >= self.cal.min_cos_crosslingual
        return best_cos >= self.cal.min_cos and cov >= self.cal.min_coverage

    def answer(self, query: str, qvec: np.ndarray, hits: list[Hit]) -> Answer:
        lang = language(query)
        scored, cov = self.score(query, qvec, hits)
        if not scored:
            return Answer("", False, [], hits, REFUSAL[lang])
        best = scored[0][0]
        best_cos = best - 0.05 * coverage(query_terms(query), scored[0][2].text, self.idf, self.max_idf)
        if not self.answerable(query, best_cos, cov):
            return Answer("", False, [], hits, REFUSAL[lang])
        chosen = [x for x in scored[: self.max_sentences] if x[0] >= best - 0.02]
        chosen.sort(key=lambda x: (x[1].rank, x[2].start))
        numbers: dict[int, int] = {}
        citations: list[Citation] = []
        parts: list[str] = []
        for sc, h, s in chosen:
            n = numbers.setdefault(h.chunk.chunk_id, len(numbers) + 1)
            citations.append(Citation(n, h, s.text, s.start, s.end, True, round(float(sc), 4)))
            parts.append(f"{s.text}[{n}]")
        sep = "" if lang != "en" or has_cjk("".join(parts)) else " "
        return Answer(sep.join(parts), True, citations, hits)
