"""Where a large index's memory goes: build a synthetic N-chunk index once (kept on disk), serve it, run the
HTTP load, and split the server's RSS by mapping (/proc/PID/smaps): anonymous memory vs touched page cache of
each index file, model file and shared library. ``--profile`` adds an in-process breakdown of the anonymous
part by load step (embedder, each index component, BM25 idf, the cross-lingual dictionary).

``python -m bench.memory build --n 1000000 --out .cache/bench/m1m``
``python -m bench.memory measure --index .cache/bench/m1m [--profile] [--out bench/results/memory_1m.json]``
``python -m bench.memory recall --index .cache/bench/m1m`` (the served dense index against exact search)

The synthetic corpus is bench.run's: the real chunks of CMRC/DRCD paragraphs with their real vectors, mixed
pairwise plus noise, and their real BM25 tokens. The base (chunks, vectors, tokens, queries) is cached beside
the index so a rebuild after an index format change skips the ~80 s of embedding.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import _load, base_corpus, lat, rss_mb, synth_index, synth_vectors  # noqa: E402
from rag.core.types import Chunk  # noqa: E402


def _base(out: Path, base_docs: int) -> tuple[list[Chunk], np.ndarray, list[list[str]], list[str]]:
    cache = out / "base"
    if (cache / "vecs.npy").exists():
        chunks = [Chunk.from_json(json.loads(line)) for line in (cache / "chunks.jsonl").open(encoding="utf-8")]
        meta = json.loads((cache / "meta.json").read_text(encoding="utf-8"))
        return chunks, np.load(cache / "vecs.npy"), meta["tokens"], meta["queries"]
    from embeddings.factory import create_embedder
    from rag.core.config import Settings

    s = Settings()
    emb = create_embedder(s.embedder, s.models_dir, s.model_name, s.dtype, s.batch_size, s.torch_threads)
    chunks, vecs, toks, queries, _ = base_corpus(emb, base_docs)
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "chunks.jsonl", "w", encoding="utf-8") as f:
        for c in chunks:
            f.write(json.dumps(c.to_json(), ensure_ascii=False) + "\n")
    np.save(cache / "vecs.npy", vecs)
    (cache / "meta.json").write_text(json.dumps({"tokens": toks, "queries": queries}, ensure_ascii=False))
    return chunks, vecs, toks, queries


def build(out: Path, n: int, base_docs: int) -> dict[str, Any]:
    chunks, vecs, toks, _ = _base(out, base_docs)
    t = time.perf_counter()
    info = synth_index(out / "index", n, chunks, vecs, toks)
    info.pop("vectors")
    info["total_s"] = round(time.perf_counter() - t, 1)
    cur = (out / "index" / "current").resolve()
    info["files_mb"] = {p.relative_to(cur).as_posix(): round(p.stat().st_size / 2**20, 1)
                        for p in sorted(cur.rglob("*")) if p.is_file()}
    return info


def smaps(pid: int, index_dir: Path) -> dict[str, Any]:
    """RSS of a process split by mapping: anonymous (heap, arenas, stacks) and file pages per file group."""
    cur = str((index_dir / "current").resolve())
    anon, files = 0, defaultdict[str, int](int)
    path = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if not head:
                continue
            if "-" in head[0] and not head[0].endswith(":"):
                path = head[5] if len(head) > 5 else ""
            elif head[0] == "Rss:":
                rss = int(head[1])
            elif head[0] == "Anonymous:":
                a = int(head[1])
                anon += a
                if rss - a > 0:
                    files[_group(path, cur)] += rss - a
    total = anon + sum(files.values())
    return {"total_mb": round(total / 1024, 1), "anonymous_mb": round(anon / 1024, 1),
            "file_mb": round(sum(files.values()) / 1024, 1),
            "file_by_group_mb": {k: round(v / 1024, 1) for k, v in sorted(files.items(), key=lambda kv: -kv[1])}}


def _group(path: str, index_version: str) -> str:
    if path.startswith(index_version):
        return "index/" + path[len(index_version) + 1:]
    if ".cache/models" in path:
        return "model/" + Path(path).name
    if ".so" in Path(path).name:
        return "shared libraries"
    return path or "[unnamed]"


def measure(index_dir: Path, queries: list[str], seconds: float, clients: tuple[int, ...],
            env: dict[str, str]) -> dict[str, Any]:
    import httpx

    from tests.conftest import start_server, stop_server

    proc, base = start_server(index_dir, {"RAG_RATE_LIMIT_PER_MINUTE": "0", **env})
    try:
        out: dict[str, Any] = {"after_start": smaps(proc.pid, index_dir), "load_avg_before": os.getloadavg()}
        with httpx.Client(timeout=30) as c:
            for q in queries[:5]:
                c.post(base + "/v1/search", json={"query": q, "top_k": 10})
            seq = []
            for q in queries:
                t = time.perf_counter()
                r = c.post(base + "/v1/search", json={"query": q, "top_k": 10})
                seq.append((time.perf_counter() - t) * 1000)
                if r.status_code != 200:
                    raise RuntimeError(f"/v1/search {r.status_code}: {r.text[:300]}")
        out["sequential"] = lat(seq)
        for n in clients:
            out[f"concurrency_{n}"] = asyncio.run(_load(base, queries, n, seconds))
        out["load_avg_after"] = os.getloadavg()
        out["after_load"] = smaps(proc.pid, index_dir)
        return out
    finally:
        stop_server(proc)


def profile(index_dir: Path) -> dict[str, float]:
    """Anonymous-RSS growth of each load step, in this process (same order as Pipeline.load)."""
    steps: dict[str, float] = {}

    def anon() -> float:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def step(name: str, a0: float) -> float:
        gc.collect()
        a1 = anon()
        steps[name] = round(a1 - a0, 1)
        return a1

    a = anon()
    from embeddings.factory import create_embedder
    from rag.core.config import Settings
    from rag.index import store
    from rag.pipeline import bm25_idf
    from rag.search.crosslingual import create_translator

    a = step("imports", a)
    s = Settings(index_dir=index_dir)
    emb = create_embedder(s.embedder, s.models_dir, s.model_name, s.dtype, s.batch_size, s.torch_threads,
                          s.query_backend)
    emb.encode_queries(["预热"])
    a = step("query encoder", a)
    index = store.load(index_dir)
    a = step("index load (chunk table, documents, faiss, bm25 mmap)", a)
    idf = bm25_idf(index)
    a = step("bm25 idf dict", a)
    tr = create_translator(idf)
    if tr is not None:
        tr("warm up")
    a = step("cross-lingual dictionary", a)
    steps["total_anon_mb"] = round(a, 1)
    steps["vmrss_mb"] = round(rss_mb(), 1)
    del emb, index, idf, tr
    return steps


def recall(out: Path, queries: int = 200) -> dict[str, Any]:
    """Recall@10 of the index's dense store as the server loads it (IVF memory-mapped, its nprobe) against
    exact inner-product search over the same synthetic vectors (regenerated: same n, same base)."""
    import faiss

    from embeddings.factory import create_embedder
    from rag.core.config import Settings
    from rag.index.vectors import load_store

    _, vecs, _, qs = _base(out, 0)
    s = Settings()
    emb = create_embedder(s.embedder, s.models_dir, s.model_name, s.dtype, s.batch_size, s.torch_threads,
                          s.query_backend)
    qv = emb.encode_queries(qs[:queries])
    dense = load_store((out / "index" / "current").resolve())
    v = synth_vectors(dense.ntotal, vecs)
    t = time.perf_counter()
    _, exact = faiss.knn(qv, v, 10, metric=faiss.METRIC_INNER_PRODUCT)
    exact_ms = (time.perf_counter() - t) * 1000 / len(qv)
    del v
    t = time.perf_counter()
    _, got = dense.search(qv, 10)
    ann_ms = (time.perf_counter() - t) * 1000 / len(qv)
    rec = float(np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got.tolist(), exact.tolist())]))
    return {"n": dense.ntotal, "kind": dense.kind, "nprobe": getattr(dense, "nprobe", None), "queries": len(qv),
            "recall@10_vs_exact": round(rec, 4), "ann_ms_per_query": round(ann_ms, 3),
            "exact_ms_per_query": round(exact_ms, 2), "load_avg": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.memory")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--n", type=int, default=1_000_000)
    b.add_argument("--base-docs", type=int, default=600)
    b.add_argument("--out", type=Path, default=ROOT / ".cache" / "bench" / "m1m")
    r = sub.add_parser("recall")
    r.add_argument("--index", type=Path, default=ROOT / ".cache" / "bench" / "m1m")
    r.add_argument("--out", type=Path)
    m = sub.add_parser("measure")
    m.add_argument("--index", type=Path, default=ROOT / ".cache" / "bench" / "m1m")
    m.add_argument("--seconds", type=float, default=15)
    m.add_argument("--clients", type=int, nargs="*", default=[8, 32])
    m.add_argument("--profile", action="store_true", help="also the in-process anonymous-RSS breakdown")
    m.add_argument("--env", nargs="*", default=[], help="server settings, KEY=VALUE")
    m.add_argument("--out", type=Path)
    a = ap.parse_args()
    if a.cmd == "build":
        rep = build(a.out, a.n, a.base_docs)
    elif a.cmd == "recall":
        rep = recall(a.index)
    else:
        meta = json.loads((a.index / "base" / "meta.json").read_text(encoding="utf-8"))
        env = dict(kv.split("=", 1) for kv in a.env)
        rep = {"index": str(a.index), "env": env, "cpus": os.cpu_count()}
        if a.profile:  # in this process, with the server's settings
            os.environ.update(env)
            rep["profile_anon_mb"] = profile(a.index / "index")
        rep["server"] = measure(a.index / "index", meta["queries"], a.seconds, tuple(a.clients), env)
    text = json.dumps(rep, indent=1, ensure_ascii=False)
    print(text)
    if a.cmd != "build" and a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
