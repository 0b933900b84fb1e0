"""Contract tests: every VectorStore backend/kind behaves the same on the same cases."""

import numpy as np
import pytest

from rag.vectors import FaissStore, load_store

KINDS = ["flat", "ivfsq8", "hnsw"]


def _data(n=600, d=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.arange(1000, 1000 + n, dtype=np.int64), x


@pytest.fixture(params=KINDS)
def store(request):
    ids, x = _data()
    return FaissStore.build(32, ids, x, request.param), ids, x


def test_search_finds_itself_with_its_id(store):
    s, ids, x = store
    D, I = s.search(x[:20], 1)
    assert (I[:, 0] == ids[:20]).mean() >= 0.95
    assert s.ntotal == len(ids)


def test_allowed_restricts_results(store):
    s, ids, x = store
    allowed = ids[100:110]
    D, I = s.search(x[0], 5, allowed)
    got = I[0][I[0] >= 0]
    assert len(got) and set(got.tolist()) <= set(allowed.tolist())


def test_reconstruct_round_trips(store):
    s, ids, x = store
    r = s.reconstruct(ids[[3, 7]])
    assert np.allclose(r, x[[3, 7]], atol=0.05)


def test_save_and_load(store, tmp_path):
    s, ids, x = store
    s.save(tmp_path)
    t = load_store(tmp_path)
    assert t.kind == s.kind and t.ntotal == s.ntotal
    assert np.array_equal(t.search(x[:5], 3)[1], s.search(x[:5], 3)[1])


def test_auto_picks_flat_for_small_corpora():
    ids, x = _data(50)
    assert FaissStore.build(32, ids, x, "auto").kind == "flat"
