"""Regenerate the README's benchmark tables from the committed result files (never typed by hand).

``python -m bench.readme`` rewrites the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` in
README.md; ``--check`` only says whether it is up to date (exit 1 if not). Tables:

- ``peers``: bench/results/peers.json (``python -m bench.peers``);
- ``memory``: bench/results/memory_1m.json (``python -m bench.memory measure --env RAG_EMBED_PRECISION=int8``),
  with bench/results/memory_1m_fp32.json (the same with the default settings) as the first column when present;
- ``embed``: bench/results/embed_speed.json (``python -m bench.embed_speed``), passages/s and tokens/s against the
  measured GEMM peaks.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SETS = {"cmrc": "CMRC2018 dev", "drcd": "DRCD dev"}
NAMES = {"ours": "ours (hybrid)", "txtai": "txtai (dense)", "chatchat": "Chatchat-equivalent (FAISS + jieba BM25)"}


def _r(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def peers_table(rep: dict[str, Any]) -> str:
    rows = ["| set | system | Recall@5 | hit@1 | p50 / p95 ms | ingest s | ours/peer: Recall@5 | hit@1 | p50 | p95 "
            "| ingest |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, e in rep["sets"].items():
        for system in ("ours", *[k for k in e if k in NAMES and k != "ours"]):
            m = e[system]
            ratio = e.get(f"ratio_ours_over_{system}")
            tail = " | ".join(_r(ratio[k]) for k in ("recall@5", "hit@1", "p50_ms", "p95_ms", "ingest_s")) \
                if ratio else " | ".join("" for _ in range(5))
            rows.append(f"| {SETS.get(key, key)} ({m['queries']} q, {e['chunks']} chunks) | {NAMES[system]} | "
                        f"{m['recall@5']:.3f} | {m['hit@1']:.3f} | {m['p50_ms']:.1f} / {m['p95_ms']:.1f} | "
                        f"{m['ingest_s']:.0f} | {tail} |")
    ours = rep.get("ours", {})
    rows.append("")
    rows.append(f"Run {rep['started']} – {rep['finished']}, {rep['cpus']} cores, load average "
                f"{rep['load_avg_start'][0]:.2f} at the start and {rep['load_avg_end'][0]:.2f} at the end; "
                f"model {rep['model']}; ours: embedder {ours.get('embedder')}, dtype {ours.get('dtype')}, queries "
                f"via {ours.get('query_backend')}. Ratios are ours / peer (recall: above 1 is better; "
                "time: below 1 is better). Source: `bench/results/peers.json`.")
    return "\n".join(rows)


def _mem_cols(rep: dict[str, Any]) -> dict[str, str]:
    srv = rep["server"]
    s, groups = srv["after_load"], srv["after_load"]["file_by_group_mb"]
    mb = {"total RSS, MB": s["total_mb"], "anonymous, MB": s["anonymous_mb"], "file pages, MB": s["file_mb"],
          "of which BM25 files": sum(v for k, v in groups.items() if k.startswith("index/bm25")),
          "of which dense.faiss": groups.get("index/dense.faiss", 0.0),
          "of which other index files": sum(v for k, v in groups.items() if k.startswith("index/")
                                            and not k.startswith("index/bm25") and k != "index/dense.faiss"),
          "of which encoder weights (mapped)": sum(v for k, v in groups.items() if k.startswith("model/")),
          "of which shared libraries": groups.get("shared libraries", 0.0)}
    out = {k: f"{v:.0f}" for k, v in mb.items()}
    seq, c8 = srv["sequential"], srv.get("concurrency_8", {})
    out["HTTP p50 / p95, sequential"] = f"{seq['p50_ms']:.1f} / {seq['p95_ms']:.1f} ms"
    out["8 clients"] = f"{c8.get('qps', 0):.0f} q/s, p95 {c8.get('p95_ms', 0):.0f} ms"
    out["load average before / after the run"] = f"{srv['load_avg_before'][0]:.1f} / {srv['load_avg_after'][0]:.1f}"
    out["server settings"] = " ".join(f"{k}={v}" for k, v in rep.get("env", {}).items()) or "defaults"
    return out


def memory_table(after: dict[str, Any], before: dict[str, Any] | None) -> str:
    a = _mem_cols(after)
    b = _mem_cols(before) if before else None
    rows = [f"| 1M chunks, server after the HTTP load | {b['server settings']} | {a['server settings']} |" if b
            else "| 1M chunks | |",
            "|---|---|---|" if b else "|---|---|"]
    rows += [f"| {k} | {b[k]} | {v} |" if b else f"| {k} | {v} |" for k, v in a.items()]
    return "\n".join(rows)


def render() -> dict[str, str]:
    out = {}
    if (RESULTS / "peers.json").exists():
        out["peers"] = peers_table(json.loads((RESULTS / "peers.json").read_text(encoding="utf-8")))
    if (RESULTS / "memory_1m.json").exists():
        before = RESULTS / "memory_1m_fp32.json"  # the comparison column (python -m bench.memory measure, defaults)
        out["memory"] = memory_table(json.loads((RESULTS / "memory_1m.json").read_text(encoding="utf-8")),
                                     json.loads(before.read_text(encoding="utf-8")) if before.exists() else None)
    if (RESULTS / "embed_speed.json").exists():
        from bench.embed_speed import markdown

        md = markdown(json.loads((RESULTS / "embed_speed.json").read_text(encoding="utf-8")))
        out["embed"] = md.split("\n", 2)[2].strip()  # without its title line
    return out


def apply(text: str, tables: dict[str, str]) -> str:
    for name, table in tables.items():
        pat = re.compile(rf"(<!-- bench:{name} -->\n).*?(\n<!-- /bench:{name} -->)", re.S)
        if not pat.search(text):
            raise SystemExit(f"README.md has no <!-- bench:{name} --> ... <!-- /bench:{name} --> markers")
        text = pat.sub(lambda m, t=table: m.group(1) + t + m.group(2), text)  # type: ignore[misc]
    return text


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.readme")
    ap.add_argument("--check", action="store_true", help="exit 1 when README.md is not what the results render")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    a = ap.parse_args()
    old = a.readme.read_text(encoding="utf-8")
    new = apply(old, render())
    if a.check:
        sys.exit(0 if new == old else 1)
    if new != old:
        a.readme.write_text(new, encoding="utf-8")
    print(f"{a.readme}: {'updated' if new != old else 'up to date'}")


if __name__ == "__main__":
    main()
