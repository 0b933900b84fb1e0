"""Benchmarks: query latency at scale (in-process and over HTTP), throughput under concurrency,
ANN recall vs exact and memory, embedding throughput vs the CPU's FLOP bound, ingest throughput,
and a peer (txtai, same model and chunks). Prints figures and writes bench/results/latest.json.

``python -m bench.run [--sizes 10000 100000 1000000] [--quick]``

Scale corpora are synthetic from real text: the real chunks of CMRC2018/DRCD paragraphs with
their real embeddings and BM25 tokens, replicated with small vector noise to reach N chunks.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import faiss  # noqa: E402

from eval.data import load_cmrc, load_drcd  # noqa: E402
from rag.core.config import Settings  # noqa: E402
from rag.core.text import tokenize_many  # noqa: E402
from rag.core.types import Chunk, Document  # noqa: E402
from rag.index import store  # noqa: E402
from rag.index.bm25 import BM25_META  # noqa: E402
from rag.index.vectors import FaissStore  # noqa: E402
from rag.ingest.chunking import chunk_all  # noqa: E402
from rag.ingest.embed import embed_chunks  # noqa: E402

log = logging.getLogger("bench")


def pct(v: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(v), q)) if v else float("nan")


def lat(v: list[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(v, 50), 2), "p95_ms": round(pct(v, 95), 2), "p99_ms": round(pct(v, 99), 2),
            "n": len(v)}


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def base_corpus(embedder: Any, limit_docs: int) -> tuple[list[Chunk], np.ndarray, list[list[str]], list[str], dict]:
    """Real chunks (CMRC + DRCD paragraphs), their embeddings, tokens, and real queries."""
    cm, dr = load_cmrc(400), load_drcd(400)
    docs = [Document(k, v) for k, v in list(cm.corpus.items()) + list(dr.corpus.items())][:limit_docs]
    t0 = time.perf_counter()
    chunks = chunk_all(docs, 300, 1)
    t_chunk = time.perf_counter() - t0
    t0 = time.perf_counter()
    vecs = embed_chunks(embedder, chunks, 32)
    t_embed = time.perf_counter() - t0
    t0 = time.perf_counter()
    toks = tokenize_many([c.embed_text() for c in chunks])
    t_tok = time.perf_counter() - t0
    queries = [it.query for it in cm.items[:150]] + [it.query for it in dr.items[:150]]
    ingest = {"docs": len(docs), "chunks": len(chunks), "chunk_s": round(t_chunk, 2), "embed_s": round(t_embed, 2),
              "tokenize_s": round(t_tok, 2), "chunks_per_s": round(len(chunks) / (t_chunk + t_embed + t_tok), 1),
              "embed_chunks_per_s": round(len(chunks) / t_embed, 1)}
    return chunks, vecs, toks, queries, ingest


def synth_vectors(n: int, vecs: np.ndarray) -> np.ndarray:
    """n unit vectors from the b real ones (row i from real row i % b), the same for the same n and base."""
    b = len(vecs)
    rng = np.random.default_rng(n)
    # each synthetic vector mixes its chunk's real vector with another real one plus noise, so the N points
    # spread over the real embedding manifold instead of forming N/b near-identical copies (ties that
    # would make the ANN-vs-exact recall meaningless)
    mix = vecs[rng.integers(0, b, n)] * rng.uniform(0.2, 0.5, (n, 1)).astype(np.float32)
    v = vecs[np.arange(n) % b] + mix + rng.standard_normal((n, vecs.shape[1])).astype(np.float32) * 0.01
    del mix
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def synth_index(out: Path, n: int, chunks: list[Chunk], vecs: np.ndarray, toks: list[list[str]],
                kind: str = "auto") -> dict[str, Any]:
    """Write a real index version of n chunks replicated from the base (vectors jittered)."""
    import bm25s

    b = len(chunks)
    idx = np.arange(n) % b
    v = synth_vectors(n, vecs)
    ids = np.arange(n, dtype=np.int64)
    t0 = time.perf_counter()
    dense = FaissStore.build(vecs.shape[1], ids, v, kind)
    t_dense = time.perf_counter() - t0
    t0 = time.perf_counter()
    bm = bm25s.BM25()
    bm.index([toks[i] for i in idx], show_progress=False)
    t_bm = time.perf_counter() - t0
    cs = []
    for i in range(n):
        c = chunks[idx[i]]
        cs.append(Chunk(i, f"syn{i // 4}", c.text, c.start, c.end, c.title, c.section, c.kind, []))
    # each document holds the text of its chunks, as a real index does (the server must not hold it in memory)
    docs = [Document(f"syn{j}", "".join(c.text for c in cs[4 * j: 4 * j + 4]), meta={"collection": "default"})
            for j in range((n + 3) // 4)]
    # the base tokens come from this release's tokenizer: say so, or a server re-tokenises every chunk at start
    manifest = {"model": "multilingual-e5-small", "dim": int(vecs.shape[1]), "chunk_size": 300, "chunk_overlap": 1,
                "synthetic": True, "bm25": dict(BM25_META)}
    store.save(out, manifest, cs, docs, dense, bm)
    built = dense.kind
    del cs, docs, bm, dense
    gc.collect()
    return {"n": n, "kind": built, "dense_build_s": round(t_dense, 2),
            "bm25_build_s": round(t_bm, 2), "vectors": v}


def inprocess_latency(index_dir: Path, embedder: Any, queries: list[str]) -> dict[str, Any]:
    from rag.pipeline import Pipeline

    s = Settings(index_dir=index_dir)
    p = Pipeline(s, embedder=embedder)
    gc.collect()
    r0 = rss_mb()
    p.load()
    r1 = rss_mb()
    for q in queries[:5]:
        p.search(q, 5)
    out: dict[str, Any] = {"index_rss_mb": round(r1 - r0, 1), "process_rss_mb": round(r1, 1)}
    for mode in ("hybrid", "dense", "bm25"):
        t_all, t_emb, t_ret = [], [], []
        for q in queries:
            tm: dict[str, float] = {}
            t = time.perf_counter()
            p.search(q, 10, mode, tm)
            t_all.append((time.perf_counter() - t) * 1000)
            t_emb.append(tm.get("embed_ms", 0))
            t_ret.append(tm.get("retrieve_ms", 0))
        out[mode] = {**lat(t_all), "embed_p50_ms": round(pct(t_emb, 50), 2),
                     "retrieve_p50_ms": round(pct(t_ret, 50), 2), "retrieve_p95_ms": round(pct(t_ret, 95), 2)}
    p.index = None
    gc.collect()
    return out


def http_latency(index_dir: Path, queries: list[str], concurrency: tuple[int, ...] = (8, 32),
                 seconds: float = 15) -> dict[str, Any]:
    import httpx

    from tests.conftest import start_server, stop_server

    proc, base = start_server(index_dir, {"RAG_RATE_LIMIT_PER_MINUTE": "0"})
    try:
        with httpx.Client(timeout=30) as c:
            for q in queries[:5]:
                c.post(base + "/v1/search", json={"query": q, "top_k": 10})
            seq = []
            for q in queries:
                t = time.perf_counter()
                r = c.post(base + "/v1/search", json={"query": q, "top_k": 10})
                seq.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, r.text
        out: dict[str, Any] = {"sequential": lat(seq)}
        for n in concurrency:
            out[f"concurrency_{n}"] = asyncio.run(_load(base, queries, n, seconds))
        out["server_rss_mb"] = _rss_of(proc.pid)
        # anonymous = heap (model, FAISS, arrays); file = touched pages of mmapped index files (page cache,
        # reclaimable under memory pressure)
        out["server_rss_anon_mb"] = _rss_of(proc.pid, "RssAnon")
        out["server_rss_file_mb"] = _rss_of(proc.pid, "RssFile")
        return out
    finally:
        stop_server(proc)


async def _load(base: str, queries: list[str], clients: int, seconds: float) -> dict[str, Any]:
    import httpx

    lats: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(i: int, c: httpx.AsyncClient) -> None:
        nonlocal errors
        j = i
        while time.perf_counter() < stop:
            q = queries[j % len(queries)]
            j += clients
            t = time.perf_counter()
            try:
                r = await c.post(base + "/v1/search", json={"query": q, "top_k": 10})
                if r.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            lats.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as c:
        await asyncio.gather(*(worker(i, c) for i in range(clients)))
    wall = time.perf_counter() - t0
    return {"clients": clients, "requests": len(lats), "errors": errors, "qps": round(len(lats) / wall, 1),
            **lat(lats)}


def _rss_of(pid: int, field: str = "VmRSS") -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return float("nan")


def ann_recall(vectors: np.ndarray, queries: np.ndarray, kinds: tuple[str, ...] = ("ivfsq8", "hnsw")) -> dict:
    """Recall@10 of each ANN kind against exact search on the same vectors; memory and latency."""
    n, d = vectors.shape
    ids = np.arange(n, dtype=np.int64)
    flat = FaissStore.build(d, ids, vectors, "flat")
    t = time.perf_counter()
    _, exact = flat.search(queries, 10)
    flat_ms = (time.perf_counter() - t) * 1000 / len(queries)
    del flat
    gc.collect()
    out: dict[str, Any] = {"n": n, "flat_ms_per_query": round(flat_ms, 2), "flat_bytes": n * d * 4}
    for kind in kinds:
        if kind == "hnsw" and n > 300_000:
            out[kind] = {"skipped": "HNSW build of >300k vectors takes too long on 2 cores"}
            continue
        r0 = rss_mb()
        t = time.perf_counter()
        s = FaissStore.build(d, ids, vectors, kind)
        build = time.perf_counter() - t
        r1 = rss_mb()
        res = {}
        probes = (8, 16, 32, 64) if kind == "ivfsq8" else (32, 64, 128)
        for p in probes:
            if kind == "ivfsq8":
                s.nprobe = p
            else:
                faiss.downcast_index(s.index.index).hnsw.efSearch = p
            t = time.perf_counter()
            _, got = s.search(queries, 10)
            ms = (time.perf_counter() - t) * 1000 / len(queries)
            rec = np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got, exact)])
            res[str(p)] = {"recall@10_vs_exact": round(float(rec), 4), "ms_per_query": round(ms, 3)}
        with tempfile.TemporaryDirectory() as tmp:
            s.save(Path(tmp))
            size = (Path(tmp) / "dense.faiss").stat().st_size
        out[kind] = {"build_s": round(build, 1), "file_mb": round(size / 2**20, 1),
                     "rss_growth_mb": round(r1 - r0, 1), "by_param": res}
        del s
        gc.collect()
    return out


def embedding_throughput(model_dir: Path, texts: list[str]) -> dict[str, Any]:
    """Tokens/s for dtype x batch x length-sorting, and the ratio to the CPU's FLOP bound."""
    import torch
    from sentence_transformers import SentenceTransformer

    cfg = json.loads((model_dir / "config.json").read_text())
    h, ff, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    out: dict[str, Any] = {"threads": torch.get_num_threads()}
    mhz = _cpu_mhz()
    # Peak per core: 2 FMA pipes x lanes x 2 flops: 64 fp32 flop/cycle with AVX-512 (Intel Xeon, 16 lanes),
    # 32 with AVX2; bf16 dot-product (VDPBF16PS) doubles it on paper. /proc/cpuinfo's MHz is the nominal
    # clock, so turbo can push the measured ratio a little past what this peak allows.
    flags = open("/proc/cpuinfo").read()
    per_cycle = 64 if " avx512f" in flags else 32
    out["fp32_flop_per_cycle"] = per_cycle
    peak_fp32 = per_cycle * mhz * 1e6 * os.cpu_count()  # type: ignore[operator]
    out["cpu_mhz"] = mhz
    out["peak_gflops_fp32"] = round(peak_fp32 / 1e9, 1)
    texts = texts[:256]
    for dtype in ("bfloat16", "float32"):
        m = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True,
                                model_kwargs={"dtype": getattr(torch, dtype)})
        tok = m.tokenizer
        lens = [len(tok("passage: " + t)["input_ids"]) for t in texts]
        for bs in (8, 32, 64):
            for sort in (True, False):
                order = np.argsort(lens)[::-1] if sort else np.arange(len(texts))
                batch_texts = [texts[i] for i in order]
                m.encode(batch_texts[:bs], prompt_name="passage", batch_size=bs)
                t = time.perf_counter()
                with torch.inference_mode():
                    # ST sorts by length internally; unsorted = encode each batch separately in given order
                    if sort:
                        m.encode(batch_texts, prompt_name="passage", batch_size=bs)
                    else:
                        for s in range(0, len(batch_texts), bs):
                            m.encode(batch_texts[s : s + bs], prompt_name="passage", batch_size=bs)
                dt = time.perf_counter() - t
                ntok = sum(lens)
                avg_len = ntok / len(lens)
                flop_tok = 2 * layers * (4 * h * h + 2 * h * ff) + 4 * layers * avg_len * h
                gflops = ntok * flop_tok / dt / 1e9
                peak = peak_fp32 * (2 if dtype == "bfloat16" else 1) / 1e9
                out[f"{dtype}_bs{bs}_{'sorted' if sort else 'unsorted'}"] = {
                    "texts_per_s": round(len(texts) / dt, 1), "tokens_per_s": round(ntok / dt),
                    "gflops": round(gflops, 1), "ratio_to_peak": round(gflops / peak, 3)}
        q = [t[:40] for t in texts[:60]]
        t = time.perf_counter()
        for x in q:
            m.encode([x], prompt_name="query")
        out[f"{dtype}_single_query_ms"] = round((time.perf_counter() - t) * 1000 / len(q), 2)
        del m
        gc.collect()
    return out


def query_encoders(model_dir: Path, queries: list[str]) -> dict[str, Any]:
    """Per-query latency of one short query: torch bf16, torch fp32, ONNX Runtime (same weights)."""
    from embeddings.sbert import SentenceTransformerEmbedder

    out: dict[str, Any] = {}
    for name, dtype, backend in (("torch_bf16", "bfloat16", "torch"), ("torch_fp32", "float32", "torch"),
                                 ("onnx_fp32", "float32", "onnx")):
        e = SentenceTransformerEmbedder(model_dir, dtype=dtype, query_backend=backend)
        for q in queries[:5]:
            e.encode_queries([q])
        ts = []
        for q in queries[:150]:
            t = time.perf_counter()
            e.encode_queries([q])
            ts.append((time.perf_counter() - t) * 1000)
        out[name] = lat(ts)
        del e
        gc.collect()
    return out


def _cpu_mhz() -> float:
    try:
        vals = [float(line.split(":")[1]) for line in open("/proc/cpuinfo") if line.startswith("cpu MHz")]
        return round(max(vals), 0)
    except (OSError, ValueError):
        return float("nan")


def peer(index_dir: Path, embedder: Any, model_dir: Path, queries: list[str], relevant: dict[str, str]) -> dict:
    """txtai over the same chunks/model/queries: latency and Recall@5 vs ours (hybrid)."""
    try:
        from txtai import Embeddings
    except ImportError:
        return {"skipped": "txtai not installed (pip install -e '.[eval]')"}
    from rag.pipeline import Pipeline

    p = Pipeline(Settings(index_dir=index_dir), embedder=embedder).load()
    assert p.index is not None
    emb = Embeddings({"path": str(model_dir), "method": "sentence-transformers", "content": False,
                      "instructions": {"query": "query: ", "data": "passage: "}, "backend": "faiss"})
    emb.index([(c.chunk_id, c.embed_text(), None) for c in p.index.chunks.values()])
    ours_l, peer_l, ours_r, peer_r = [], [], [], []
    for q, gold in relevant.items():
        t = time.perf_counter()
        hits, _ = p.search(q, 10)
        ours_l.append((time.perf_counter() - t) * 1000)
        docs = list(dict.fromkeys(h.chunk.doc_id for h in hits))[:5]
        ours_r.append(1.0 if gold in docs else 0.0)
        t = time.perf_counter()
        res = emb.search(q, 10)
        peer_l.append((time.perf_counter() - t) * 1000)
        pd = list(dict.fromkeys(p.index.chunks[int(i)].doc_id for i, _ in res))[:5]
        peer_r.append(1.0 if gold in pd else 0.0)
    ours, theirs = lat(ours_l), lat(peer_l)
    return {"ours_hybrid": {**ours, "recall@5": round(statistics.mean(ours_r), 4)},
            "txtai_dense": {**theirs, "recall@5": round(statistics.mean(peer_r), 4)},
            "latency_ratio_p50_ours_over_peer": round(ours["p50_ms"] / theirs["p50_ms"], 3),
            "recall5_ratio_ours_over_peer": round(statistics.mean(ours_r) / max(statistics.mean(peer_r), 1e-9), 3)}


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    ap = argparse.ArgumentParser(prog="python -m bench.run")
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--http-sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--base-docs", type=int, default=600, help="real paragraphs embedded as the base")
    ap.add_argument("--seconds", type=float, default=15, help="per concurrency level")
    ap.add_argument("--skip", nargs="*", default=[], help="sections to skip: embed qenc ann http peer")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    a = ap.parse_args()
    from embeddings.factory import create_embedder, model_path

    s = Settings()
    embedder = create_embedder(s.embedder, s.models_dir, s.model_name, s.dtype, s.batch_size)
    mdir = model_path(s.models_dir, s.model_name)
    report: dict[str, Any] = {"machine": {"cores": os.cpu_count(), "cpu_mhz": _cpu_mhz()}}
    r0 = rss_mb()
    chunks, vecs, toks, queries, ingest = base_corpus(embedder, a.base_docs)
    ingest["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    ingest["rss_growth_mb"] = round(rss_mb() - r0, 1)
    report["ingest_real_model"] = ingest
    print(json.dumps({"ingest": ingest}, indent=1), flush=True)
    if "embed" not in a.skip:
        report["embedding"] = embedding_throughput(mdir, [c.embed_text() for c in chunks])
        print(json.dumps({"embedding": report["embedding"]}, indent=1), flush=True)
    if "qenc" not in a.skip:
        report["query_encoders"] = query_encoders(mdir, queries)
        print(json.dumps({"query_encoders": report["query_encoders"]}, indent=1), flush=True)
    report["settings"] = {"dtype": s.dtype, "query_backend": getattr(embedder, "query_backend", "")}
    qv = embedder.encode_queries(queries[:200])
    report["scale"] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.sizes:
            d = Path(tmp) / f"n{n}"
            info = synth_index(d, n, chunks, vecs, toks)
            vectors = info.pop("vectors")
            entry: dict[str, Any] = {"build": info}
            info["files_mb"] = round(sum(f.stat().st_size for f in (d / "current").resolve().rglob("*")
                                         if f.is_file()) / 2**20, 1)
            entry["in_process"] = inprocess_latency(d, embedder, queries)
            if n in a.http_sizes and "http" not in a.skip:
                entry["http"] = http_latency(d, queries, seconds=a.seconds)
            if "ann" not in a.skip and n >= 100_000:
                entry["ann"] = ann_recall(vectors, qv)
            del vectors
            gc.collect()
            report["scale"][str(n)] = entry
            print(json.dumps({str(n): entry}, indent=1), flush=True)
            import shutil

            shutil.rmtree(d, ignore_errors=True)
        if "peer" not in a.skip:
            cm = load_cmrc(300)
            d = Path(tmp) / "peer"
            from rag.index.build import build_index

            build_index(d, [Document(k, v) for k, v in cm.corpus.items()], embedder)
            rel = {it.query: next(iter(cm.relevant[it.qid])) for it in cm.items}
            report["peer_cmrc"] = peer(d, embedder, mdir, list(rel), rel)
            print(json.dumps({"peer": report["peer_cmrc"]}, indent=1), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
