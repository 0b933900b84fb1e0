"""Document texts stay in documents.jsonl until asked for (rag/index/doctable.py, issue 19 memory)."""

from __future__ import annotations

from embeddings.fake import HashEmbedder
from rag.core.types import Document
from rag.index import store
from rag.index.build import build_index
from rag.index.doctable import DocumentSubset, DocumentTable, chars, stub, stubs

DOCS = [Document("a.txt", "第一份文件。内容关于科技创新平台。", title="甲", meta={"collection": "hr", "tags": ["x"]}),
        Document("b.txt", "第二份文件。內容關於人才引進。\n\"引号\" and English", title="乙"),
        Document("c.txt", "第三份。" * 300, meta={"collection": "hr"})]


def test_table_reads_each_text_from_the_file_and_keeps_only_metadata(tmp_path):
    build_index(tmp_path, DOCS, HashEmbedder())
    idx = store.load(tmp_path)
    assert isinstance(idx.documents, DocumentTable)
    for d in DOCS:
        got = idx.documents[d.doc_id]
        assert (got.doc_id, got.text, got.title) == (d.doc_id, d.text, d.title)
        assert got.meta.get("tags") == d.meta.get("tags")
        assert chars(idx.documents, d.doc_id) == len(d.text)
        s = stub(idx.documents, d.doc_id)
        assert s.text == "" and s.title == d.title and s.meta == got.meta
    assert sorted(x.doc_id for x in stubs(idx.documents)) == ["a.txt", "b.txt", "c.txt"]
    assert all(x.text == "" for x in stubs(idx.documents)) and len(idx.documents) == 3
    assert "z.txt" not in idx.documents and idx.documents.get("z.txt") is None
    # a fresh object per read: a caller that edits its copy cannot change what the next caller reads
    first = idx.documents["a.txt"]
    first.meta["tags"].append("edited")
    first.text = "changed"
    again = idx.documents["a.txt"]
    assert again.text == DOCS[0].text and again.meta["tags"] == ["x"]
    # a rebuild from the loaded documents (what an update does) writes every text back unchanged
    build_index(tmp_path, list(dict(idx.documents).values()), HashEmbedder())
    assert [store.load(tmp_path).documents[d.doc_id].text for d in DOCS] == [d.text for d in DOCS]


def test_subset_sees_only_its_documents_with_their_text(tmp_path):
    build_index(tmp_path, DOCS, HashEmbedder())
    idx = store.load(tmp_path)
    sub = DocumentSubset(idx.documents, [d.doc_id for d in stubs(idx.documents) if d.meta.get("collection") == "hr"])
    assert sorted(sub) == ["a.txt", "c.txt"] and len(sub) == 2 and "b.txt" not in sub
    assert sub["c.txt"].text == DOCS[2].text and chars(sub, "c.txt") == len(DOCS[2].text)
    assert sorted(d.doc_id for d in stubs(sub)) == ["a.txt", "c.txt"]
    assert sub.get("b.txt") is None


def test_plain_dict_helpers_return_the_documents_themselves():
    docs = {d.doc_id: d for d in DOCS}
    assert list(stubs(docs)) == DOCS and stub(docs, "b.txt") is DOCS[1] and chars(docs, "c.txt") == 1200
