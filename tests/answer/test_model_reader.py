"""The trained reader + cross-encoder as served (ONNX export of the committed LoRA delta): real model, no mocks."""

from __future__ import annotations

import shutil
from pathlib import Path

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
