"""The default answer generator: the trained reader + cross-encoder (``model_reader``) reads the top passages.

For each of the top ``passages`` hits the reader gives its best span, the span's score over the "no answer"
score, and the cross-encoder's relevance. The answer is the span of the passage that scores best; it is refused
(the honest "not in the documents") when that span's score or its passage's relevance falls under the thresholds
fitted on the held-out training split (``export.json`` calibration, ``RAG_READER_MARGIN`` shifts both).

The cited sentence is the one that holds the span (not a neighbouring clause), so every citation contains the
short answer it supports; a second passage whose own best span also clears the thresholds adds its sentence (a
question whose answer is spread over two documents), up to ``max_sentences``.

Early exit (``cascade`` = k > 0, ``RAG_READER_CASCADE``): the first k passages are read in one call; when the best
of their spans clears the fitted threshold by ``cascade_margin`` (``RAG_READER_CASCADE_MARGIN``) the rest are not
read, otherwise they are and the answer is decided over all of them as without the cascade. An early stop can only
happen on a span the full read would also accept, so the answered / refused decision is the same as the full
read's; what can change is which span wins, when a later passage would have scored higher still (the margin keeps
that rare: bench/results/reader_cascade.md).
"""

from __future__ import annotations

import numpy as np

from rag.answer.extractive import REFUSAL, Generator, language
from rag.answer.model_reader import OnnxReader, Read
from rag.core.text import has_cjk
from rag.core.types import Answer, Citation, Hit, Sentence

# Punctuation trimmed off a span's ends. Cutting more (the first amount in a number question's span, the
# question's own words at an edge) lowered span F1 on the held-out training split (0.600 -> 0.588 / 0.597), so
# the reader's span stands as read.
_EDGE = " \t\n，,。.；;：:、！!？?"


def passage_of(hit: Hit) -> tuple[str, list[tuple[int, int, Sentence]]]:
    """The text the reader reads (the chunk's sentences, joined as the chunker joins them) and where each
    sentence sits in it."""
    text, spans = "", []
    for s in hit.chunk.sentences:
        if text:
            text += " " if text[-1].isascii() and s.text[:1].isascii() else ""
        spans.append((len(text), len(text) + len(s.text), s))
        text += s.text
    if not spans:  # a chunk stored without sentences: one sentence, the whole chunk
        spans = [(0, len(hit.chunk.text), Sentence(hit.chunk.text, hit.chunk.start, hit.chunk.end))]
        text = hit.chunk.text
    return text, spans


def sentence_at(spans: list[tuple[int, int, Sentence]], start: int, end: int) -> Sentence | None:
    """The sentence holding the span's start; a span across a sentence end keeps its first sentence."""
    for a, b, s in spans:
        if a <= start < b:
            return s
    return None


class ReaderGenerator:
    name = "reader"

    def __init__(self, reader: OnnxReader, passages: int = 5, max_sentences: int = 2, margin: float = 0.0,
                 second_gap: float = 2.0, crosslingual: Generator | None = None, cascade: int = 0,
                 cascade_margin: float = 2.0) -> None:
        self.reader = reader
        # English questions over Chinese passages: the reader was trained within one language and refuses or
        # misreads them (seed English: 0 of 13 answered), so they go to this generator (the rules' dictionary
        # translation and sentence cosines) until a cross-lingual reader is trained.
        self.crosslingual = crosslingual
        self.passages = passages
        self.max_sentences = max_sentences
        cal = reader.calibration
        self.min_answer = cal.min_answer + margin
        self.min_relevance = cal.min_relevance + margin
        self.min_score = None if cal.min_score is None else cal.min_score + margin
        self.second_gap = second_gap
        if cascade < 0 or cascade_margin < 0:
            raise ValueError(f"cascade {cascade} and cascade_margin {cascade_margin} must be >= 0")
        self.cascade, self.cascade_margin = cascade, cascade_margin

    def read(self, query: str, hits: list[Hit]) -> list[tuple[Hit, Read, list[tuple[int, int, Sentence]]]]:
        top = hits[: self.passages]
        texts = [passage_of(h) for h in top]
        k = self.cascade
        if 0 < k < len(top):
            first = self.reader.read(query, [t for t, _ in texts[:k]])
            out = [(h, r, spans) for h, r, (_, spans) in zip(top[:k], first, texts[:k])]
            if any(self.confident(r, spans) for _, r, spans in out):
                return out
            rest = self.reader.read(query, [t for t, _ in texts[k:]])
            return out + [(h, r, spans) for h, r, (_, spans) in zip(top[k:], rest, texts[k:])]
        reads = self.reader.read(query, [t for t, _ in texts])
        return [(h, r, spans) for h, r, (_, spans) in zip(top, reads, texts)]

    def confident(self, r: Read, spans: list[tuple[int, int, Sentence]]) -> bool:
        """A span the answer would use (``ok``, inside a sentence) that clears the thresholds by the cascade
        margin: enough to stop reading."""
        if not self.ok(r) or sentence_at(spans, r.start, r.end) is None:
            return False
        m = self.cascade_margin
        if self.min_score is not None:
            return r.answer + r.relevance >= self.min_score + m
        return r.answer >= self.min_answer + m and r.relevance >= self.min_relevance + m

    def ok(self, r: Read) -> bool:
        if r.start < 0 or not r.text:
            return False
        if self.min_score is not None:
            return r.answer + r.relevance >= self.min_score
        return r.answer >= self.min_answer and r.relevance >= self.min_relevance

    def answer(self, query: str, qvec: np.ndarray, hits: list[Hit]) -> Answer:
        if self.crosslingual is not None and hits and not has_cjk(query) and has_cjk(hits[0].chunk.text):
            return self.crosslingual.answer(query, qvec, hits)
        lang = language(query)
        read = self.read(query, hits) if hits else []
        read.sort(key=lambda x: -(x[1].answer + x[1].relevance))
        good = [x for x in read if self.ok(x[1]) and sentence_at(x[2], x[1].start, x[1].end) is not None]
        if not good:
            best = max((x[1].answer for x in read), default=float("nan"))
            return Answer("", False, [], hits, REFUSAL[lang],
                          warnings=[] if not read else [f"reader: best span score {best:.2f} under the threshold"])
        h0, r0, spans0 = good[0]
        chosen = [(h0, r0, sentence_at(spans0, r0.start, r0.end))]
        top_score = r0.answer + r0.relevance
        for h, r, spans in good[1:]:
            if len(chosen) >= self.max_sentences or r.answer + r.relevance < top_score - self.second_gap:
                break
            s = sentence_at(spans, r.start, r.end)
            if s is not None and all(s.text != c[2].text for c in chosen if c[2] is not None):
                chosen.append((h, r, s))
        citations: list[Citation] = []
        numbers: dict[int, int] = {}
        parts: list[str] = []
        for h, r, s in chosen:
            assert s is not None
            n = numbers.setdefault(h.chunk.chunk_id, len(numbers) + 1)
            citations.append(Citation(n, h, s.text, s.start, s.end, True, round(float(r.answer), 4)))
            parts.append(f"{s.text}[{n}]")
        sep = "" if has_cjk("".join(parts)) else " "
        a = Answer(sep.join(parts), True, citations, hits, mode="extractive")
        a.short_answer, a.short_citation = r0.text.strip(_EDGE) or r0.text, citations[0].n
        return a
