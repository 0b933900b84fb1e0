"""Ingest a large Chinese corpus (>= 50,000 documents, ``scripts/large_corpus.py``) and report its speed.

Two pipelines over the same files, index and embedder:

* ``--pipeline stream`` (default): ``rag.index.stream.ingest_files``, what `rag ingest` runs: a producer thread
  loads and chunks the next files while the current segment is embedded; segments are checkpointed, so a
  killed run (even ``kill -9``) resumes where it stopped; one new version (BM25 fitted once) at the end.
* ``--pipeline batches``: the files in batches of ``--batch``, each through ``rag.index.update.apply_changes``
  (one complete new version per batch: it reads back every kept vector and refits BM25, so per-batch time grows
  with the index); the report splits each batch's time by phase. A crash loses at most the batch in flight.

Embedder: ``hash`` by default (a deterministic hashed n-gram embedder: measures the pipeline, not the model).
``--real`` uses the configured model (RAG_MODEL_NAME, RAG_EMBED_PRECISION) on a subset (default 2,000
documents) to report real docs/s. Prints one JSON report: docs/s, chunks/s, peak RSS, load average, timings.

    .venv/bin/python scripts/ingest_large.py                       # 50k docs, hash embedder, FAISS
    .venv/bin/python scripts/ingest_large.py --store milvus        # same into milvus-lite
    .venv/bin/python scripts/ingest_large.py --real --docs 10000 --fresh
    RAG_EMBED_PRECISION=fp32 .venv/bin/python scripts/ingest_large.py --real --pipeline batches --batch 2000
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from large_corpus import corpus_files, write_corpus  # noqa: E402

# ---- ingestion --------------------------------------------------------------------------------------

def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def indexed_hashes(index_dir: Path) -> dict[str, str]:
    """doc_id -> sha256 of the current version (documents.jsonl only: no vectors, no BM25)."""
    path = index_dir / "current" / "documents.jsonl"
    out: dict[str, str] = {}
    if path.exists():
        with open(path, encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                out[d["doc_id"]] = d.get("meta", {}).get("sha256", "")
    return out


class PhaseTimer:
    """Wraps the functions apply_changes calls (by name in rag.index.update) to split each batch's time."""

    PHASES = {"load": ("store", "load"), "embed": (None, "embed_chunks"), "bm25": (None, "build_bm25"),
              "vector_store": (None, "build_store"), "save": ("store", "save")}

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._undo: list[Callable[[], None]] = []

    def install(self) -> None:
        import rag.index.update as upd

        for phase, (mod, name) in self.PHASES.items():
            owner: Any = getattr(upd, mod) if mod else upd
            orig = getattr(owner, name)
            setattr(owner, name, self._wrap(phase, orig))
            self._undo.append(functools.partial(setattr, owner, name, orig))
        self._wrap_reconstruct()

    def _wrap_reconstruct(self) -> None:
        """Time reading kept vectors back (``current.dense.reconstruct``) on whatever store class loads."""
        from rag.index.vectors import FaissStore

        classes: list[Any] = [FaissStore]
        try:
            from rag.index.vectors.milvus_store import MilvusStore

            classes.append(MilvusStore)
        except ImportError:
            pass
        for cls in classes:
            orig = cls.reconstruct
            cls.reconstruct = self._wrap("reconstruct", orig)
            self._undo.append(functools.partial(setattr, cls, "reconstruct", orig))

    def _wrap(self, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.times[phase] = self.times.get(phase, 0.0) + time.perf_counter() - t
        return timed

    def take(self) -> dict[str, float]:
        out, self.times = {k: round(v, 2) for k, v in self.times.items()}, {}
        return out


def make_embedder(real: bool) -> tuple[Any, str]:
    from rag.core.config import Settings

    s = Settings()
    if not real:
        from embeddings.fake import HashEmbedder

        return HashEmbedder(), "hash (embeddings.fake.HashEmbedder, 256-d)"
    from embeddings.factory import create_embedder

    emb = create_embedder("sbert", s.models_dir, s.model_name, s.dtype, s.batch_size, s.torch_threads)
    return emb, (f"sbert {s.model_name} ({getattr(emb, 'precision', '?')}, passages via "
                 f"{getattr(emb, 'bulk_backend', '?')}, {emb.dim}-d)")


def ingest_streamed(files: list[Path], index_dir: Path, emb: Any, vector_store: str,
                    log: Callable[[str], None]) -> dict[str, Any]:
    from rag.core.config import Settings
    from rag.index.stream import StreamParams, StreamProgress, ingest_files

    s = Settings()
    last = [0.0]

    def show(p: StreamProgress) -> None:
        if time.perf_counter() - last[0] > 30 or p.files_done == p.files_total:
            last[0] = time.perf_counter()
            left = (p.files_total - p.files_done) / max(p.files_done - p.resumed_files, 1) * \
                (time.perf_counter() - p.started)
            log(f"{p.files_done}/{p.files_total} files, {p.chunks} chunks, {p.passages_per_s:.1f} passages/s, "
                f"ETA {left:.0f} s, rss {rss_mb():.0f} MB, load {os.getloadavg()[0]:.2f}")

    t = time.perf_counter()
    rep = ingest_files(index_dir, emb, files, StreamParams(s.chunk_size, s.chunk_overlap, s.batch_size, s.index_kind,
                                                           vector_store, meta={"collection": "large"}),
                       root=files[0].parent.parent if files else None, progress=show)
    secs = time.perf_counter() - t
    new = len(rep.added) + len(rep.replaced)
    return {"pipeline": "stream", "docs_ingested": new, "unchanged": len(rep.unchanged),
            "resumed_after_files": rep.resumed_files, "chunks_embedded": rep.embedded, "final_chunks": rep.chunks,
            "seconds": round(secs, 2), "docs_per_s": round(new / secs, 1) if secs else None,
            "chunks_per_s": round(rep.embedded / secs, 1) if secs else None, "timings": rep.timings,
            "failures": len(rep.failures), "version": rep.version}


def sample_queries(index_dir: Path, emb: Any, n: int = 20) -> dict[str, Any]:
    """Load the final version and time a few hybrid searches (queries = starts of indexed chunks)."""
    import numpy as np

    from rag.index import store
    from rag.search.retrieve import hybrid

    t = time.perf_counter()
    idx = store.load(index_dir)
    load_s = time.perf_counter() - t
    rng = np.random.default_rng(0)
    ids = rng.choice(np.array(list(idx.chunks)), size=min(n, idx.size), replace=False)
    times, hit1 = [], 0
    for cid in ids.tolist():
        q = idx.chunks[cid].text[:30]
        t = time.perf_counter()
        hits = hybrid(idx, emb.encode_queries([q])[0], q, 5)
        times.append(time.perf_counter() - t)
        hit1 += bool(hits) and hits[0].chunk.doc_id == idx.chunks[cid].doc_id
    times.sort()
    return {"index_load_s": round(load_s, 2), "queries": len(times),
            "hybrid_p50_ms": round(1000 * times[len(times) // 2], 1),
            "hybrid_max_ms": round(1000 * times[-1], 1), "top1_same_doc": hit1 / max(1, len(times))}


def ingest(files: list[Path], index_dir: Path, emb: Any, batch: int, vector_store: str,
           max_batches: int | None, log: Callable[[str], None]) -> dict[str, Any]:
    from rag.core.config import Settings
    from rag.index.update import apply_changes
    from rag.ingest.loaders import load_file

    s = Settings()
    timer = PhaseTimer()
    timer.install()
    done = indexed_hashes(index_dir)
    manifest = index_dir / "current" / "manifest.json"
    chunks_now = int(json.loads(manifest.read_text()).get("n_chunks", 0)) if manifest.exists() else 0
    batches: list[dict[str, Any]] = []
    skipped = 0
    t_all = time.perf_counter()
    n_batches = (len(files) + batch - 1) // batch
    for b in range(n_batches):
        if max_batches is not None and len(batches) >= max_batches:
            log(f"stopping after {max_batches} batch(es) (--max-batches)")
            break
        part = files[b * batch : (b + 1) * batch]
        t = time.perf_counter()
        docs = [load_file(p, meta={"collection": "large"}) for p in part]
        read_s = time.perf_counter() - t
        indexed = sum(1 for d in docs if done.get(d.doc_id) == d.meta["sha256"])
        if indexed == len(docs):
            skipped += 1
            log(f"batch {b + 1}/{n_batches}: already indexed, skipped")
            continue
        rep = apply_changes(index_dir, emb, docs, [], s.chunk_size, s.chunk_overlap, s.batch_size,
                            s.index_kind, vector_store)
        secs = time.perf_counter() - t
        for d in docs:
            done[d.doc_id] = d.meta["sha256"]
        row = {"batch": b + 1, "docs": len(docs), "added": len(rep.added) + len(rep.replaced),
               "already_indexed": indexed, "new_chunks": rep.chunks - chunks_now, "total_chunks": rep.chunks,
               "total_docs": len(done), "seconds": round(secs, 2),
               "phases": {"read_files": round(read_s, 2), **timer.take()},
               "rss_mb": round(rss_mb(), 1), "peak_rss_mb": round(peak_rss_mb(), 1), "version": rep.version}
        chunks_now = rep.chunks
        batches.append(row)
        log(f"batch {b + 1}/{n_batches}: +{row['added']} docs +{row['new_chunks']} chunks "
            f"(total {rep.chunks}) in {secs:.1f}s {row['phases']} rss {row['rss_mb']:.0f} MB")
    total_s = time.perf_counter() - t_all
    new_docs = sum(r["added"] for r in batches)
    new_chunks = sum(r["new_chunks"] for r in batches)
    return {"batches": batches, "skipped_batches": skipped, "docs_ingested": new_docs,
            "chunks_ingested": new_chunks, "seconds": round(total_s, 2),
            "docs_per_s": round(new_docs / total_s, 1) if total_s else None,
            "chunks_per_s": round(new_chunks / total_s, 1) if total_s else None,
            "final_chunks": chunks_now}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=None, help="corpus size (default 50000; 2000 with --real)")
    ap.add_argument("--batch", type=int, default=None, help="documents per batch / version (default 5000; "
                    "1000 with --real)")
    ap.add_argument("--store", default=os.environ.get("RAG_VECTOR_STORE", "faiss"),
                    choices=["faiss", "milvus"])
    ap.add_argument("--real", action="store_true", help="use the real embedding model (RAG_MODEL_NAME)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/rag-large"), help="corpus + index parent folder")
    ap.add_argument("--index-dir", type=Path, default=None, help="default WORK/index-<embedder>-<store>")
    ap.add_argument("--fresh", action="store_true", help="delete the index first (no resume)")
    ap.add_argument("--max-batches", type=int, default=None, help="stop after N batches (to test resume)")
    ap.add_argument("--pipeline", choices=["stream", "batches"], default="stream")
    ap.add_argument("--report", type=Path, default=None, help="also write the JSON report here")
    args = ap.parse_args(argv)
    docs_n = args.docs or (2000 if args.real else 50_000)
    batch = args.batch or (1000 if args.real else 5000)
    label = "real" if args.real else "hash"
    index_dir = args.index_dir or args.work / f"index-{label}-{args.store}"
    log = lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True)  # noqa: E731

    t = time.perf_counter()
    corpus_dir = args.work / "corpus"
    meta = write_corpus(corpus_dir, max(docs_n, 50_000))  # one corpus; smaller runs take its first files
    files = corpus_files(corpus_dir)[:docs_n]
    log(f"corpus: {len(files)} of {meta['documents']} documents in {corpus_dir} "
        f"({time.perf_counter() - t:.1f}s)")
    if args.fresh and index_dir.exists():
        shutil.rmtree(index_dir)
    emb, emb_label = make_embedder(args.real)
    cur = index_dir / "current" / "manifest.json"
    start_chunks = int(json.loads(cur.read_text()).get("n_chunks", 0)) if cur.exists() else 0
    log(f"ingesting into {index_dir} ({args.store}, {emb_label}), pipeline {args.pipeline}"
        + (f", batches of {batch}" if args.pipeline == "batches" else "")
        + (f", resuming from {start_chunks} chunks" if start_chunks else ""))
    load_start = os.getloadavg()
    res = ingest(files, index_dir, emb, batch, args.store, args.max_batches, log) if args.pipeline == "batches" \
        else ingest_streamed(files, index_dir, emb, args.store, log)
    report: dict[str, Any] = {
        "corpus": {k: meta[k] for k in ("documents", "distinct_paragraphs", "paragraphs", "windows", "chars",
                                        "method")},
        "docs_requested": docs_n, "batch_size": batch, "embedder": emb_label, "vector_store": args.store,
        "index_dir": str(index_dir), "cpus": os.cpu_count(), **res,
        "peak_rss_mb": round(peak_rss_mb(), 1), "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
        "training_running": bool(os.popen("pgrep -f [t]raining.train").read().strip()),
    }
    if res.get("batches") or res.get("docs_ingested") or start_chunks:
        report["search"] = sample_queries(index_dir, emb)
    text = json.dumps(report, ensure_ascii=False, indent=1)
    print(text)
    if args.report:
        args.report.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
