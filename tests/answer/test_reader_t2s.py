"""The trained reader reads traditional Chinese converted to simplified (``RAG_READER_T2S``) and answers with the
document's own traditional characters, at the offsets of the original text (issue 22, DRCD)."""

from __future__ import annotations

from pathlib import Path

import pytest

import rag.core.text as text_mod
from rag.answer.learned import ReaderGenerator
from rag.answer.model_reader import OnnxReader
from rag.core.text import simplified_aligned, to_simplified
from rag.core.types import Chunk, Hit, Sentence

pytestmark = pytest.mark.integration

Q = "專項資金的年度預算是多少？"
FILLER = "該辦法對各類主體的申報程序作出了一般性規定。"
ANSWER = "專項資金的年度預算為1200萬元，由財政廳統一撥付。"
PASSAGE = FILLER + ANSWER


@pytest.fixture(scope="module")
def reader(settings) -> OnnxReader:  # type: ignore[no-untyped-def]
    return OnnxReader(Path(settings.models_dir) / "reader-e5-small", t2s=True)


class _Longer:
    """A converter that changes the length (as a phrase table entry of another length would)."""

    def convert(self, text: str) -> str:
        return text.replace("專", "专").replace("萬", "一万")


def test_aligned_conversion_keeps_offsets_or_says_it_cannot():
    s = simplified_aligned(PASSAGE)
    assert s is not None and len(s) == len(PASSAGE) and "1200万元" in s and s != PASSAGE
    i = s.index("1200万元")
    assert PASSAGE[i:i + 6] == "1200萬元"  # the same offsets into the original
    assert simplified_aligned("专项资金1200万元") == "专项资金1200万元"  # simplified: unchanged
    assert simplified_aligned("Budget: 12 million") == "Budget: 12 million"
    assert to_simplified(Q) == "专项资金的年度预算是多少？"


def test_reads_simplified_and_returns_the_traditional_span(reader):
    (q,), (view,) = reader.view(Q, [PASSAGE])
    assert q == "专项资金的年度预算是多少？" and "1200万元" in view and len(view) == len(PASSAGE)
    (r,) = reader.read(Q, [PASSAGE])
    # the span is cut from the original: traditional 萬, not the 万 the model read, at the original's offsets
    assert "1200萬元" in r.text and "万" not in r.text
    assert PASSAGE[r.start:r.end] == r.text and r.start >= len(FILLER)


def test_generator_answers_and_cites_in_traditional(reader):
    sents, pos = [], 0
    for s in (FILLER, ANSWER):
        sents.append(Sentence(s, pos, pos + len(s)))
        pos += len(s)
    hit = Hit(Chunk(1, "d1", PASSAGE, 0, pos, sentences=sents), 1.0, 1)
    a = ReaderGenerator(reader).answer(Q, None, [hit])  # type: ignore[arg-type]
    assert a.answerable and "1200萬元" in a.short_answer
    cited = next(c for c in a.citations if c.n == a.short_citation)
    assert cited.quote == ANSWER and (cited.quote_start, cited.quote_end) == (len(FILLER), len(PASSAGE))


def test_a_length_changing_conversion_reads_the_original(reader, monkeypatch):
    monkeypatch.setattr(text_mod, "_t2s", lambda: _Longer())
    other = "專項資金由財政廳統一撥付。"  # no 萬: its conversion keeps the length
    assert simplified_aligned(PASSAGE) is None
    _, (v1, v2) = reader.view(Q, [PASSAGE, other])
    assert v1 == PASSAGE  # its length would change: read as given
    assert v2 == "专項資金由財政廳統一撥付。"  # the same length: converted
    r1, _ = reader.read(Q, [PASSAGE, other])
    assert PASSAGE[r1.start:r1.end] == r1.text and "1200" in r1.text


def test_setting_defaults_off_and_reaches_the_served_reader(seed_index, real_embedder, settings):
    from rag.core.config import Settings
    from rag.pipeline import Pipeline

    assert Settings().reader_t2s == "off"  # DRCD dev did not gain (bench/results/reader_t2s.md)
    assert Settings(reader_t2s="mismatch").reader_t2s == "mismatch"
    for mode in ("always", "off"):
        s = settings.model_copy(update={"index_dir": seed_index, "reader": "model", "reader_t2s": mode})
        p = Pipeline(s, embedder=real_embedder).load()
        assert isinstance(p.generator, ReaderGenerator) and p.generator.reader.t2s == mode


def test_mismatch_converts_only_where_the_scripts_differ(settings):
    r = OnnxReader(Path(settings.models_dir) / "reader-e5-small", t2s="mismatch")
    simp = "专项资金的年度预算为1200万元。"
    qs, ps = r.view(Q, [PASSAGE, simp])
    assert ps == [PASSAGE, simp] and qs == [Q, "专项资金的年度预算是多少？"]  # traditional question: over simp only
    qs, ps = r.view("专项资金的年度预算是多少？", [PASSAGE, simp])
    assert ps == [simplified_aligned(PASSAGE), simp] and qs == ["专项资金的年度预算是多少？"] * 2
    with pytest.raises(ValueError, match="mismatch"):
        OnnxReader(Path(settings.models_dir) / "reader-e5-small", t2s="sometimes")
