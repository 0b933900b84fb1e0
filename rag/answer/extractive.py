"""Answer generators. Extractive (default, no model): the best supporting sentences, cited."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Literal, Protocol

import jieba
import numpy as np

from embeddings.base import Embedder
from embeddings.cache import SentenceVectors
from rag.answer.reader import WH, ShortAnswer, analyse, fits_type, read
from rag.answer.reader_en import read_english
from rag.core.text import STOPWORDS, has_cjk, normalize
from rag.core.types import Answer, Citation, Hit, Sentence

REFUSAL = {
    "zh-Hans": "文档中没有找到这个问题的答案。",
    "zh-Hant": "文件中沒有找到這個問題的答案。",
    "en": "The documents do not contain an answer to this question.",
}


def language(text: str) -> str:
    if not has_cjk(text):
        return "en"
    from rag.core.text import _t2s

    return "zh-Hant" if _t2s().convert(text) != text else "zh-Hans"


XL_WEIGHT = 0.1  # translated-term coverage next to the sentence cosine (seed English questions: 0.05-0.1 equal)
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d\d)(?!\d)")
_NUMBER = re.compile(r"[0-9０-９]|[一二三四五六七八九十百千万亿两]+[个项家名人次年月日倍%]")
# Number tokens for the answer-type check: digit runs, and Chinese numerals that count something.
_NUM_TOKEN = re.compile(r"\d+(?:\.\d+)?|第[零〇一二三四五六七八九十百千]+|"
                        r"[零〇一二三四五六七八九十百千万亿两]+(?=[个项家名人次年月日倍%位座条批所台亿万元件种])")
CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
_CLAUSE = re.compile(r"[^，,；;：:]+[，,；;：:]?")


@dataclass
class Calibration:
    """Refusal thresholds, fitted on the seed gold set by ``python -m eval.calibrate``."""

    min_cos: float = 0.82  # best sentence cosine to the query
    min_coverage: float = 0.7  # IDF-weighted share of query terms found in the passage (CJK queries)
    min_cos_crosslingual: float = 0.84  # queries with no CJK: only the cosine speaks

    @classmethod
    def load(cls, path: Path = CALIBRATION_FILE) -> Calibration:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        return cls(**{f.name: float(data[f.name]) for f in fields(cls) if f.name in data})


class Generator(Protocol):
    name: str

    def answer(self, query: str, qvec: np.ndarray, hits: list[Hit]) -> Answer: ...


def lexical(query: str, top: Hit) -> bool:
    """A Chinese question over Chinese text is matched by its words; any other pair (English over Chinese,
    Chinese over English, English over English) by sentence embeddings."""
    return has_cjk(query) and has_cjk(top.chunk.text)


def query_terms(query: str) -> list[str]:
    return list(_query_terms(query))


@lru_cache(maxsize=4096)
def _query_terms(query: str) -> tuple[str, ...]:  # score, concise, evidence_terms and the reader all ask
    return tuple(t for t in dict.fromkeys(jieba.lcut(normalize(query))) if t.strip() and t not in STOPWORDS
                 and any(ch.isalnum() for ch in t))


# Words that frame a question rather than name its topic ("目前共有多少", "分别是", "担任什么职务"): a passage that
# answers need not repeat them, so the answerability coverage leaves them out.
_FRAME = frozenset("按照 根据 分别 各自 要 需要 现在 当前 如今 共有 一共 总共 总计 担任 大约 约 主要 具体 包括 "
                   "哪几".split())


def evidence_terms(query: str) -> list[str]:
    """The query terms a passage answering it should hold: ``query_terms`` minus the frame words, the
    wh-words and the wh-phrase's head noun ("担任什么[职务]", "哪所[院校]": the answer names it, the passage
    need not), so coverage measures the topic the question is about, not its wording."""
    q = analyse(query)
    slot = q.right[: q.head] if q.head else ""
    return [t for t in query_terms(query)
            if t not in _FRAME and not WH.search(t) and not (slot and t == slot)]


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
                 calibration: Calibration | None = None, max_sentences: int = 3, passages: int = 5,
                 translate: Callable[[str], list[str]] | None = None) -> None:
        self.embedder = embedder
        self.translate = translate  # English query -> Chinese terms (rag/search/crosslingual.py)
        self.sentence_vectors = SentenceVectors(embedder.encode_passages, embedder.dim)
        self.idf = idf
        self.max_idf = math.log(1 + (n_docs + 0.5) / 0.5)
        self.cal = calibration or Calibration()
        self.max_sentences = max_sentences
        self.passages = passages

    def terms(self, query: str, text: str = "") -> list[str]:
        """The query's words to look for in ``text``: its own, or for an English query over Chinese text its
        translation."""
        if has_cjk(query) or (text and not has_cjk(text)):
            return query_terms(query)
        return self.translate(query) if self.translate is not None else []

    def score(self, query: str, qvec: np.ndarray,
              hits: list[Hit]) -> tuple[list[tuple[float, Hit, Sentence, float]], float]:
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
        terms = self.terms(query, hits[0].chunk.text)
        ev = evidence_terms(query)
        cov = max(coverage(ev, h.chunk.embed_text(), self.idf, self.max_idf) for h in hits[: self.passages])
        numeric = asks_number(query)
        scored = []
        if lexical(query, hits[0]):
            # Chinese questions: the question's own terms locate the answer sentence; the passage's
            # cosine breaks ties. No model call (measured: the sentence embeddings cost ~2 s/ask).
            for h, s in cands:
                lex = coverage(terms, s.text, self.idf, self.max_idf)
                c = float(h.dense or 0.0)
                bonus = 0.05 if numeric and _NUMBER.search(s.text) else 0.0
                scored.append((lex + 0.5 * c + bonus, h, s, c))
        else:
            # Cross-lingual questions share no words with the text: sentence cosines, plus the share of the
            # question's dictionary translation the sentence holds (its own words over English text).
            cands = [x for x in cands if x[0].rank <= 3]
            vecs = self.sentence_vectors([s.text for _, s in cands])
            for (h, s), c in zip(cands, (vecs @ qvec.reshape(-1)).tolist()):
                bonus = 0.02 if numeric and _NUMBER.search(s.text) else 0.0
                lex = coverage(terms, s.text, self.idf, self.max_idf) if terms else 0.0
                scored.append((c + bonus + XL_WEIGHT * lex, h, s, c))
        scored.sort(key=lambda x: -x[0])
        return scored, cov

    def concise(self, query: str, qvec: np.ndarray, sentence: str) -> str:
        """The clause(s) of a long sentence that answer the query: best clause by cosine + term
        coverage, widened to a neighbour when it holds nothing beyond the query's own words."""
        clauses = [m.group() for m in _CLAUSE.finditer(sentence)]
        if len(sentence) <= 40 or len(clauses) < 3 or not has_cjk(sentence):
            return sentence  # an English sentence cut at its commas loses its verb ("The Ordos Laboratory,")
        terms = self.terms(query)
        if has_cjk(query):
            cos = [0.0] * len(clauses)
        else:
            vecs = self.sentence_vectors(clauses)
            cos = (vecs @ qvec.reshape(-1)).tolist()
        numeric = asks_number(query) and any(_NUMBER.search(t) for t in clauses)
        score = [c + 0.1 * coverage(terms, t, self.idf, self.max_idf) + (0.03 if numeric and _NUMBER.search(t) else 0)
                 for c, t in zip(cos, clauses)]
        i = int(np.argmax(score))
        lo, hi = i, i + 1

        def incomplete() -> bool:
            window = clauses[lo:hi]
            return _novel(window, terms) < 3 or (numeric and not any(_NUMBER.search(t) for t in window))

        while incomplete() and (lo > 0 or hi < len(clauses)):
            if hi < len(clauses) and (lo == 0 or score[hi] >= score[lo - 1]):
                hi += 1
            else:
                lo -= 1
        text = "".join(clauses[lo:hi]).rstrip("，,；;：:")
        return text if text.endswith(("。", "！", "？", ".", "!", "?")) else text + ("。" if has_cjk(text) else "")

    def features(self, query: str, qvec: np.ndarray, hits: list[Hit]) -> tuple[float, float]:
        """(best sentence cosine, best passage coverage): the evidence the refusal rests on."""
        scored, cov = self.score(query, qvec, hits)
        if not scored:
            return 0.0, 0.0
        return float(scored[0][3]), cov

    def answerable(self, query: str, best_cos: float, cov: float, top: Hit | None = None) -> bool:
        """The fitted thresholds: passage cosine and topic coverage for a Chinese question over Chinese text
        (``top``: the best passage), the best sentence's cosine otherwise."""
        if top is None or not lexical(query, top):
            return best_cos >= self.cal.min_cos_crosslingual
        return best_cos >= self.cal.min_cos and cov >= self.cal.min_coverage

    def has_answer_type(self, query: str, scored: list[tuple[float, Hit, Sentence, float]], top: int = 3) -> bool:
        """A question asking for a number, amount, rank or date is answered only by a sentence carrying a
        number the question does not already hold (a passage restating the question is not an answer)."""
        if not asks_number(query):
            return True
        asked = set(_NUM_TOKEN.findall(normalize(query)))
        return any(set(_NUM_TOKEN.findall(normalize(s.text))) - asked for _, _, s, _ in scored[:top])

    def answer(self, query: str, qvec: np.ndarray, hits: list[Hit]) -> Answer:
        lang = language(query)
        scored, cov = self.score(query, qvec, hits)
        if not scored:
            return Answer("", False, [], hits, REFUSAL[lang])
        best = scored[0][0]
        short = self.supported(query, qvec, scored, cov)
        if short is False:
            return Answer("", False, [], hits, REFUSAL[lang])
        margin = 0.02 if not has_cjk(query) else 0.05
        chosen = [x for x in scored[: self.max_sentences] if x[0] >= best - margin]
        chosen.sort(key=lambda x: (x[1].rank, x[2].start))
        numbers: dict[int, int] = {}
        citations: list[Citation] = []
        parts: list[str] = []
        for sc, h, s, _c in chosen:
            n = numbers.setdefault(h.chunk.chunk_id, len(numbers) + 1)
            citations.append(Citation(n, h, s.text, s.start, s.end, True, round(float(sc), 4)))
            parts.append(f"{self.concise(query, qvec, s.text)}[{n}]")
        sep = "" if lang != "en" or has_cjk("".join(parts)) else " "
        a = Answer(sep.join(parts), True, citations, hits)
        if short is not None:
            self.add_short_answer(a, short)
        return a

    def supported(self, query: str, qvec: np.ndarray, scored: list[tuple[float, Hit, Sentence, float]],
                  cov: float) -> ShortAnswer | None | Literal[False]:
        """Whether the ranked sentences support an answer: False to refuse, else the short answer (or None).

        In order, cheapest first: the fitted evidence thresholds (cosine, topic coverage); a number/date
        question needs a sentence with a new number; a dated question, a passage of that year; and a
        number/date question, a number or date where the reader says its words point (RGB's distractors
        are about the topic but do not hold the answer)."""
        top = min((x[1] for x in scored), key=lambda h: h.rank)
        if not self.answerable(query, float(scored[0][3]), cov, top) or not self.has_answer_type(query, scored):
            return False
        if year_conflict(query, scored[0][1].chunk.embed_text()):
            return False
        if has_cjk(scored[0][2].text):
            short = read(query, scored, self.terms(query), self.sentence_vectors, qvec)
            if asks_number(query) and not fits_type(query, short.text if short else ""):
                return False
        else:  # English evidence: the number check above is the type check; a span only for English questions
            short = None if has_cjk(query) else read_english(query, scored)
        return short

    @staticmethod
    def add_short_answer(a: Answer, short: ShortAnswer) -> None:
        """Set ``a.short_answer`` (rag/answer/reader.py) and point it at its citation, adding one if needed."""
        key = (short.hit.chunk.chunk_id, short.sentence.start)
        for c in a.citations:
            if (c.hit.chunk.chunk_id, c.quote_start) == key:
                a.short_citation = c.n
                break
        else:  # read from an uncited sentence: it joins the answer, cited, so every [n] stays in the text
            same = next((c.n for c in a.citations if c.hit.chunk.chunk_id == short.hit.chunk.chunk_id), None)
            n = same or max((c.n for c in a.citations), default=0) + 1
            a.citations.append(Citation(n, short.hit, short.sentence.text, short.sentence.start,
                                        short.sentence.end, True, short.score))
            a.text += f"{short.sentence.text}[{n}]" if has_cjk(a.text) else f" {short.sentence.text}[{n}]"
            a.short_citation = n
        a.short_answer = short.text


def asks_number(query: str) -> bool:
    """The question asks for an amount, count, rank or date (its answer holds a number)."""
    return analyse(query).kind in ("number", "date")


def year_conflict(query: str, passage: str) -> bool:
    """The question dates itself ("2021年…") and the passage is about other years only: its figures answer
    another year's question (RGB's distractors are last year's news). A passage naming no year passes."""
    asked = set(_YEAR.findall(normalize(query)))
    named = set(_YEAR.findall(normalize(passage)))
    return bool(asked and named and not asked & named)


def _novel(clauses: list[str], terms: list[str]) -> int:
    """Characters of the clauses that are not the query's own words (the new information)."""
    t = normalize("".join(clauses))
    for term in sorted(terms, key=len, reverse=True):
        t = t.replace(term, "")
    return sum(1 for ch in t if ch.isalnum())
