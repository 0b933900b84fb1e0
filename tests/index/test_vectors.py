"""Contract tests: every VectorStore backend/kind behaves the same on the same cases.

The ``store`` fixture runs each contract case on the FAISS kinds and on Milvus (milvus-lite, a local
folder, through pymilvus). Milvus cases are skipped only when pymilvus/milvus-lite is not installed
(`pip install -e '.[milvus]'`).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rag.index.vectors import FaissStore, build_store, load_store

try:
    import milvus_lite  # noqa: F401
    import pymilvus  # noqa: F401

    HAVE_MILVUS, WHY_NOT = True, ""
except ImportError as e:  # pragma: no cover - depends on the install
    HAVE_MILVUS, WHY_NOT = False, f"pymilvus/milvus-lite not importable ({e}): pip install -e '.[milvus]'"

needs_milvus = pytest.mark.skipif(not HAVE_MILVUS, reason=WHY_NOT)
KINDS = ["flat", "ivfsq8", "hnsw"]
STORES = KINDS + [pytest.param("milvus", marks=needs_milvus)]


def _data(n=600, d=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.arange(1000, 1000 + n, dtype=np.int64), x


def _build(kind, ids, x):
    if kind == "milvus":
        return build_store("milvus", x.shape[1], ids, x)
    return FaissStore.build(x.shape[1], ids, x, kind)


@pytest.fixture(params=STORES)
def store(request):
    ids, x = _data()
    s = _build(request.param, ids, x)
    yield s, ids, x
    if hasattr(s, "close"):
        s.close()


def test_search_finds_itself_with_its_id(store):
    s, ids, x = store
    scores, labels = s.search(x[:20], 1)
    assert (labels[:, 0] == ids[:20]).mean() >= 0.95
    assert s.ntotal == len(ids)
    assert scores.shape == labels.shape == (20, 1) and labels.dtype == np.int64


def test_allowed_restricts_results(store):
    s, ids, x = store
    allowed = ids[100:110]
    scores, labels = s.search(x[0], 5, allowed)
    got = labels[0][labels[0] >= 0]
    assert len(got) and set(got.tolist()) <= set(allowed.tolist())


def test_fewer_than_k_pads_with_minus_one(store):
    s, ids, x = store
    allowed = ids[[5, 50, 500]]
    scores, labels = s.search(x[5], 6, allowed)
    assert labels.shape == (1, 6) and (labels[0][3:] == -1).all()
    got = labels[0][labels[0] >= 0]
    assert len(got) and set(got.tolist()) <= set(allowed.tolist())
    assert labels[0][0] == ids[5]  # itself, when allowed
    assert (np.diff(scores[0][: len(got)]) <= 1e-6).all()  # best first


def test_reconstruct_round_trips(store):
    s, ids, x = store
    r = s.reconstruct(ids[[3, 7]])
    assert np.allclose(r, x[[3, 7]], atol=0.05)


def test_add_then_find(store):
    s, ids, x = store
    new_ids, y = _data(5, seed=1)
    new_ids = new_ids + 10_000
    s.add(new_ids, y)
    assert s.ntotal == len(ids) + 5
    assert (s.search(y, 1)[1][:, 0] == new_ids).all()


def test_remove(store):
    s, ids, x = store
    if s.kind in ("ivfsq8", "hnsw"):  # documented FAISS limitation, kept visible here
        pytest.xfail(f"FAISS {s.kind} does not support remove_ids (apply_changes rebuilds instead)")
    assert s.remove(ids[:3]) == 3
    assert s.ntotal == len(ids) - 3
    assert not set(s.search(x[:3], 5)[1].ravel().tolist()) & set(ids[:3].tolist())


def test_save_and_load(store, tmp_path):
    s, ids, x = store
    s.save(tmp_path)
    t = load_store(tmp_path)
    assert t.kind == s.kind and t.ntotal == s.ntotal
    assert np.array_equal(t.search(x[:5], 3)[1], s.search(x[:5], 3)[1])
    assert np.allclose(t.reconstruct(ids[:4]), s.reconstruct(ids[:4]))
    assert np.array_equal(t.search(x[:2], 3, ids[10:50])[1], s.search(x[:2], 3, ids[10:50])[1])
    if s.kind == "ivfsq8":  # the lists are mapped from the file on load, not copied into RAM
        import faiss

        lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(t.index).invlists)
        assert isinstance(lists, faiss.OnDiskInvertedLists)


def test_auto_picks_flat_for_small_corpora():
    ids, x = _data(50)
    assert FaissStore.build(32, ids, x, "auto").kind == "flat"


# ---- Milvus specifics -------------------------------------------------------------------------------

@needs_milvus
def test_milvus_lite_folder_survives_rename_and_loaded_versions_stay_immutable(tmp_path):
    from rag.index.vectors.milvus_store import MilvusStore

    ids, x = _data()
    s = MilvusStore.build(32, ids, x)
    (tmp_path / "tmp").mkdir()
    s.save(tmp_path / "tmp")
    os.replace(tmp_path / "tmp", tmp_path / "v1")  # what rag.index.store.save does
    meta = json.loads((tmp_path / "v1" / "dense.json").read_text())
    assert meta["store"] == "milvus" and meta["uri"] == "milvus.db" and meta["dim"] == 32
    t = load_store(tmp_path / "v1")
    assert t.ntotal == 600 and t.search(x[:1], 1)[1][0, 0] == ids[0]
    assert t.remove(ids[:10]) == 10 and t.ntotal == 590  # copy-on-write: the version folder is untouched
    assert load_store(tmp_path / "v1").ntotal == 600
    assert s.ntotal == 600 and s.search(x[:1], 1)[1][0, 0] == ids[0]  # the built store is usable after save
    s.close(), t.close()


@needs_milvus
def test_milvus_allowed_lists_are_chunked_and_merged(monkeypatch):
    from rag.index.vectors import milvus_store

    ids, x = _data()
    s = milvus_store.MilvusStore.build(32, ids, x)
    allowed = ids[::3]
    want = s.search(x[:4], 7, allowed)
    monkeypatch.setattr(milvus_store, "FILTER_CHUNK", 16)  # 200 ids -> 13 expressions
    got = s.search(x[:4], 7, allowed)
    assert np.array_equal(got[1], want[1]) and np.allclose(got[0], want[0], atol=1e-5)
    assert np.allclose(s.reconstruct(ids[[5, 400, 5]]), x[[5, 400, 5]], atol=1e-5)
    s.close()


@needs_milvus
def test_milvus_server_uri_one_collection_per_version_and_alias(tmp_path, monkeypatch):
    """The server code path, against milvus-lite's own gRPC server on loopback (no cluster here)."""
    from milvus_lite.adapter.grpc.server import start_server_in_thread

    server, db, port = start_server_in_thread(str(tmp_path / "server.db"), host="127.0.0.1", port=0)
    try:
        uri = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("RAG_MILVUS_URI", uri)
        ids, x = _data()
        v1 = build_store("milvus", 32, ids, x, index_type="FLAT")
        v2 = build_store("milvus", 32, ids[:100], x[:100], index_type="FLAT")
        assert v1.collection != v2.collection
        (tmp_path / "v1").mkdir()
        v1.save(tmp_path / "v1")
        meta = json.loads((tmp_path / "v1" / "dense.json").read_text())
        assert meta["uri"] == uri and meta["collection"] == v1.collection and "token" not in meta
        assert not (tmp_path / "v1" / "milvus.db").exists()  # the data stays on the server
        t = load_store(tmp_path / "v1")
        assert t.ntotal == 600 and np.array_equal(t.search(x[:5], 3)[1], v1.search(x[:5], 3)[1])
        v1.set_alias("rag_current")
        v2.set_alias("rag_current")  # swapped
        assert v2._client().describe_alias("rag_current")["collection_name"] == v2.collection
        v2.drop()
        assert v2.collection not in v1._client().list_collections()
        for s in (v1, v2, t):
            s.close()
    finally:
        server.stop(grace=0)
        db.close()


@needs_milvus
def test_pruned_versions_drop_their_server_collections(tmp_path, monkeypatch):
    """rag.index.store._prune drops the Milvus server collection of a pruned version, not those still kept
    (milvus-lite's own gRPC server on loopback stands in for a cluster)."""
    from milvus_lite.adapter.grpc.server import start_server_in_thread

    from rag.index.store import KEEP_VERSIONS, _prune

    server, db, port = start_server_in_thread(str(tmp_path / "server.db"), host="127.0.0.1", port=0)
    try:
        monkeypatch.setenv("RAG_MILVUS_URI", f"http://127.0.0.1:{port}")
        ids, x = _data()
        versions = tmp_path / "versions"
        names = []
        for i in range(KEEP_VERSIONS + 2):
            st = build_store("milvus", 32, ids[:50], x[:50], index_type="FLAT")
            (versions / f"v{i}").mkdir(parents=True)
            st.save(versions / f"v{i}")
            names.append(st.collection)
            client = st._client()
        # an old version sharing the newest one's collection must not take it down
        (versions / "v00").mkdir()
        (versions / "v00" / "dense.json").write_text((versions / f"v{KEEP_VERSIONS + 1}" / "dense.json").read_text())
        _prune(versions, keep=versions / f"v{KEEP_VERSIONS + 1}")
        left = set(client.list_collections())
        assert sorted(p.name for p in versions.iterdir()) == [f"v{i}" for i in range(2, KEEP_VERSIONS + 2)]
        assert not {names[0], names[1]} & left, "pruned versions' collections were not dropped"
        assert set(names[2:]) <= left, "a kept version lost its collection"
    finally:
        server.stop(grace=0)
        db.close()


@needs_milvus
def test_milvus_lite_version_open_in_another_process_is_read_from_a_copy(tmp_path):
    from rag.index.vectors.milvus_store import MilvusStore

    ids, x = _data()
    s = MilvusStore.build(32, ids, x)
    s.save(tmp_path)
    s.close()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from rag.index.vectors import load_store
        st = load_store(Path({str(tmp_path)!r}))
        print(st.ntotal, flush=True)
        sys.stdin.readline()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "600"  # it holds the lock
        t = load_store(tmp_path)
        assert t.ntotal == 600 and t.search(x[:1], 1)[1][0, 0] == ids[0]
        assert not t._shared and t.uri != str(tmp_path / "milvus.db")
        t.close()
    finally:
        holder.communicate("\n", timeout=60)


@needs_milvus
def test_end_to_end_ingest_search_update_on_milvus(tmp_path):
    from embeddings.fake import HashEmbedder
    from rag.index import store
    from rag.index.build import build_index
    from rag.index.update import apply_changes
    from rag.ingest.loaders import load_bytes
    from rag.search.retrieve import hybrid

    def doc(name, text):
        return load_bytes(text.encode(), name)

    emb = HashEmbedder()
    docs = [doc("a.txt", "稀土新材料产业发展规划。支持稀土功能材料研发。"),
            doc("b.txt", "乳业技术创新中心建设方案。奶业振兴。"),
            doc("c.txt", "人才引进政策：高层次人才住房补贴。")]
    v1 = build_index(tmp_path, docs, emb, vector_store="milvus")
    assert json.loads((v1 / "dense.json").read_text())["store"] == "milvus" and (v1 / "milvus.db").is_dir()
    idx = store.load(tmp_path)
    assert idx.dense.kind == "milvus" and idx.dense.ntotal == idx.size == idx.manifest["n_chunks"]
    q = emb.encode_queries(["乳业技术创新"])[0]
    hits = hybrid(idx, q, "乳业技术创新", 2, mode="dense")
    assert hits[0].chunk.doc_id == "b.txt" and hits[0].dense is not None
    only_c = np.array(idx.doc_chunks["c.txt"], np.int64)
    assert {h.chunk.doc_id for h in hybrid(idx, q, "乳业", 3, mode="dense", allowed=only_c)} == {"c.txt"}

    rep = apply_changes(tmp_path, emb, [doc("d.txt", "科技成果转化奖励办法。"), docs[0]], ["b.txt"],
                        vector_store="milvus")
    assert rep.added == ["d.txt"] and rep.unchanged == ["a.txt"] and rep.deleted == ["b.txt"]
    idx2 = store.load(tmp_path)
    assert set(idx2.documents) == {"a.txt", "c.txt", "d.txt"} and idx2.dense.ntotal == idx2.size
    kept = idx.doc_chunks["a.txt"]
    assert np.allclose(idx2.dense.reconstruct(np.array(kept)), idx.dense.reconstruct(np.array(kept)))
    q2 = emb.encode_queries(["科技成果转化"])[0]
    assert hybrid(idx2, q2, "科技成果转化", 1, mode="dense")[0].chunk.doc_id == "d.txt"
    assert "b.txt" not in {h.chunk.doc_id for h in hybrid(idx2, q, "乳业技术创新", 5, mode="dense")}
    assert store.current_path(tmp_path).resolve().name == rep.version != v1.name
    assert (v1 / "milvus.db").is_dir() and load_store(v1).ntotal == idx.size  # old version still intact
