import numpy as np
import pytest

from embeddings.fake import HashEmbedder
from rag.core.text import normalize, tokenize
from rag.core.types import Document
from rag.index import store
from rag.index.build import build_index
from rag.search.retrieve import Ranked, _rerank_union, bm25_scores, hybrid, rrf


def test_rrf_orders_by_reciprocal_rank_sum():
    a = Ranked(np.array([1, 2, 3]), np.array([0.9, 0.8, 0.7]))
    b = Ranked(np.array([3, 1]), np.array([5.0, 4.0]))
    fused = rrf([a, b], k=60)
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert sorted(fused, key=lambda c: -fused[c]) == [1, 3, 2]


def test_tokenize_normalises_traditional_and_width():
    assert tokenize("內蒙古科技突圍") == tokenize("内蒙古科技突围")
    assert "2024" in tokenize("２０２４年")
    assert normalize("ＡＢＣ") == "abc"
    assert tokenize("Funding for universities") == tokenize("the funds of a university")  # stemmed, stopwords out
    assert tokenize("5G M1芯片") [:2] == ["5g", "m1"]  # letters with digits are names, not stemmed


@pytest.fixture()
def small_index(tmp_path):
    docs = [
        Document("a.txt", "内蒙古稀土新材料产业发展迅速。稀土资源储量世界第一。"),
        Document("b.txt", "呼和浩特市建设国家乳业技术创新中心。乳业是支柱产业。"),
        Document("c.txt", "鄂尔多斯实验室聚焦现代煤化工与可再生能源。"),
    ]
    build_index(tmp_path, docs, HashEmbedder(), chunk_size=100, overlap=0)
    return store.load(tmp_path)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_modes_find_the_right_document(small_index, mode):
    q = "稀土資源"  # traditional query, simplified document
    qvec = HashEmbedder().encode_queries([q])[0]
    hits = hybrid(small_index, qvec, q, 2, mode)
    assert hits and hits[0].chunk.doc_id == "a.txt"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


def test_top_k_larger_than_corpus_is_clamped(small_index):
    q = "乳业"
    hits = hybrid(small_index, HashEmbedder().encode_queries([q])[0], q, 50)
    assert len(hits) == small_index.size


def test_unknown_terms_give_no_bm25_hits(small_index):
    assert hybrid(small_index, None, "zzzz qqqq", 5, "bm25") == []


def test_fusion_scores_each_candidate_by_both_retrievers(small_index):
    """A chunk only one retriever returned gets the other's real score before fusion, not a missing rank."""
    q = "稀土资源"
    qvec = HashEmbedder().encode_queries([q])[0]
    ids = np.array(sorted(small_index.chunks), np.int64)
    scores = bm25_scores(small_index, tokenize(q))
    assert scores is not None
    found = [int(c) for c in ids if scores[small_index.bm25_row(np.array([c]))[0]] > 0]
    missed = [int(c) for c in ids if int(c) not in found]
    assert found and missed
    # dense "returned" only a chunk BM25 misses, BM25 only its own hit
    own = small_index.dense.reconstruct(np.array(missed[:1])) @ qvec  # the cosine dense search returns
    dense, lex = _rerank_union(small_index, qvec, scores, Ranked(np.array(missed[:1]), own.astype(np.float32)),
                               Ranked(np.array(found[:1]), np.ones(1, np.float32)))
    assert sorted(dense.ids.tolist()) == sorted([missed[0], found[0]])
    want = small_index.dense.reconstruct(dense.ids) @ qvec
    assert np.allclose(dense.scores, want, atol=1e-5) and list(dense.scores) == sorted(dense.scores, reverse=True)
    assert lex.ids.tolist() == [found[0]]  # the chunk BM25 scores 0 stays out of its ranking
    hits = hybrid(small_index, qvec, q, 3)
    assert all(h.dense is not None for h in hits)  # every fused hit carries its cosine
