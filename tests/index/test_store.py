import json
import os

import pytest

from embeddings.fake import HashEmbedder
from rag.core.errors import IndexCorruptError, IndexNotFoundError, ModelMismatchError
from rag.core.types import Chunk, Document
from rag.index import store
from rag.index.build import build_index

DOCS = [Document("a.txt", "第一份文件。内容关于科技。"), Document("b.txt", "第二份文件。内容关于人才。")]


def test_save_is_versioned_and_current_switches(tmp_path):
    v1 = build_index(tmp_path, DOCS[:1], HashEmbedder())
    v2 = build_index(tmp_path, DOCS, HashEmbedder())
    assert v1 != v2 and v1.exists() and v2.exists()
    assert os.path.realpath(tmp_path / "current") == str(v2)
    idx = store.load(tmp_path)
    assert set(idx.documents) == {"a.txt", "b.txt"}
    m = idx.manifest
    assert m["model"] == "hash-256" and m["dim"] == 256 and m["chunk_size"] == 300 and m["n_chunks"] == idx.size


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexNotFoundError, match="rag ingest"):
        store.load(tmp_path / "none")


def test_model_mismatch_is_a_clear_error(tmp_path):
    build_index(tmp_path, DOCS, HashEmbedder())
    m = store.read_manifest(tmp_path)
    with pytest.raises(ModelMismatchError, match="multilingual-e5-small"):
        store.check_model(m, "multilingual-e5-small", 384)


def test_corrupt_component_is_a_clear_error(tmp_path):
    build_index(tmp_path, DOCS, HashEmbedder())
    (tmp_path / "current" / "dense.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexCorruptError, match="--rebuild"):
        store.load(tmp_path)


def test_crash_before_switch_leaves_last_good_index(tmp_path, monkeypatch):
    build_index(tmp_path, DOCS[:1], HashEmbedder())

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(store, "_fsync_tree", boom)
    with pytest.raises(OSError):
        build_index(tmp_path, DOCS, HashEmbedder())
    idx = store.load(tmp_path)
    assert set(idx.documents) == {"a.txt"}


def test_chunks_are_read_in_place_and_match_what_was_written(tmp_path):
    from rag.index.chunktable import DOC_CHUNKS_FILE, DOC_IDS_FILE, IDX_FILE, ChunkTable, DocChunks

    docs = [Document(f"d{i}.txt", "。".join(f"第{i}份文件的第{j}句，讲科技“创新”与人才" for j in range(40)) + "。")
            for i in range(6)]
    build_index(tmp_path, docs, HashEmbedder(), chunk_size=120)
    idx = store.load(tmp_path)
    assert isinstance(idx.chunks, ChunkTable) and len(idx.chunks) == idx.size > 6
    folder = tmp_path / "current"
    eager = {}
    for line in (folder / "chunks.jsonl").read_text(encoding="utf-8").splitlines():
        c = Chunk.from_json(json.loads(line))
        eager[c.chunk_id] = c
    assert set(idx.chunks) == set(eager)
    for cid, c in eager.items():
        assert idx.chunks[cid] == c and cid in idx.chunks
    assert 10**9 not in idx.chunks and "1" not in idx.chunks
    with pytest.raises(KeyError):
        idx.chunks[10**9]
    assert {d: sorted(v) for d, v in idx.doc_chunks.items()} == {
        d.doc_id: sorted(k for k, c in eager.items() if c.doc_id == d.doc_id) for d in docs}
    assert isinstance(idx.doc_chunks, DocChunks) and "d9.txt" not in idx.doc_chunks
    with pytest.raises(KeyError):
        idx.doc_chunks["d9.txt"]
    # a version written with the older doc_chunks.json (a dict of lists) reads the same
    (folder / "doc_chunks.json").write_text(json.dumps(dict(idx.doc_chunks.items())))
    (folder / DOC_IDS_FILE).unlink()
    (folder / DOC_CHUNKS_FILE).unlink()
    legacy = ChunkTable(folder.resolve())
    assert isinstance(legacy.doc_chunks, DocChunks) and legacy.doc_chunks == idx.doc_chunks
    # an index written before the sidecars existed is scanned on load, with the same result
    (folder / IDX_FILE).unlink()
    (folder / "doc_chunks.json").unlink()
    old = ChunkTable(folder.resolve())
    assert dict(old.items()) == eager and old.doc_chunks == idx.doc_chunks
