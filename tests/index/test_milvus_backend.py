"""The Milvus index backend against a real milvus-lite server process on loopback (tests/milvus_server.py):
the same contract as the file backend (build, load, search, upserts, deletes, metadata edits), the alias swap
and pruning, expressions that user values cannot inject into, and refusal of a collection built by another
tokenizer or analyzer. The tiny hash embedder keeps it fast; the parity on real data is eval/milvus_parity.py."""

from __future__ import annotations

import itertools
import json

import pytest

from embeddings.fake import HashEmbedder
from rag.core.config import Settings
from rag.core.errors import IndexMismatchError, IndexUnavailableError, InvalidInputError, NotFoundError
from rag.core.types import Document, Filters
from rag.index import milvus_expr as E
from rag.index import milvus_schema as S
from rag.ingest.loaders import load_path
from rag.pipeline import Pipeline
from tests.conftest import SEEDS

pytestmark = pytest.mark.slow
_n = itertools.count()
QUERIES = ["稀土新材料产业发展", "新能源汽车推广", "the rare earth industry"]


def pipelines(uri: str, tmp_path, **kw) -> tuple[Pipeline, Pipeline]:  # type: ignore[no-untyped-def]
    alias = f"t{next(_n)}_{tmp_path.name[-12:].replace('-', '_')}"
    files = Pipeline(Settings(index_dir=tmp_path / "files", embedder="hash", **kw), embedder=HashEmbedder())
    milvus = Pipeline(Settings(index_dir=tmp_path / "unused", embedder="hash", backend="milvus", milvus_uri=uri,
                               milvus_alias=alias, milvus_timeout=30, **kw), embedder=HashEmbedder())
    return files, milvus


def top(p: Pipeline, q: str, mode: str, k: int = 8, filters: Filters | None = None) -> list[frozenset[int]]:
    """The chunk ids best first, those of equal score as one set (each backend breaks ties its own way); the
    last group is left out, since k may cut it."""
    hits, _ = p.search(q, k, mode, filters=filters)
    groups: list[list[int]] = []
    for prev, h in zip([None, *hits], hits):
        if prev is not None and abs(prev.score - h.score) <= 1e-5 * max(1.0, abs(h.score)):
            groups[-1].append(h.chunk.chunk_id)
        else:
            groups.append([h.chunk.chunk_id])
    return [frozenset(g) for g in groups[:-1]]


def test_same_results_as_the_file_backend_through_writes(milvus_server, tmp_path):
    files, milvus = pipelines(milvus_server.uri, tmp_path)
    docs, _ = load_path(SEEDS)
    for p in (files, milvus):
        p.backend.build(docs, p.embedder)
        p.load()
    assert milvus.index is not None and files.index is not None
    assert milvus.index.size == files.index.size and set(milvus.index.documents) == set(files.index.documents)
    for q, mode in itertools.product(QUERIES, ("hybrid", "bm25", "dense")):
        assert top(milvus, q, mode) == top(files, q, mode), (q, mode)
    extra = [Document("new.txt", "呼和浩特市氢能产业扶持办法：每座加氢站补贴五百万元。", "氢能", meta={"sha256": "x"})]
    for p in (files, milvus):
        p.update(extra, [docs[0].doc_id])
    assert top(milvus, "加氢站补贴", "hybrid") == top(files, "加氢站补贴", "hybrid")
    hits, _ = milvus.search("加氢站补贴", 1, "bm25")
    assert hits[0].chunk.doc_id == "new.txt"
    assert docs[0].doc_id not in milvus.index.documents
    before = {cid: c.doc_id for cid, c in milvus.index.chunks.items()}
    assert before == {cid: c.doc_id for cid, c in files.index.chunks.items()}  # the same id space
    edited = milvus.edit_metadata("new.txt", {"title": "氢能产业扶持办法", "issuer": "呼和浩特市人民政府"})
    assert edited.meta["issuer"] == "呼和浩特市人民政府"
    assert {c.title for c in milvus.index.chunks.values() if c.doc_id == "new.txt"} == {"氢能产业扶持办法"}
    assert {cid: c.doc_id for cid, c in milvus.index.chunks.items()} == before  # nothing re-chunked
    m = milvus.backend.m  # type: ignore[attr-defined]
    alias = milvus.settings.milvus_alias
    versions = sorted(n for n in m.call("list_collections") if S.is_version(alias, n))
    assert len(versions) == S.KEEP_VERSIONS and m.live(alias) == versions[-1] == milvus.index.path.name
    assert S.read_manifest(m, versions[-1])["n_documents"] == len(milvus.index.documents)


def test_ids_and_filter_values_never_inject_into_expressions(milvus_server, tmp_path):
    nasty = ['a"b', "c'd", "e]f[", '" or 1==1 or "', "' or 1==1 or '", "x) or (1==1", 'q" || chunk_id >= 0 || "']
    _, milvus = pipelines(milvus_server.uri, tmp_path)
    docs = [Document(d, f"第{i}号文件：关于编号{i}的通知，内容{i}。", meta={"sha256": str(i), "collection": d})
            for i, d in enumerate(nasty)]
    milvus.backend.build(docs, milvus.embedder)
    milvus.load()
    m, name = milvus.backend.m, milvus.index.path.name  # type: ignore[attr-defined]
    for d in nasty:  # each value matches its own row only, as doc id and as collection
        for field in ("doc_id", "collection"):
            rows = m.call("query", name, filter=E.eq(field, d), output_fields=["doc_id"])
            assert {r["doc_id"] for r in rows} == {d}, (field, d)
        rows = m.call("query", name, filter=E.in_strings("doc_id", [d], negate=True), output_fields=["doc_id"])
        assert {r["doc_id"] for r in rows} == set(nasty) - {d}
    assert m.call("query", name, filter=E.eq("doc_id", "or 1==1"), output_fields=["doc_id"]) == []
    with pytest.raises(InvalidInputError):
        E.literal('x"\n or 1==1')  # control characters refused, not escaped
    milvus.update([], ['" or 1==1 or "'])  # the delete copies every other document's rows
    assert set(milvus.index.documents) == set(nasty) - {'" or 1==1 or "'}
    hits, _ = milvus.search("编号3的通知", 10, "hybrid", filters=Filters(collection="' or 1==1 or '",
                                                                             include_superseded=True))
    assert {h.chunk.doc_id for h in hits} == {"' or 1==1 or '"}
    with pytest.raises(NotFoundError):
        milvus.search("通知", 5, filters=Filters(collection='default" or 1==1 or "'))


def test_a_collection_built_by_another_analyzer_or_tokenizer_is_refused(milvus_server, tmp_path, monkeypatch):
    _, milvus = pipelines(milvus_server.uri, tmp_path)
    docs, _ = load_path(SEEDS)
    monkeypatch.setattr(S, "ANALYZER", {"tokenizer": "jieba"})  # as a release with Milvus' own jieba would
    milvus.backend.build(docs[:2], milvus.embedder)
    monkeypatch.undo()
    with pytest.raises(IndexMismatchError, match="rebuild") as e:
        milvus.load()
    assert '"jieba"' in e.value.message and "RAG_BACKEND=milvus rag ingest PATH --rebuild" in e.value.message
    with pytest.raises(IndexMismatchError):  # a write is refused too, before anything is built
        milvus.update([Document("x.txt", "一些文字。", meta={"sha256": "1"})])
    m, name = milvus.backend.m, milvus.backend.live_version()  # type: ignore[attr-defined]
    manifest = json.loads(m.call("describe_collection", name)["properties"][S.MANIFEST_KEY])
    S.set_manifest(m, name, {**manifest, "analyzer": S.ANALYZER, "bm25": {"tokenizer": "jieba-precise"}})
    with pytest.raises(IndexMismatchError, match="jieba-precise"):
        milvus.load()
    milvus.backend.build(docs[:2], milvus.embedder)  # the re-index the message names
    assert milvus.load().index is not None and milvus.index.size > 0  # type: ignore[union-attr]


def test_an_unreachable_milvus_is_an_unavailable_error_not_a_hang(tmp_path):
    _, milvus = pipelines("http://127.0.0.1:9", tmp_path)  # discard port: nothing listens
    with pytest.raises(IndexUnavailableError, match="Milvus at http://127.0.0.1:9"):
        milvus.load()
