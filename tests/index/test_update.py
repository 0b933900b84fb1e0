"""Incremental index changes, filters and loaders (tiny deterministic embedder)."""

import io

import numpy as np
import pytest

from embeddings.fake import HashEmbedder
from rag.core.config import Settings
from rag.core.errors import InvalidInputError, NotFoundError
from rag.core.types import Document, Filters
from rag.index import store
from rag.ingest.loaders import check_doc_id, load_bytes
from rag.pipeline import Pipeline


def doc(i, text, **meta):
    return load_bytes(text.encode(), f"d{i}.txt", meta=meta)


@pytest.fixture()
def pipe(tmp_path):
    s = Settings(index_dir=tmp_path, embedder="hash")
    return Pipeline(s, embedder=HashEmbedder())


def test_add_noop_replace_delete_keep_ids_and_vectors(pipe, tmp_path):
    r = pipe.update([doc(1, "稀土新材料产业。"), doc(2, "乳业技术创新中心。")])
    assert r.added == ["d1.txt", "d2.txt"]
    before = {c.chunk_id: c.doc_id for c in pipe.index.chunks.values()}
    v1 = store.current_path(tmp_path).resolve()
    r = pipe.update([doc(1, "稀土新材料产业。")])
    assert r.unchanged == ["d1.txt"] and store.current_path(tmp_path).resolve() == v1  # no new version
    r = pipe.update([doc(2, "乳业技术创新中心二期。")])
    assert r.replaced == ["d2.txt"]
    kept = [cid for cid, d in before.items() if d == "d1.txt"]
    assert all(pipe.index.chunks[c].doc_id == "d1.txt" for c in kept)  # stable ids for unchanged docs
    v = pipe.index.dense.reconstruct(np.array(kept[:1]))[0]
    assert np.allclose(v, HashEmbedder().encode_passages([pipe.index.chunks[kept[0]].embed_text()])[0])
    hits, _ = pipe.search("乳业二期", 3, "bm25")
    assert hits[0].chunk.text == "乳业技术创新中心二期。"
    pipe.update([], ["d1.txt"])
    assert set(pipe.index.documents) == {"d2.txt"}
    assert pipe.search("稀土", 5, "bm25")[0] == []
    with pytest.raises(NotFoundError):
        pipe.update([], ["nope.txt"])


def test_filters_restrict_dense_and_bm25(pipe):
    pipe.update([doc(1, "科技政策一。", collection="a", tags=["x"]), doc(2, "科技政策二。", collection="b")])
    for mode in ("dense", "bm25", "hybrid"):
        hits, _ = pipe.search("科技政策", 5, mode, filters=Filters(collection="b"))
        assert {h.chunk.doc_id for h in hits} == {"d2.txt"}
        hits, _ = pipe.search("科技政策", 5, mode, filters=Filters(tags=["x"]))
        assert {h.chunk.doc_id for h in hits} == {"d1.txt"}
    with pytest.raises(NotFoundError, match="collection"):
        pipe.search("科技", 5, filters=Filters(collection="zzz"))


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b.txt", "..", "x\\y", "a\x00b", ""])
def test_doc_ids_never_become_paths(bad):
    with pytest.raises(InvalidInputError):
        check_doc_id(bad)


def test_encodings_are_detected():
    text = "內蒙古科技突圍工程，推動產業創新發展。" * 5
    for enc in ("utf-8", "big5", "gb18030"):
        d = load_bytes(text.encode(enc), "a.txt")
        assert d.text == text
    simp = "内蒙古科技创新，推动产业发展。" * 5
    assert load_bytes(simp.encode("gbk"), "b.txt").text == simp


@pytest.mark.parametrize("name,data", [
    ("a.exe", b"MZ"), ("a.pdf", b"%PDF-1.4 broken"), ("a.docx", b"PK\x03\x04junk"),
    ("a.txt", b"\x00\x01\x02binary"), ("a.txt", b""), ("a.html", b"<html></html>"),
])
def test_bad_files_are_clear_errors(name, data):
    with pytest.raises(InvalidInputError):
        load_bytes(data, name)


def test_docx_and_pdf_loaders_keep_structure():
    import docx

    d = docx.Document()
    d.add_heading("第一章 总则", level=1)
    d.add_paragraph("第一条 为促进科技创新，制定本办法。")
    buf = io.BytesIO()
    d.save(buf)
    out = load_bytes(buf.getvalue(), "p.docx")
    assert out.text.startswith("# 第一章 总则") and "第一条" in out.text

    from pypdf import PdfWriter

    w = PdfWriter()
    w.add_blank_page(100, 100)
    b = io.BytesIO()
    w.write(b)
    with pytest.raises(InvalidInputError, match="no extractable text"):
        load_bytes(b.getvalue(), "blank.pdf")


def test_empty_documents_rejected(pipe):
    with pytest.raises(InvalidInputError):
        pipe.update([Document("e.txt", "   ", meta={"sha256": "x"})])


def test_incremental_update_reuses_bm25_tokens(pipe, monkeypatch):
    pipe.update([doc(1, "稀土新材料产业。"), doc(2, "乳业技术创新中心。")])
    import rag.index.bm25 as bm25

    seen = []
    real = bm25.tokenize_many
    monkeypatch.setattr(bm25, "tokenize_many", lambda texts: seen.extend(texts) or real(texts))
    pipe.update([doc(3, "鄂尔多斯实验室。")])
    assert seen == ["鄂尔多斯实验室。"]  # only the new chunk was tokenised
    hits, _ = pipe.search("稀土", 3, "bm25")
    assert hits[0].chunk.doc_id == "d1.txt"


def test_index_from_an_older_tokenizer_is_retokenised(pipe, tmp_path, monkeypatch):
    """An index whose BM25 another tokenizer built (an older release: no English stemming) is re-tokenised
    on load, and the next update writes new tokens instead of reusing the old ones."""
    import json

    import rag.core.text as text
    from rag.core.text import TOKENIZER

    class NoStem:
        def stemWord(self, w: str) -> str:  # noqa: N802 - PyStemmer's name
            return w

    monkeypatch.setattr(text, "_stemmer", lambda: NoStem())
    pipe.update([doc(1, "Research funding rules."), doc(2, "乳业技术创新中心。")])
    monkeypatch.undo()
    path = store.current_path(tmp_path).resolve()
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["bm25"]["tokenizer"] = "jieba-search+opencc-t2s"  # what the last release wrote
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert pipe.search("funds", 3, "bm25")[0] == []  # the old BM25 holds "funding", the query "fund"
    pipe.load()
    hits, _ = pipe.search("funds", 3, "bm25")
    assert hits and hits[0].chunk.doc_id == "d1.txt"
    pipe.update([doc(3, "鄂尔多斯实验室。")])
    assert pipe.index.manifest["bm25"]["tokenizer"] == TOKENIZER
    hits, _ = pipe.search("funds", 3, "bm25")
    assert hits and hits[0].chunk.doc_id == "d1.txt"
