"""The trained reader + cross-encoder as served (ONNX export of the committed LoRA delta): real model, no mocks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.answer.learned import ReaderGenerator, passage_of, sentence_at
from rag.answer.model_reader import OnnxReader
from rag.core.errors import ModelNotInstalledError
from rag.core.types import Chunk, Hit, Sentence

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = ROOT / "training" / "artifacts" / "reader-e5-small-lora"


@pytest.fixture(scope="module")
def reader(settings) -> OnnxReader:  # type: ignore[no-untyped-def]
    return OnnxReader(Path(settings.models_dir) / "reader-e5-small")


def _hit(chunk_id: int, sentences: list[str]) -> Hit:
    sents, pos = [], 0
    for s in sentences:
        sents.append(Sentence(s, pos, pos + len(s)))
        pos += len(s)
    return Hit(Chunk(chunk_id, f"d{chunk_id}", "".join(sentences), 0, pos, sentences=sents), 1.0, chunk_id)


@pytest.mark.xfail(strict=True, reason="known defect of the committed delta (runs B, C and E): its null score "
                   "beats the span (read as 全区将建成新型研发机构50家) on this short passage, so the fitted threshold "
                   "refuses a plain answer (issue 22)")
def test_reads_the_span_and_says_no_when_the_passage_does_not_answer(reader):
    q = "内蒙古计划到2025年建成多少家新型研发机构？"
    yes = "到2025年，全区将建成新型研发机构50家，培育科技型中小企业3000家。"
    no = "自治区将加强知识产权保护，完善科技成果转化的激励机制。"
    a, b = reader.read(q, [yes, no])
    assert "50" in a.text and yes[a.start:a.end] == a.text
    assert a.answer > b.answer and a.relevance > b.relevance
    gen = ReaderGenerator(reader)  # the served decision: the fitted thresholds
    assert gen.ok(a) and not gen.ok(b)


def test_long_passage_is_read_in_windows(reader):
    filler = "该办法对各类主体的申报程序作出了一般性规定。" * 40  # > 256 tokens: the answer is in a later window
    text = filler + "专项资金的年度预算为1200万元。"
    (r,) = reader.read("专项资金的年度预算是多少？", [text])
    assert "1200万元" in r.text and r.start > len(filler) - 5


def test_generator_cites_the_sentence_holding_the_span(reader):
    hits = [_hit(1, ["鄂尔多斯实验室成立于2021年。", "实验室主任由王教授担任，他是清华大学的教授。",
                     "实验室共有科研人员300人。"]),
            _hit(2, ["呼和浩特市培育了12家技术转移机构。"])]
    gen = ReaderGenerator(reader)
    a = gen.answer("鄂尔多斯实验室有多少科研人员？", None, hits)  # type: ignore[arg-type]
    assert a.answerable and "300" in a.short_answer
    cited = next(c for c in a.citations if c.n == a.short_citation)
    assert a.short_answer in cited.quote and cited.quote == "实验室共有科研人员300人。"


def test_generator_refuses_when_no_passage_answers(reader):
    hits = [_hit(1, ["自治区将加强知识产权保护。", "完善科技成果转化的激励机制。"])]
    a = ReaderGenerator(reader).answer("火星探测器的发射时间是哪一年？", None, hits)  # type: ignore[arg-type]
    assert not a.answerable and not a.citations


def test_passage_offsets_map_back_to_sentences():
    h = _hit(1, ["First sentence.", "Second one here."])
    text, spans = passage_of(h)
    assert text == "First sentence. Second one here."
    i = text.index("Second")
    s = sentence_at(spans, i, i + 6)
    assert s is not None and s.text == "Second one here."


def test_altered_onnx_file_is_refused(settings, tmp_path):
    src = Path(settings.models_dir) / "reader-e5-small"
    dst = tmp_path / "reader"
    shutil.copytree(src, dst)
    name = "model_int8.onnx" if OnnxReader(src).int8 else "model.onnx"
    data = bytearray((dst / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (dst / name).write_bytes(bytes(data))
    with pytest.raises(ModelNotInstalledError, match="sha256"):
        OnnxReader(dst)


def test_altered_delta_is_refused_at_install(tmp_path):
    from training.export import check_sums

    dst = tmp_path / "delta"
    shutil.copytree(ARTIFACT, dst)
    check_sums(dst)  # the committed delta matches its SHA256SUMS
    with open(dst / "heads.safetensors", "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(RuntimeError, match="does not match"):
        check_sums(dst)


def test_reader_setting_serves_the_trained_reader(seed_index, real_embedder, settings):
    from rag.pipeline import Pipeline

    s = settings.model_copy(update={"index_dir": seed_index, "reader": "model"})
    p = Pipeline(s, embedder=real_embedder).load()
    assert isinstance(p.generator, ReaderGenerator) and set(p.generators) == {"model", "rules"}
    a = p.ask("鄂尔多斯实验室的主任是谁？", 5)
    assert a.answerable and a.short_answer
    assert any(a.short_answer in c.quote for c in a.citations)


# --- issue 22 speed: parallel groups and the early-exit cascade -------------------------------------------------

_Q = "专项资金的年度预算是多少？"
_FILLER = "该办法对各类主体的申报程序作出了一般性规定。"
_PASSAGES = [_FILLER * k + "专项资金的年度预算为1200万元。" for k in (1, 3, 6, 12, 2)]


def test_groups_cut_sorted_windows_into_balanced_contiguous_groups():
    lengths = [10, 200, 250, 30, 240]
    parts = OnnxReader.groups(lengths, 2)
    assert sorted(i for p in parts for i in p) == [0, 1, 2, 3, 4]
    assert [i for p in parts for i in p] == sorted(range(5), key=lambda i: -lengths[i])  # longest first
    assert parts == [[2, 4], [1, 3, 0]]  # 2 x 250 = 500 against 3 x 200 = 600: the best cut
    assert OnnxReader.groups([7], 2) == [[0]] and OnnxReader.groups([5, 5, 5, 5], 2) == [[0, 1], [2, 3]]
    assert OnnxReader.groups([3, 2, 1], 8) == [[0], [1], [2]]


def test_parallel_groups_give_the_single_call_outputs(settings):
    """fp32: the same logits as one padded call, window by window (to float rounding)."""
    r = OnnxReader(Path(settings.models_dir) / "reader-e5-small", int8=False, threads=2)
    ids, _ = r._windows(_Q, _PASSAGES)
    one = r._run(ids)
    r.parallel = True
    two = r._run(ids)
    assert r._single is not None  # the grouped path ran
    for w, x in enumerate(ids):
        n = len(x)
        np.testing.assert_allclose(two[0][w, :n], one[0][w, :n], atol=1e-4)
        np.testing.assert_allclose(two[1][w, :n], one[1][w, :n], atol=1e-4)
        np.testing.assert_allclose(two[2][w], one[2][w], atol=1e-4)
    a, b = r.read(_Q, _PASSAGES), r.read(_Q, _PASSAGES)  # read through the groups twice: deterministic
    r.parallel = False
    c = r.read(_Q, _PASSAGES)
    assert [(x.text, x.start, x.end) for x in a] == [(x.text, x.start, x.end) for x in c]
    assert [x.answer for x in a] == [x.answer for x in b]
    np.testing.assert_allclose([x.answer for x in a], [x.answer for x in c], atol=1e-3)


def test_parallel_int8_reads_the_same_spans(reader):
    """int8 quantises activations per call, so a window's scores move a little with its batch (measured up to
    0.5 on these windows, as between a window read alone and in a batch); the spans stay the same."""
    assert reader.int8 and reader.threads >= 2
    before = reader.parallel
    try:
        reader.parallel = False
        a = reader.read(_Q, _PASSAGES)
        reader.parallel = True
        b = reader.read(_Q, _PASSAGES)
    finally:
        reader.parallel = before
    assert [(x.text, x.start, x.end) for x in a] == [(x.text, x.start, x.end) for x in b]
    assert all("1200万元" in x.text for x in b)
    np.testing.assert_allclose([x.answer for x in a], [x.answer for x in b], atol=1.0)
    np.testing.assert_allclose([x.relevance for x in a], [x.relevance for x in b], atol=0.3)


def _cascade_hits() -> list[Hit]:
    return [_hit(1, ["鄂尔多斯实验室成立于2021年。", "实验室共有科研人员300人。"]),
            _hit(2, ["呼和浩特市培育了12家技术转移机构。"]),
            _hit(3, ["自治区将加强知识产权保护。", "完善科技成果转化的激励机制。"]),
            _hit(4, ["包头稀土高新区引进了一批研发团队。"]),
            _hit(5, ["全区高新技术企业数量达到1200家。"])]


def test_cascade_stops_on_a_confident_answer_with_the_full_reads_answer(reader):
    hits = _cascade_hits()
    q = "鄂尔多斯实验室有多少科研人员？"
    full, casc = ReaderGenerator(reader), ReaderGenerator(reader, cascade=2, cascade_margin=2.0)
    assert len(casc.read(q, hits)) == 2  # stopped after the first call
    top = full.read(q, hits)[0][1]
    assert top.answer + top.relevance >= casc.min_score + 2.0  # it stopped because the span cleared the margin
    a, b = full.answer(q, None, hits), casc.answer(q, None, hits)  # type: ignore[arg-type]
    assert b.answerable and "300" in b.short_answer
    assert (a.answerable, a.short_answer, a.text, [c.quote for c in a.citations]) == \
        (b.answerable, b.short_answer, b.text, [c.quote for c in b.citations])
    # a margin no span clears: the rest is read and the answer decided over all five
    assert len(ReaderGenerator(reader, cascade=2, cascade_margin=50.0).read(q, hits)) == 5


def test_cascade_reads_on_when_the_first_passages_do_not_answer(reader):
    hits = _cascade_hits()
    hits = hits[2:4] + hits[:2] + hits[4:]  # the answer in the third passage
    q = "鄂尔多斯实验室有多少科研人员？"
    full, casc = ReaderGenerator(reader), ReaderGenerator(reader, cascade=2, cascade_margin=2.0)
    assert len(casc.read(q, hits)) == 5
    a, b = full.answer(q, None, hits), casc.answer(q, None, hits)  # type: ignore[arg-type]
    assert b.answerable and "300" in b.short_answer
    assert (a.short_answer, [c.quote for c in a.citations]) == (b.short_answer, [c.quote for c in b.citations])
    # refusals are the full read's too: nothing clears the threshold, every passage is read
    no = "火星探测器的发射时间是哪一年？"
    assert len(casc.read(no, hits)) == 5
    assert not casc.answer(no, None, hits).answerable  # type: ignore[arg-type]


def test_cascade_settings_are_validated(reader):
    from pydantic import ValidationError

    from rag.core.config import Settings

    assert Settings(reader_cascade=2, reader_cascade_margin=1.5).reader_cascade == 2
    assert (Settings().reader_cascade, Settings().reader_cascade_margin) == (2, 6.0)  # the measured default
    assert Settings(reader_passages=2).reader_cascade == 0  # the default early exit gives way to fewer passages
    for bad in ({"reader_cascade": 5}, {"reader_cascade": 3, "reader_passages": 3}, {"reader_cascade": -1},
                {"reader_cascade_margin": -0.5}):
        with pytest.raises(ValidationError):
            Settings(**bad)
    for kw in ({"cascade": -1}, {"cascade_margin": -1.0}):
        with pytest.raises(ValueError, match="cascade"):
            ReaderGenerator(reader, **kw)  # type: ignore[arg-type]
