"""Metadata edits as index versions (rag/index/edit.py): persisted, no re-embedding, links recomputed, nothing
lost to a racing upload; validity applied inside retrieval (Pipeline.allowed_ids)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from embeddings.fake import HashEmbedder
from rag.core.config import Settings
from rag.core.errors import InvalidInputError, NotFoundError
from rag.core.types import Filters
from rag.index import store
from rag.ingest.loaders import load_bytes
from rag.pipeline import Pipeline
from tests.ingest.policy_texts import FILES


class CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.passages = 0

    def encode_passages(self, texts, *a, **k):  # type: ignore[no-untyped-def]
        self.passages += len(texts)
        return super().encode_passages(texts, *a, **k)


@pytest.fixture()
def pipe(tmp_path):
    p = Pipeline(Settings(index_dir=tmp_path, embedder="hash", crosslingual=False), embedder=CountingEmbedder())
    p.update([load_bytes(t.encode(), n) for n, t in FILES.items()])
    return p


def reopen(tmp_path) -> Pipeline:
    return Pipeline(Settings(index_dir=tmp_path, embedder="hash", crosslingual=False), embedder=HashEmbedder()).load()


def test_edit_is_persisted_without_re_embedding(pipe, tmp_path):
    before = store.current_path(tmp_path).resolve()
    ids = np.array(pipe.index.doc_chunks["nmg-kjt-2023-21.txt"], dtype=np.int64)
    vecs = pipe.index.dense.reconstruct(ids)
    embedded = pipe._embedder.passages
    doc = pipe.edit_metadata("nmg-kjt-2023-21.txt", {"title": "科技创新券管理办法", "issuer": "内蒙古自治区科技厅",
                                                    "date_expires": "2028-06-30", "subjects": None})
    assert doc.title == "科技创新券管理办法" and pipe._embedder.passages == embedded  # nothing embedded
    after = store.current_path(tmp_path).resolve()
    assert after != before and after.parent == before.parent  # a new version, switched
    store.verify(after, store.read_manifest(tmp_path))  # checksums rewritten
    again = reopen(tmp_path)  # a fresh process reading the disk
    d = again.index.documents["nmg-kjt-2023-21.txt"]
    assert (d.title, d.meta["issuer"], d.meta["date_expires"]) == \
        ("科技创新券管理办法", "内蒙古自治区科技厅", "2028-06-30")
    assert "subjects" not in d.meta and d.meta["doc_number"] == "内科发〔2023〕21号"  # removed / untouched
    assert {again.index.chunks[int(i)].title for i in ids} == {"科技创新券管理办法"}  # citations show the new title
    assert np.allclose(again.index.dense.reconstruct(ids), vecs)
    assert again.index.documents["hhht-2024-3.txt"].meta == pipe.index.documents["hhht-2024-3.txt"].meta
    hits, _ = again.search("创新券额度", 3, "bm25")
    assert hits and hits[0].chunk.doc_id == "nmg-kjt-2023-21.txt"


def test_edit_moves_validity_links(pipe, tmp_path):
    assert pipe.index.documents["hhht-2019-7.txt"].meta["superseded_by"]["doc_id"] == "hhht-2024-3.txt"
    pipe.edit_metadata("hhht-2024-3.txt", {"repeals": []})
    assert "superseded_by" not in reopen(tmp_path).index.documents["hhht-2019-7.txt"].meta
    pipe.edit_metadata("hhht-2024-3.txt", {"repeals": [{"doc_number": "呼政发〔2019〕7号"}]})
    assert reopen(tmp_path).index.documents["hhht-2019-7.txt"].meta["superseded_by"]["doc_id"] == "hhht-2024-3.txt"


def test_bad_edits_change_nothing(pipe, tmp_path):
    before = store.current_path(tmp_path).resolve()
    with pytest.raises(NotFoundError):
        pipe.edit_metadata("nope.txt", {"issuer": "x"})
    with pytest.raises(InvalidInputError, match="editable"):
        pipe.edit_metadata("hhht-2024-3.txt", {"sha256": "x"})
    with pytest.raises(InvalidInputError, match="title"):
        pipe.edit_metadata("hhht-2024-3.txt", {"title": None})
    assert store.current_path(tmp_path).resolve() == before
    assert not list((tmp_path / "versions").glob(".tmp-*"))


def test_edit_racing_an_upload_loses_neither(pipe, tmp_path):
    other = Pipeline(Settings(index_dir=tmp_path, embedder="hash", crosslingual=False), embedder=HashEmbedder()).load()
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            other.update([load_bytes("新增的一份通知：乳业振兴补贴每头奶牛500元。".encode(), "new.txt")])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=upload)
    t.start()
    pipe.edit_metadata("hhht-2024-3.txt", {"issuer": "呼和浩特市政府"})
    t.join()
    assert not errors
    final = reopen(tmp_path).index.documents
    assert "new.txt" in final and final["hhht-2024-3.txt"].meta["issuer"] == "呼和浩特市政府"


def test_retrieval_keeps_only_documents_in_force(pipe):
    def docs(f: Filters | None = None) -> set[str]:
        hits, _ = pipe.search("就业补贴 社会保险补贴 每人每月", 10, "bm25", filters=f)
        return {h.chunk.doc_id for h in hits} - {"nmg-kjt-2023-21.txt"}  # (its 补贴比例 matches too)

    assert docs() == {"hhht-2024-3.txt"}  # the repealed 2019 measure and the expired 2021 notice are left out
    assert docs(Filters(include_superseded=True)) == {"hhht-2019-7.txt", "hhht-2024-3.txt", "nmg-rsj-2021-15.txt"}
    assert docs(Filters(as_of="2020-01-01")) == {"hhht-2019-7.txt"}
    assert docs(Filters(as_of="2022-06-01")) == {"hhht-2019-7.txt", "nmg-rsj-2021-15.txt"}
    assert docs(Filters(issuer="人力资源", include_superseded=True)) == {"nmg-rsj-2021-15.txt"}
    pipe.settings = pipe.settings.model_copy(update={"include_superseded": True})
    assert "hhht-2019-7.txt" in docs()


def test_default_validity_filter_follows_uploads(pipe):
    assert pipe.search("就业补贴", 5, "bm25")[0]  # the default filter computed (and cached) for this index
    pipe.update([load_bytes("乳业振兴补贴：每头奶牛补贴500元。".encode(), "milk.txt")])
    hits, _ = pipe.search("奶牛补贴", 5, "bm25")
    assert hits and hits[0].chunk.doc_id == "milk.txt"  # not hidden by the previous index's allowed ids
