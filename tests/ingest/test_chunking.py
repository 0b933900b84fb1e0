import pytest

from rag.core.types import Document
from rag.ingest.chunking import chunk_document

TEXT = "## 第一节\n\n" + "".join(f"第{i}句话讲的是政策内容。" for i in range(40)) + "\n\n## 第二节\n\n结尾一句！\n"


@pytest.mark.parametrize("size", [60, 120, 300])
def test_chunks_respect_size_and_spans(size):
    chunks = chunk_document(Document("d.txt", TEXT), chunk_size=size, overlap=1)
    assert chunks
    for c in chunks:
        assert len(c.text) <= size + 20
        assert c.doc_id == "d.txt"
        for s in c.sentences:
            assert TEXT[s.start : s.end] == s.text
        assert TEXT[c.start : c.end].replace("\n", "").startswith(c.sentences[0].text)


def test_sentence_overlap_between_neighbours():
    chunks = chunk_document(Document("d.txt", TEXT), chunk_size=80, overlap=1)
    body = [c for c in chunks if c.section == "第一节"]
    assert len(body) > 2
    for a, b in zip(body, body[1:]):
        assert a.sentences[-1].text == b.sentences[0].text
    no = chunk_document(Document("d.txt", TEXT), chunk_size=80, overlap=0)
    nb = [c for c in no if c.section == "第一节"]
    assert all(a.sentences[-1].start < b.sentences[0].start for a, b in zip(nb, nb[1:]))


def test_chunks_do_not_cross_headings():
    chunks = chunk_document(Document("d.txt", TEXT), chunk_size=10000)
    assert [c.section for c in chunks] == ["第一节", "第二节"]


def test_sentence_ends_include_closing_quotes():
    t = "他说：“我们要加快发展。”随后离开。这是第三句？是的！"
    chunks = chunk_document(Document("q.txt", t), chunk_size=1000, overlap=0)
    assert [s.text for s in chunks[0].sentences] == ["他说：“我们要加快发展。”", "随后离开。", "这是第三句？", "是的！"]


def test_overlong_sentence_is_cut_at_commas():
    t = "，".join(["很长的一个分句"] * 60) + "。"
    chunks = chunk_document(Document("l.txt", t), chunk_size=100, overlap=0)
    assert all(len(s.text) <= 100 for c in chunks for s in c.sentences)
    assert "".join(s.text for c in chunks for s in c.sentences) == t


def test_seed_page_break_number_is_whole_in_a_chunk():
    raw = open("seeds/000_bcf499b72cb977fc.txt", encoding="utf-8").read()
    chunks = chunk_document(Document("000", raw))
    hit = [c for c in chunks if "每年安排1500万元专项经费" in c.text]
    assert hit  # (twice when it is the overlap sentence of two neighbours)
    assert all("1500\n\n万元" in raw[c.start : c.end] for c in hit)
