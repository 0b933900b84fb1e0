"""Peers in one run: ours (hybrid) against txtai (dense) and a Langchain-Chatchat-equivalent retriever, with the
same embedding model, the same chunks and the same queries, on CMRC2018 dev and DRCD dev.

``python -m bench.peers [--limit 1000] [--out bench/results/peers.json]``

The Chatchat peer is built from the libraries Chatchat itself uses (its ``EnsembleRetrieverService``):
langchain-community's FAISS vector store (L2-normalised vectors) and ``BM25Retriever`` over
``jieba.lcut_for_search`` tokens (rank-bm25), joined by langchain's ``EnsembleRetriever`` with weights 0.5/0.5
(weighted reciprocal rank fusion). Chatchat's score threshold is left off (its default 1.0 filters nothing).
All three embed with the installed multilingual-e5-small (``query: `` / ``passage: `` prompts); no hub access.

Per system and set: Recall@5 and hit@1 over documents (a chunk's paragraph; the first 5 distinct paragraphs of
the top 10 chunks), per-query latency p50/p95 in this process (one query at a time, top 10), and ingest time
(ours: chunk + embed + BM25 + FAISS + atomic save from the documents; a peer: embedding and indexing our
chunks). Ratios are ours / peer: above 1 is better for recall, below 1 is better for time.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peer_retrievers import PEERS, Retriever  # noqa: E402
from eval import metrics as M  # noqa: E402
from eval.data import Dataset, load_cmrc, load_drcd  # noqa: E402
from rag.core.types import Chunk, Document  # noqa: E402

log = logging.getLogger("bench.peers")
TOP = 10


def _scores(ranked_docs: list[list[str]], ds: Dataset, lat_ms: list[float], ingest_s: float) -> dict[str, Any]:
    rel = [ds.relevant[it.qid] for it in ds.items]
    return {"recall@5": round(M.mean(M.recall_at_k(r, g, 5) for r, g in zip(ranked_docs, rel)), 4),
            "hit@1": round(M.mean(M.hit_at_k(r, g, 1) for r, g in zip(ranked_docs, rel)), 4),
            "p50_ms": round(M.percentile(lat_ms, 50), 2), "p95_ms": round(M.percentile(lat_ms, 95), 2),
            "ingest_s": round(ingest_s, 1), "queries": len(ranked_docs)}


def _distinct(doc_ids: list[str]) -> list[str]:
    return list(dict.fromkeys(doc_ids))[:5]


def run_ours(ds: Dataset, embedder: Any, workdir: Path) -> tuple[dict[str, Any], list[Chunk]]:
    from rag.core.config import Settings
    from rag.index.build import build_index
    from rag.pipeline import Pipeline

    s = Settings(index_dir=workdir)
    docs = [Document(k, v) for k, v in ds.corpus.items()]
    t = time.perf_counter()
    build_index(workdir, docs, embedder, s.chunk_size, s.chunk_overlap, s.batch_size)
    ingest = time.perf_counter() - t
    p = Pipeline(s, embedder=embedder).load()
    assert p.index is not None
    for it in ds.items[:5]:
        p.search(it.query, TOP)
    ranked, lat = [], []
    for it in ds.items:
        t = time.perf_counter()
        hits, _ = p.search(it.query, TOP)
        lat.append((time.perf_counter() - t) * 1000)
        ranked.append(_distinct([h.chunk.doc_id for h in hits]))
    chunks = [p.index.chunks[int(i)] for i in p.index.bm25_ids]
    return _scores(ranked, ds, lat, ingest), chunks


def run_peer(make: type[Retriever], ds: Dataset, chunks: list[Chunk], model_dir: Path) -> dict[str, Any]:
    t = time.perf_counter()
    r = make(model_dir, chunks, TOP)
    ingest = time.perf_counter() - t
    for it in ds.items[:5]:
        r.search(it.query)
    ranked, lat = [], []
    for it in ds.items:
        t = time.perf_counter()
        ids = r.search(it.query)
        lat.append((time.perf_counter() - t) * 1000)
        ranked.append(_distinct([chunks[i].doc_id for i in ids]))
    del r
    gc.collect()
    return _scores(ranked, ds, lat, ingest)


def shrink(ds: Dataset, n: int) -> Dataset:
    """The set with its corpus cut to its queries' gold paragraphs plus the first others, n in all."""
    keep = {pid for it in ds.items for pid in ds.relevant[it.qid]}
    keep |= set([pid for pid in ds.corpus if pid not in keep][: max(0, n - len(keep))])
    return Dataset(ds.name, {k: v for k, v in ds.corpus.items() if k in keep}, ds.items, ds.relevant)


def ratios(ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, float | None]:
    """ours / peer per figure (None where the peer's figure is 0)."""
    return {k: (round(ours[k] / peer[k], 3) if peer[k] else None)
            for k in ("recall@5", "hit@1", "p50_ms", "p95_ms", "ingest_s")}


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    ap = argparse.ArgumentParser(prog="python -m bench.peers")
    ap.add_argument("--limit", type=int, default=1000, help="queries per set (sampled with a fixed seed)")
    ap.add_argument("--sets", nargs="*", default=["cmrc", "drcd"], choices=["cmrc", "drcd"])
    ap.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS))
    ap.add_argument("--paragraphs", type=int, default=0, help="smoke runs: corpus cut to the queries' gold "
                    "paragraphs plus others up to this many (0: every paragraph of the set)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "peers.json")
    a = ap.parse_args()
    from embeddings.factory import create_embedder, model_path
    from rag.core.config import Settings

    s = Settings()
    embedder = create_embedder(s.embedder, s.models_dir, s.model_name, s.dtype, s.batch_size, s.torch_threads,
                               s.query_backend)
    mdir = model_path(s.models_dir, s.model_name)
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()], "model": embedder.name,
        "ours": {"embedder": s.embedder, "dtype": getattr(embedder, "dtype", ""),
                 "query_backend": getattr(embedder, "query_backend", ""), "mode": "hybrid"},
        "top": TOP, "sets": {}}
    loaders = {"cmrc": load_cmrc, "drcd": load_drcd}
    for name in a.sets:
        ds = loaders[name](a.limit)
        if a.paragraphs:
            ds = shrink(ds, a.paragraphs)
        with tempfile.TemporaryDirectory() as tmp:
            ours, chunks = run_ours(ds, embedder, Path(tmp))
        entry: dict[str, Any] = {"dataset": ds.name, "paragraphs": len(ds.corpus), "chunks": len(chunks),
                                 "ours": ours}
        print(json.dumps({name: {"ours": ours}}), flush=True)
        for peer in a.peers:
            entry[peer] = run_peer(PEERS[peer], ds, chunks, mdir)
            entry[f"ratio_ours_over_{peer}"] = ratios(ours, entry[peer])
            print(json.dumps({name: {peer: entry[peer]}}), flush=True)
        report["sets"][name] = entry
    report["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
