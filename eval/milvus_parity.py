"""File backend vs Milvus backend on the same retrieval questions (issue 18): ``make eval`` (set ``milvus``) runs
a sample of CMRC2018 / DRCD queries through both, on the same chunks, vectors and tokens (the Milvus version is
imported from the file version: nothing re-embedded), and writes DIR/milvus_parity.md: Recall@5 and hit@1 per
mode and backend, the gap, and latency p50/p95 for both (searched alternately, so a shared CPU weighs on both).

The Milvus is ``RAG_MILVUS_URI`` when set, else a milvus-lite server process started here on a loopback port
(``python -m milvus_lite server``): milvus-lite is a pure-Python engine, so its latency is not a Milvus server's.
``check`` raises when a gap is over ``MAX_GAP``.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eval import metrics as M
from eval.data import Dataset
from rag.pipeline import Pipeline

MAX_GAP = 0.01
MODES = ("bm25", "dense", "hybrid")
CAVEATS = """milvus-lite caveats (3.2.2, pymilvus 3.0.2): a pure-Python engine behind a gRPC server, so latency is
not a Milvus server's (every search is 1-4 round trips through Python; a server runs them in C++); BM25 scores
come back negated (the backend takes the absolute value and divides by k1 + 1, which gives bm25s' scores);
IDF is per segment (one flushed segment per version here, so it is the corpus IDF); no filter templates
(values are escaped: rag/index/milvus_expr.py); the sparse index is rebuilt after a restart; index parameters
other than bm25_k1/bm25_b are not used (FLAT scan). Ties between equal scores are broken differently
(by chunk id in Milvus, by array position in bm25s)."""


class MilvusLite:
    """``python -m milvus_lite server`` on a free loopback port, its data in ``data``."""

    def __init__(self, data: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = data.parent / "milvus-lite.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data),
                                          "--host", "127.0.0.1", "--port", str(self.port)],
                                         stdout=log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 180) -> MilvusLite:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"milvus-lite exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("milvus-lite did not listen in time")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def milvus_pipeline(p: Pipeline, uri: str, alias: str) -> Pipeline:
    """A Milvus-backend pipeline over the same index as ``p`` (imported, not re-embedded)."""
    from rag.index.milvus_backend import MilvusBackend, import_index

    assert p.index is not None
    s = p.settings.model_copy(update={"backend": "milvus", "milvus_uri": uri, "milvus_alias": alias,
                                      "milvus_timeout": 60.0, "reader": "rules"})  # retrieval only
    import_index(MilvusBackend(s), p.index)
    return Pipeline(s, embedder=p.embedder).load()


def rows(p: Pipeline, ds: Dataset, uri: str, sample: int) -> list[dict[str, Any]]:
    """One row per query, mode and backend on the first ``sample`` queries with gold passages."""
    m = milvus_pipeline(p, uri, f"parity_{ds.name}_{os.getpid()}")
    out: list[dict[str, Any]] = []
    items = [it for it in ds.items if ds.relevant.get(it.qid)][:sample]
    for it in items:
        for mode in MODES:
            for backend, pipe in (("files", p), ("milvus", m)):
                t = time.perf_counter()
                hits, _ = pipe.search(it.query, 40, mode)
                ms = (time.perf_counter() - t) * 1000
                ranked = list(dict.fromkeys(h.chunk.doc_id for h in hits))
                rel = ds.relevant[it.qid]
                out.append({"dataset": ds.name, "qid": it.qid, "mode": mode, "backend": backend, "ms": ms,
                            "recall@5": M.recall_at_k(ranked, rel, 5), "hit@1": M.hit_at_k(ranked, rel, 1)})
    return out


def table(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per dataset and mode: both backends' Recall@5, hit@1, latency p50/p95 and the gaps."""
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rs):
        for mode in MODES:
            agg = {}
            for b in ("files", "milvus"):
                sel = [r for r in rs if r["dataset"] == ds and r["mode"] == mode and r["backend"] == b]
                if not sel:
                    continue
                ms = [r["ms"] for r in sel]
                agg[b] = {"n": len(sel), "recall@5": M.mean(r["recall@5"] for r in sel),
                          "hit@1": M.mean(r["hit@1"] for r in sel), "p50": M.percentile(ms, 50),
                          "p95": M.percentile(ms, 95)}
            if len(agg) == 2:
                out.append({"dataset": ds, "mode": mode, **agg,
                            "gap": max(abs(agg["files"][k] - agg["milvus"][k]) for k in ("recall@5", "hit@1"))})
    return out


def write_report(tab: list[dict[str, Any]], out: Path, where: str, load: str) -> Path:
    lines = ["# File backend vs Milvus backend: retrieval parity", "",
             f"Milvus: {where}. Load average while measuring: {load}. Same chunks, vectors and tokens.", "",
             "| set | mode | n | Recall@5 files | Recall@5 milvus | hit@1 files | hit@1 milvus | gap | "
             "p50 / p95 ms files | p50 / p95 ms milvus |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in tab:
        f, m = r["files"], r["milvus"]
        lines.append(f"| {r['dataset']} | {r['mode']} | {f['n']} | {f['recall@5']:.4f} | {m['recall@5']:.4f} | "
                     f"{f['hit@1']:.4f} | {m['hit@1']:.4f} | {r['gap']:.4f} | {f['p50']:.1f} / {f['p95']:.1f} | "
                     f"{m['p50']:.1f} / {m['p95']:.1f} |")
    lines += ["", CAVEATS, ""]
    path = out / "milvus_parity.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def check(tab: list[dict[str, Any]]) -> None:
    bad = [f"{r['dataset']} {r['mode']}: gap {r['gap']:.4f}" for r in tab if r["gap"] > MAX_GAP]
    if bad:
        raise RuntimeError(f"Milvus backend differs from the file backend by more than {MAX_GAP}: {'; '.join(bad)}")


class Parity:
    """What eval.run holds while it goes through the sets: the Milvus to use and the rows so far."""

    def __init__(self, sample: int) -> None:
        self.sample, self.rows = sample, []  # type: ignore[var-annotated]
        self._server: MilvusLite | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.uri = os.environ.get("RAG_MILVUS_URI", "").strip()

    def add(self, p: Pipeline, ds: Dataset) -> None:
        if not self.uri:
            self._tmp = tempfile.TemporaryDirectory(prefix="parity-milvus-")
            self._server = MilvusLite(Path(self._tmp.name) / "data")
            atexit.register(self._stop)  # never left running when the eval fails later
            self.uri = self._server.wait().uri
        self.rows += rows(p, ds, self.uri, self.sample)
        self.model = str(p.index.manifest.get("model", "")) if p.index is not None else ""

    def _stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def finish(self, out: Path) -> list[dict[str, Any]]:
        """Write DIR/milvus_parity.md, stop the server started here, then raise if a gap is too large."""
        where = f"milvus-lite server process at {self.uri}" if self._server else self.uri
        where += f"; embedder {getattr(self, 'model', '?')}"
        tab = table(self.rows)
        write_report(tab, out, where, " ".join(f"{x:.1f}" for x in os.getloadavg()))
        self._stop()
        check(tab)
        return tab


def main() -> None:
    """``python -m eval.milvus_parity [--sample N] [--out DIR] [--embedder hash]``: only this part of ``make eval``
    (builds the file indexes of CMRC2018 dev and DRCD dev first, with the real model unless ``--embedder hash``)."""
    import argparse
    import json
    import logging

    from embeddings.factory import create_embedder
    from eval.data import load_cmrc, load_drcd
    from eval.run import make_pipeline
    from rag.core.config import Settings
    from rag.core.types import Document

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(prog="python -m eval.milvus_parity")
    ap.add_argument("--sample", type=int, default=150)
    ap.add_argument("--out", default="eval/reports/milvus")
    ap.add_argument("--embedder", choices=["sbert", "hash"], default="sbert", help="hash: the tiny test embedder "
                    "(both backends get the same vectors either way; only the absolute recall changes)")
    args = ap.parse_args()
    s = Settings(embedder=args.embedder)
    embedder = create_embedder(s.embedder, s.models_dir, s.model_name, s.dtype, s.batch_size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parity = Parity(args.sample)
    with tempfile.TemporaryDirectory() as tmp:
        for loader in (load_cmrc, load_drcd):
            ds = loader(args.sample)
            p = make_pipeline(s, embedder, [Document(k, t) for k, t in ds.corpus.items()], Path(tmp) / ds.name)
            parity.add(p, ds)
    tab = parity.finish(out)
    print(json.dumps(tab, indent=1))


if __name__ == "__main__":
    main()
