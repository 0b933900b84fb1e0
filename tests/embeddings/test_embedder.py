"""The real embedder's dynamic query batching: concurrent single queries share forward passes and get
the same vectors as alone."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

QUERIES = ["中国工程科技发展战略内蒙古研究院每年安排多少专项经费？", "呼和浩特市科技创新发展指数排名第几？",
           "“青城之光”的运算速度是多少？", "內蒙古打造了多少個產業集群？",
           "How many innovation platforms does Hohhot have?", "稀土新材料", "乳业", "草种业"] * 4


def test_concurrent_queries_are_batched_and_match_single(real_embedder):  # type: ignore[no-untyped-def]
    alone = np.vstack([real_embedder.encode_queries([q]) for q in QUERIES[:8]])
    calls: list[int] = []
    forward = real_embedder._forward
    gate = threading.Event()

    def counting(texts, prompt):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        gate.wait(2)  # the first pass waits so the other callers queue up behind it
        return forward(texts, prompt)

    real_embedder._forward = counting
    try:
        with ThreadPoolExecutor(16) as ex:
            futs = [ex.submit(real_embedder.encode_queries, [q]) for q in QUERIES]
            threading.Timer(0.3, gate.set).start()
            got = [f.result(timeout=60) for f in futs]
    finally:
        real_embedder._forward = forward
    assert all(g.shape == (1, real_embedder.dim) for g in got)
    assert sum(calls) == len(QUERIES)
    assert len(calls) < len(QUERIES) / 2, calls  # batched, not one pass per query
    together = np.vstack(got[:8])
    assert np.min(np.sum(together * alone, axis=1)) > 0.99


def test_batch_error_reaches_every_waiter(real_embedder):  # type: ignore[no-untyped-def]
    forward = real_embedder._forward

    def broken(texts, prompt):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    real_embedder._forward = broken
    try:
        with ThreadPoolExecutor(4) as ex:
            futs = [ex.submit(real_embedder.encode_queries, [q]) for q in QUERIES[:8]]
            errs = [f.exception(timeout=30) for f in futs]
    finally:
        real_embedder._forward = forward
    assert all(isinstance(e, RuntimeError) for e in errs)
    assert real_embedder.encode_queries(["稀土"]).shape == (1, real_embedder.dim)


def test_onnx_query_path_matches_sentence_transformers(real_embedder):  # type: ignore[no-untyped-def]
    """The ONNX export of the same weights gives the same query vectors as the torch pipeline."""
    assert real_embedder.query_backend == "onnx", "onnxruntime is a dependency: the fast path must load"
    qs = QUERIES[:8] + ["x", "一" * 600]  # a one-char query and one past the 512-token truncation
    fast = real_embedder.encode_queries(qs)
    onnx, real_embedder._onnx = real_embedder._onnx, None
    try:
        slow = real_embedder.encode_queries(qs)
    finally:
        real_embedder._onnx = onnx
    assert fast.shape == slow.shape == (len(qs), real_embedder.dim) and fast.dtype == np.float32
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-4)
    assert np.min(np.sum(fast * slow, axis=1)) > 0.995  # slow may be bf16 on AMX machines


def test_small_passage_batches_skip_the_torch_model(real_embedder, settings):  # type: ignore[no-untyped-def]
    """Answer sentences are encoded by ONNX Runtime: a fresh serving embedder gives the torch pipeline's
    vectors without loading the torch copy of the weights."""
    from embeddings.factory import create_embedder

    fresh = create_embedder("sbert", settings.models_dir, settings.model_name, settings.dtype)
    sents = [q + "。" for q in QUERIES[:8]]
    fast = fresh.encode_passages(sents)
    assert fresh._model is None  # no torch load on the interactive path
    slow = real_embedder.model.encode(sents, prompt_name="passage", normalize_embeddings=True)
    assert np.min(np.sum(fast * slow, axis=1)) > 0.995
    assert fast.shape == (len(sents), fresh.dim) and fast.dtype == np.float32
