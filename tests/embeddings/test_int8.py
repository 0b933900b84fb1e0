"""int8 encoding (RAG_EMBED_PRECISION=int8): vectors close to fp32, no torch model on the bulk path, the ONNX
file checked at load, and the device choice (CPU here; CUDA only when torch sees a device)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.core.errors import ModelNotInstalledError

from .test_embedder import QUERIES


@pytest.fixture(scope="module")
def int8_embedder(settings):  # type: ignore[no-untyped-def]
    from embeddings.factory import create_embedder

    return create_embedder("sbert", settings.models_dir, settings.model_name, settings.dtype, precision="int8",
                           device="cpu")


def test_int8_vectors_close_to_fp32_and_bulk_skips_torch(int8_embedder, real_embedder):  # type: ignore[no-untyped-def]
    from eval.data import load_cmrc

    paras = list(load_cmrc(limit=10).corpus.values())[:40]  # ~20k characters: the bulk path
    assert sum(map(len, paras)) > 8000
    got = int8_embedder.encode_passages(paras)
    assert int8_embedder._model is None and int8_embedder.bulk_backend == "onnx-int8"
    ref = real_embedder.encode_passages(paras)
    cos = np.sum(got * ref, axis=1)
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    assert cos.min() > 0.97 and cos.mean() > 0.985, (cos.min(), cos.mean())
    q8, q32 = int8_embedder.encode_queries(QUERIES[:8]), real_embedder.encode_queries(QUERIES[:8])
    assert np.sum(q8 * q32, axis=1).min() > 0.97
    # the nearest passage of each passage's own start stays itself under int8
    starts = int8_embedder.encode_queries([p[:40] for p in paras])
    assert np.mean(np.argmax(starts @ got.T, axis=1) == np.arange(len(paras))) >= \
        np.mean(np.argmax(real_embedder.encode_queries([p[:40] for p in paras]) @ ref.T, axis=1) ==
                np.arange(len(paras))) - 0.05


def test_sorted_batches_return_input_order(int8_embedder, real_embedder):  # type: ignore[no-untyped-def]
    texts = ["passage: " + q * (i % 3 + 1) for i, q in enumerate(QUERIES[:12])]
    for enc, tol in ((real_embedder._onnx, 1e-4), (int8_embedder._onnx, 0.01)):
        a, b = enc.encode(texts, sort=True), enc.encode(texts, sort=False)
        one = np.vstack([enc.encode([t]) for t in texts[:4]])
        # fp32: padding and batch-mates change nothing; int8: dynamic quantisation scales the activations per
        # batch, so a text's vector moves a little with its batch-mates (measured cosine 0.996-0.998)
        assert np.sum(a * b, axis=1).min() > 1 - tol, enc.precision
        assert np.sum(one * a[:4], axis=1).min() > 1 - tol, enc.precision


def test_a_damaged_onnx_file_is_refused_at_load(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from embeddings.onnx import model_file

    src = settings.models_dir / settings.model_name
    model_file(src, "int8")  # built (cached) from the installed weights
    dst = tmp_path / "model"
    dst.mkdir()
    for p in src.iterdir():
        if p.name != "onnx":
            (dst / p.name).symlink_to(p)
    (dst / "onnx").mkdir()
    shutil.copy(src / "onnx" / "export.json", dst / "onnx" / "export.json")
    for name in ("model.onnx", "model.onnx.data", "model_int8.onnx.data"):
        (dst / "onnx" / name).symlink_to(src / "onnx" / name)
    graph = (src / "onnx" / "model_int8.onnx").read_bytes()
    (dst / "onnx" / "model_int8.onnx").write_bytes(graph[: len(graph) // 2])  # truncated: same name, other bytes
    with pytest.raises(ModelNotInstalledError, match="sha256"):
        model_file(dst, "int8")
    # the graph intact, its memory-mapped weights damaged (export format 4 keeps them in model_int8.onnx.data)
    (dst / "onnx" / "model_int8.onnx").write_bytes(graph)
    (dst / "onnx" / "model_int8.onnx.data").unlink()
    weights = bytearray((src / "onnx" / "model_int8.onnx.data").read_bytes())
    weights[len(weights) // 2] ^= 0xFF
    (dst / "onnx" / "model_int8.onnx.data").write_bytes(bytes(weights))
    with pytest.raises(ModelNotInstalledError, match="sha256"):
        model_file(dst, "int8")
    stamp = json.loads((dst / "onnx" / "export.json").read_text())
    assert stamp["files"]["int8"]["from"] == stamp["files"]["fp32"]["sha256"]  # tied to the fp32 export
    with pytest.raises(ValueError, match="int8"):
        model_file(dst, "int4")


def test_device_is_cpu_unless_torch_sees_cuda() -> None:
    from embeddings.sbert import resolve_device

    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        resolve_device("gpu")
    import torch

    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda"
    else:
        assert resolve_device("auto") == "cpu"
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_unknown_precision_is_a_clear_error(settings) -> None:  # type: ignore[no-untyped-def]
    from embeddings.factory import create_embedder
    from rag.core.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="fp32, int8"):
        create_embedder("sbert", settings.models_dir, settings.model_name, precision="int4")


def test_bulk_batches_on_parallel_sessions_match_one_at_a_time(real_embedder):  # type: ignore[no-untyped-def]
    from eval.data import load_cmrc

    enc = real_embedder._onnx  # fp32: batch-mates change nothing, so the two paths must agree exactly
    texts = ["passage: " + p[:200] for p in list(load_cmrc(limit=20).corpus.values())[:40]]
    batch, enc.batch_size = enc.batch_size, 4  # 10 batches: the parallel path (>= 2 per thread)
    try:
        assert enc._threads > 1, "the machine has one core: the parallel path cannot be exercised"
        par = enc.encode(texts)
        assert enc._bulk is not None  # the single-threaded bulk session ran them
        threads, enc._threads = enc._threads, 1
        try:
            seq = enc.encode(texts)
        finally:
            enc._threads = threads
    finally:
        enc.batch_size = batch
    assert par.shape == seq.shape == (len(texts), enc.dim)
    assert np.sum(par * seq, axis=1).min() > 1 - 1e-5  # same vectors, each in its input row


def test_onnx_providers_cpu_unless_onnxruntime_has_cuda() -> None:
    import onnxruntime as ort

    from embeddings.onnx import providers

    assert providers("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        providers("gpu")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert providers("auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    else:  # the CPU wheel (this machine): auto falls back, an explicit cuda says what to install
        assert providers("auto") == ["CPUExecutionProvider"]
        with pytest.raises(ValueError, match="onnxruntime-gpu"):
            providers("cuda")
