"""``/v1/ask`` latency over real HTTP: ``python -m bench.ask_latency [--reader model|rules] [--out F.json]``.

Builds an index over ``seeds/`` with ``rag ingest`` (real model), starts ``rag serve`` on loopback with the chosen
reader, asks every answerable seed gold question ``--rounds`` times one at a time (after one warm-up pass), and
prints client-side p50 / p95 with the server's own stage timings (embed, retrieve, generate). The load average
is printed beside the figures: a busy machine makes them upper bounds.

``--variant NAME:KEY=VAL,KEY=VAL`` (repeatable) measures each reader once per variant with those extra RAG_*
settings, e.g. ``--reader model --variant full:RAG_READER_CASCADE=0 --variant cascade2:RAG_READER_CASCADE=2``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _questions() -> list[str]:
    rows = [json.loads(x) for x in (ROOT / "eval" / "gold" / "seed_gold.jsonl").read_text("utf-8").splitlines() if x]
    return [r["query"] for r in rows if r.get("answers")]


def measure(reader: str, rounds: int, index_dir: Path, extra: dict[str, str] | None = None) -> dict:
    env = os.environ | {"RAG_INDEX_DIR": str(index_dir), "RAG_READER": reader, "RAG_STORE_CONVERSATIONS": "false",
                        "RAG_RATE_LIMIT_PER_MINUTE": "0"} | (extra or {})
    port = _port()
    proc = subprocess.Popen([str(BIN / "rag"), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as c:
            for _ in range(600):
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            else:
                raise RuntimeError("server did not become ready")
            qs = _questions()
            for q in qs:  # warm-up
                c.post("/v1/ask", json={"query": q, "top_k": 5}).raise_for_status()
            ms, stages = [], {}
            for _ in range(rounds):
                for q in qs:
                    t = time.perf_counter()
                    r = c.post("/v1/ask", json={"query": q, "top_k": 5})
                    ms.append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
                    for k, v in (r.json().get("timings") or {}).items():
                        stages.setdefault(k, []).append(float(v))
    finally:
        proc.terminate()
        proc.wait(30)
    pct = lambda v, q: round(float(np.percentile(v, q)), 1)  # noqa: E731
    return {"reader": reader, "env": extra or {}, "n": len(ms), "p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95),
            "stages_p50_ms": {k: pct(v, 50) for k, v in stages.items()}, "load_avg": os.getloadavg()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reader", nargs="+", default=["model", "rules"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="")
    ap.add_argument("--variant", action="append", default=[], help="NAME:KEY=VAL,KEY=VAL (repeatable)")
    a = ap.parse_args()
    variants: list[tuple[str, dict[str, str]]] = [("", {})]
    if a.variant:
        variants = []
        for v in a.variant:
            name, _, kvs = v.partition(":")
            variants.append((name, dict(kv.split("=", 1) for kv in kvs.split(",") if kv)))
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        subprocess.run([str(BIN / "rag"), "ingest", str(ROOT / "seeds"), "--index-dir", str(index)], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
        res = []
        for r in a.reader:
            for name, extra in variants:
                res.append(measure(r, a.rounds, index, extra) | ({"variant": name} if name else {}))
                print(json.dumps(res[-1], ensure_ascii=False), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
