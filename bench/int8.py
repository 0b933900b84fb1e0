"""int8 vs fp32 passage and query encoding: retrieval quality measured in one run, on the same corpora and queries.

``python -m bench.int8 [--sets seed cmrc drcd] [--limit N] [--out bench/results/int8_quality]`` writes OUT.json and
OUT.md and prints the table.

Three encoders over each set (seed gold set over seeds/, CMRC 2018 dev and DRCD dev, every paragraph indexed,
every question asked unless ``--limit``):

* ``fp32``: today's default: fp32 passages (sentence-transformers) and fp32 queries (ONNX Runtime);
* ``int8``: passages and queries through the ONNX Runtime int8 export (RAG_EMBED_PRECISION=int8);
* ``int8 queries / fp32 index``: an index built in fp32, queried by an int8 server (switching the setting
  without re-ingesting).

Recall@5 and hit@1 per retrieval mode (dense alone, and hybrid = dense + BM25 with RRF, the default); the int8
rows pass when both are within 0.005 of fp32 (``--tolerance``). The gate decides the default of
``embed_precision`` (rag/core/config.py): int8 only if every row passes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eval import metrics as M
from eval.data import ROOT, Dataset, load_cmrc, load_drcd, load_seed_gold
from eval.run import retrieval_rows
from rag.core.config import Settings
from rag.core.types import Document
from rag.index.build import build_index
from rag.ingest.loaders import load_path
from rag.pipeline import Pipeline

log = logging.getLogger("bench.int8")
MODES = ("dense", "hybrid")
METRICS = ("recall@5", "hit@1")


def datasets(names: list[str], limit: int | None) -> list[tuple[Dataset, list[Document]]]:
    out = []
    for name in names:
        if name == "seed":
            docs, _ = load_path(ROOT / "seeds")
            out.append((load_seed_gold(), docs))
        else:
            ds = {"cmrc": load_cmrc, "drcd": load_drcd}[name](limit)
            out.append((ds, [Document(pid, text) for pid, text in ds.corpus.items()]))
    return out


def score(p: Pipeline, ds: Dataset) -> dict[str, dict[str, float]]:
    rows = retrieval_rows(p, ds, MODES)
    res: dict[str, dict[str, float]] = {}
    for mode in MODES:
        rs = [r for r in rows if r["system"] == mode]
        res[mode] = {"n": len(rs), **{m: round(M.mean(r[m] for r in rs), 4) for m in METRICS}}
    return res


def run(sets: list[str], limit: int | None, tolerance: float,
        done: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every set through the three encoders; ``done`` gets the report so far after each set."""
    from embeddings.factory import create_embedder

    s = Settings()
    enc = {prec: create_embedder("sbert", s.models_dir, s.model_name, s.dtype, s.batch_size, s.torch_threads,
                                 precision=prec) for prec in ("fp32", "int8")}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ds, docs in datasets(sets, limit):
            res: dict[str, Any] = {}
            for prec, emb in enc.items():
                t = time.perf_counter()
                build_index(Path(tmp) / f"{ds.name}-{prec}", docs, emb, s.chunk_size, s.chunk_overlap, s.batch_size)
                ingest_s = time.perf_counter() - t
                p = Pipeline(s.model_copy(update={"index_dir": Path(tmp) / f"{ds.name}-{prec}"}), embedder=emb).load()
                res[prec] = {**score(p, ds), "index_s": round(ingest_s, 1), "chunks": p.index.size if p.index else 0}
                log.info("%s %s: %s", ds.name, prec, res[prec])
            mixed = Pipeline(s.model_copy(update={"index_dir": Path(tmp) / f"{ds.name}-fp32"}), embedder=enc["int8"])
            res["int8 queries / fp32 index"] = score(mixed.load(), ds)
            results[ds.name] = res
            if done:
                done(_report(results, tolerance))
    return _report(results, tolerance)


def _report(results: dict[str, Any], tolerance: float) -> dict[str, Any]:
    gate = {f"{ds}/{enc_name}/{mode}/{m}": round(r[enc_name][mode][m] - r["fp32"][mode][m], 4)
            for ds, r in results.items() for enc_name in ("int8", "int8 queries / fp32 index")
            for mode in MODES for m in METRICS}
    return {"results": results, "deltas": gate, "tolerance": tolerance,
            "int8_holds": all(abs(d) <= tolerance for d in gate.values()), "load1_end": round(os.getloadavg()[0], 2)}


def markdown(rep: dict[str, Any], command: str) -> str:
    tol = rep["tolerance"]
    lines = ["# int8 vs fp32 encoding: retrieval quality (multilingual-e5-small, same corpora and queries, one run)",
             "", f"Pass = Recall@5 and hit@1 both within {tol} of fp32. int8 holds everywhere: "
             f"**{'yes' if rep['int8_holds'] else 'no'}**.", "",
             "| set | mode | encoder | n | Recall@5 | Δ R@5 | hit@1 | Δ hit@1 | pass | index build s |",
             "|---|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for ds, r in rep["results"].items():
        for mode in MODES:
            for enc_name, v in r.items():
                row = v[mode]
                d = [row[m] - r["fp32"][mode][m] for m in METRICS]
                ok = "" if enc_name == "fp32" else ("yes" if all(abs(x) <= tol for x in d) else "**no**")
                delta = ["" if enc_name == "fp32" else f"{x:+.4f}" for x in d]
                lines.append(f"| {ds} | {mode} | {enc_name} | {row['n']} | {row['recall@5']:.4f} | {delta[0]} | "
                             f"{row['hit@1']:.4f} | {delta[1]} | {ok} | {v.get('index_s', '')} |")
    lines += ["", f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="+", default=["seed", "cmrc", "drcd"], choices=["seed", "cmrc", "drcd"])
    ap.add_argument("--limit", type=int, default=None, help="questions per external set (default: all)")
    ap.add_argument("--tolerance", type=float, default=0.005)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "int8_quality")
    a = ap.parse_args(argv)
    command = "python -m bench.int8 --sets " + " ".join(a.sets) + (f" --limit {a.limit}" if a.limit else "")
    a.out.parent.mkdir(parents=True, exist_ok=True)

    def write(rep: dict[str, Any]) -> None:  # after every set: a long run killed midway keeps what it measured
        rep["command"] = command
        a.out.with_suffix(".json").write_text(json.dumps(rep, ensure_ascii=False, indent=1))
        a.out.with_suffix(".md").write_text(markdown(rep, command))

    rep = run(a.sets, a.limit, a.tolerance, write)
    write(rep)
    print(markdown(rep, command))


if __name__ == "__main__":
    main()
