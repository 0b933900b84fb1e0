"""Answer a question in one of two modes, extractive or LLM, with refusal decided by retrieval evidence.

1. Retrieve (hybrid) and run the extractive generator: its answerability check (``score`` + ``answerable``)
   decides refusal, and its cited sentences are the fallback answer.
2. ``mode="llm"`` and answerable: prompt the LLM with numbered passages, verify its [n] citations
   (rag/answer/citations.py), drop unsupported ones.
3. Degrade, never fail: no LLM configured, LLM timeout / 5xx / connection refused, its deadline passed, no
   free LLM slot, a reply over the size cap, a stream cut off before ``[DONE]``, or an LLM answer with no
   supported citation -> the extractive answer, with a ``warnings`` entry (never naming the LLM's URL).
   Passages are always returned. At most ``MAX_CITATIONS`` citations are kept.

``stream_answer`` yields ``("token", str)`` ... ``("citations", list[Citation])``, ``("done", Answer)``;
the final Answer's text (citations verified) replaces the streamed tokens.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rag.answer.citations import MARKER, split_sentences, strip_markers, verify_citations
from rag.answer.extractive import REFUSAL, language
from rag.answer.llm import PROMPT_PASSAGES, build_messages, is_refusal
from rag.core.errors import GeneratorError, InvalidInputError
from rag.core.types import Answer, Citation, Hit

logger = logging.getLogger(__name__)

MODES = ("extractive", "llm")
Mode = Literal["extractive", "llm"]
Event = tuple[str, Any]

NO_LLM = "no LLM configured (set RAG_LLM_BASE_URL); returned the extractive answer"
# An LLM answer keeps at most this many citations (a runaway reply citing [1] in every sentence would
# otherwise return one citation object, with its quote, per sentence).
MAX_CITATIONS = 50


@dataclass
class _Prepared:
    query: str
    hits: list[Hit]
    qvec: np.ndarray
    base: Answer  # the extractive answer (or refusal)
    timings: dict[str, float]
    t0: float
    llm_refuses: bool = True
    notes: Any = None  # Answer -> warnings about the cited documents' validity (Pipeline.validity_notes)


def _prepare(pipeline: Any, query: str, top_k: int, mode: str, filters: Any = None) -> _Prepared:
    if mode not in MODES:
        raise InvalidInputError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    hits, qvec = (pipeline.search(query, top_k, "hybrid", timings) if filters is None
                  else pipeline.search(query, top_k, "hybrid", timings, filters))
    q = query.strip()
    assert qvec is not None
    t1 = time.perf_counter()
    base = pipeline.extractive(q, qvec, hits, timings)  # the refusal decision (and the judge, when set)
    timings["extractive_ms"] = (time.perf_counter() - t1) * 1000
    settings = getattr(pipeline, "settings", None)
    flag = getattr(pipeline, "validity_notes", None)
    notes = (lambda a: flag(a, filters)) if callable(flag) else None
    return _Prepared(q, hits, qvec, base, timings, t0, bool(getattr(settings, "llm_refusal", True)), notes)


def flag(a: Answer, notes: list[str]) -> Answer:
    """Validity notes on the cited documents (``《A》：该文件已于…被《B》废止``): in ``warnings``, and under the
    answer text, so a reader of the text alone (a chat client) sees them too."""
    fresh = [n for n in notes if n not in a.warnings]
    if fresh and a.answerable and a.text:
        a.text = a.text.rstrip() + "\n\n" + "\n".join(f"注意：{n}" for n in fresh)
    a.warnings = list(dict.fromkeys([*a.warnings, *notes]))
    return a


def _finish(a: Answer, p: _Prepared, mode: str, warnings: list[str] | None = None) -> Answer:
    a.mode = mode
    a.warnings = list(dict.fromkeys([*a.warnings, *(warnings or [])]))
    flag(a, p.notes(a) if p.notes else [])
    p.timings["total_ms"] = (time.perf_counter() - p.t0) * 1000
    a.timings = {k: round(v, 2) for k, v in p.timings.items() if not math.isnan(v)}
    return a


def _degrade(p: _Prepared, why: str) -> Answer:
    logger.warning("LLM answer degraded to extractive: %s", why)
    return _finish(p.base, p, "extractive", [why])


def _no_answer(p: _Prepared) -> Answer:
    """The LLM read the passages and found no answer. With ``llm_refusal`` it is a second judge after
    retrieval: answerable false. Without, the extractive answer stands, with a warning."""
    if not p.llm_refuses:
        return _degrade(p, "the LLM found no answer in the passages; returned the extractive answer")
    a = Answer("", False, [], p.hits, REFUSAL[language(p.query)], "llm",
               ["the passages were retrieved but the LLM found no answer in them"])
    return _finish(a, p, "llm")


def _llm_result(p: _Prepared, raw: str, embedder: Any) -> Answer:
    refused = is_refusal(strip_markers(raw))
    # An uncited refusal is never verified: the uncited-sentence attribution would pin it on a passage.
    if refused and not MARKER.search(raw):
        return _no_answer(p)
    t = time.perf_counter()
    passages = p.hits[:PROMPT_PASSAGES]
    v = verify_citations(raw, passages, embedder)
    p.timings["verify_ms"] = (time.perf_counter() - t) * 1000
    if not v.supported:
        if refused:
            return _no_answer(p)
        return _degrade(p, "the LLM answer had no citation supported by the passages; "
                           "returned the extractive answer")
    a = Answer(v.text, True, v.citations[:MAX_CITATIONS], p.hits)
    warnings = v.warnings()
    if len(v.citations) > MAX_CITATIONS:
        warnings.append(f"the LLM answer had {len(v.citations)} citations; only the first {MAX_CITATIONS} "
                        "are returned")
    _carry_short(p.base, a)
    return _finish(a, p, "llm", warnings)


def _carry_short(base: Answer, a: Answer) -> None:
    """The extractive reader's short answer (rag/answer/reader.py) goes with the LLM answer when the LLM cites the
    passage it was read from (pointing at that citation); otherwise the LLM answered from elsewhere: none."""
    src = next((c for c in base.citations if c.n == base.short_citation), None)
    if not base.short_answer or src is None:
        return
    same = next((c for c in a.citations if c.hit.chunk.chunk_id == src.hit.chunk.chunk_id), None)
    if same is not None:
        a.short_answer, a.short_citation = base.short_answer, same.n


def answer(pipeline: Any, query: str, top_k: int = 5, mode: Mode | str = "extractive", generator: Any = None,
           temperature: float | None = None, max_tokens: int | None = None, filters: Any = None) -> Answer:
    """Answer ``query`` from ``pipeline`` (a loaded rag.pipeline.Pipeline); see the module doc."""
    p = _prepare(pipeline, query, top_k, mode, filters)
    if mode == "extractive" or not p.base.answerable:
        return _finish(p.base, p, mode)
    if generator is None:
        return _degrade(p, NO_LLM)
    t = time.perf_counter()
    try:
        raw = generator.chat(build_messages(p.query, p.hits), temperature=temperature, max_tokens=max_tokens)
    except GeneratorError as e:
        return _degrade(p, f"{e.message}; returned the extractive answer")
    except Exception as e:  # noqa: BLE001 - degrade, never fail
        logger.exception("LLM call failed")
        return _degrade(p, f"LLM call failed ({type(e).__name__}); returned the extractive answer")
    finally:
        p.timings["llm_ms"] = (time.perf_counter() - t) * 1000
    return _llm_result(p, raw, _embedder(pipeline))


def stream_answer(pipeline: Any, query: str, top_k: int = 5, mode: Mode | str = "extractive",
                  generator: Any = None, temperature: float | None = None,
                  max_tokens: int | None = None, filters: Any = None) -> Iterator[Event]:
    """Retrieve now (typed errors raise here, before any event), then return the event iterator."""
    p = _prepare(pipeline, query, top_k, mode, filters)
    return _events(pipeline, p, mode, generator, temperature, max_tokens)


def _whole(a: Answer) -> Iterator[Event]:
    for s, _, _ in split_sentences(a.text if a.answerable else a.message):
        yield "token", s
    yield "citations", a.citations
    yield "done", a


def _events(pipeline: Any, p: _Prepared, mode: str, generator: Any, temperature: float | None,
            max_tokens: int | None) -> Iterator[Event]:
    if mode == "extractive" or not p.base.answerable:
        yield from _whole(_finish(p.base, p, mode))
        return
    if generator is None:
        yield from _whole(_degrade(p, NO_LLM))
        return
    t = time.perf_counter()
    pieces: list[str] = []
    try:
        for piece in generator.stream_chat(build_messages(p.query, p.hits), temperature=temperature,
                                           max_tokens=max_tokens):
            if not pieces:
                p.timings["first_token_ms"] = (time.perf_counter() - t) * 1000
            pieces.append(piece)
            yield "token", piece
    except GeneratorError as e:
        p.timings["llm_ms"] = (time.perf_counter() - t) * 1000
        yield from _fallback(p, f"{e.message}; returned the extractive answer", bool(pieces))
        return
    except Exception as e:  # noqa: BLE001 - degrade, never fail
        logger.exception("LLM stream failed")
        p.timings["llm_ms"] = (time.perf_counter() - t) * 1000
        yield from _fallback(p, f"LLM call failed ({type(e).__name__}); returned the extractive answer",
                             bool(pieces))
        return
    p.timings["llm_ms"] = (time.perf_counter() - t) * 1000
    a = _llm_result(p, "".join(pieces), _embedder(pipeline))
    yield "citations", a.citations
    yield "done", a


def _fallback(p: _Prepared, why: str, streamed: bool) -> Iterator[Event]:
    a = _degrade(p, why)
    if streamed:  # tokens already sent are superseded by the done event's text
        yield "citations", a.citations
        yield "done", a
    else:
        yield from _whole(a)


def _embedder(pipeline: Any) -> Any:
    try:
        return pipeline.embedder
    except Exception:  # noqa: BLE001 - verification then runs lexically only
        return None


__all__ = ["MODES", "Citation", "answer", "flag", "stream_answer"]
