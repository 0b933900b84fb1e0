"""Search latency while an upload job OCRs a scan, against idle (issue 21): one JSON report.

    python scripts/job_latency.py --embedder hash --reps 3
    python scripts/job_latency.py --embedder sbert --reps 3
    python scripts/job_latency.py --code /tmp/old-tree      # the same run against another checkout (A/B)

Each repetition, on one server (uvicorn on loopback over the seed documents): ``--idle`` sequential
``/v1/search`` calls (hybrid, top 5), then a ``--pages``-page scan uploaded with ``?async=true`` and searches sent
one after another until the job has ended (a GET of the job between them, as the test does; those sent while
the job reported ``stage: indexing``, i.e. embedding and writing in the server, are also counted apart), then
``--idle`` idle searches again. Each search is timed on the client. Reports p50/p95/max idle and during per repetition,
the ratio of the p95s, the job's wall time, the load average before and after, and the server's nice value.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import SEEDS, free_port  # noqa: E402
from tests.ingest import docmaker as dm  # noqa: E402

SCAN_TEXT = "关于加强草原生态保护补助奖励资金管理的通知。各旗县区人民政府要按照每亩每年七元五角的标准发放禁牧补助。"
QUERY = {"query": "科技创新平台", "top_k": 5}


def build(index: Path, embedder: str) -> None:
    from embeddings.factory import create_embedder
    from embeddings.fake import HashEmbedder
    from rag.core.config import Settings
    from rag.index.build import build_index
    from rag.ingest.loaders import load_path

    docs, _ = load_path(SEEDS)
    s = Settings()
    emb = HashEmbedder() if embedder == "hash" else create_embedder("sbert", s.models_dir, s.model_name, s.dtype)
    build_index(index, docs, emb, s.chunk_size, s.chunk_overlap)


def serve(code: Path, index: Path, embedder: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    from rag.core.config import Settings

    models = (ROOT / Settings().models_dir).resolve()  # this checkout's models, whichever code runs
    env = {**os.environ, "RAG_INDEX_DIR": str(index), "RAG_EMBEDDER": embedder, "RAG_RATE_LIMIT_PER_MINUTE": "0",
           "RAG_MODELS_DIR": str(models), "PYTHONPATH": str(code)}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port",
                             str(port), "--log-level", "warning"], cwd=code, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server not ready in 300 s")


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, int(round(q * len(s))) - 1))]


def idle(c: httpx.Client, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        assert c.post(url + "/v1/search", json=QUERY).status_code == 200
        out.append(time.perf_counter() - t)
        time.sleep(0.05)
    return out


def one(c: httpx.Client, url: str, scan: bytes, n_idle: int, rep: int) -> dict[str, Any]:
    load0 = os.getloadavg()
    before = idle(c, url, n_idle)
    r = c.post(url + "/v1/documents?async=true", files=[("files", (f"lat-{rep}.pdf", scan, "application/pdf"))],
               timeout=120)
    assert r.status_code == 202, r.text
    t0, during, writing = time.monotonic(), [], []
    while True:
        job = c.get(url + r.headers["location"]).json()
        if job["status"] not in ("queued", "running"):
            break
        t = time.perf_counter()
        assert c.post(url + "/v1/search", json=QUERY).status_code == 200
        during.append(time.perf_counter() - t)
        if job["stage"] == "indexing":
            writing.append(during[-1])
        time.sleep(0.05)
    job_s = time.monotonic() - t0
    after = idle(c, url, n_idle)
    rest = before + after
    return {"job": job["status"], "job_s": round(job_s, 1), "searches_during": len(during),
            "idle_ms": {k: round(f(rest) * 1000, 1) for k, f in
                        (("p50", statistics.median), ("p95", lambda x: pct(x, 0.95)), ("max", max))},
            "during_ms": {k: round(f(during) * 1000, 1) for k, f in
                          (("p50", statistics.median), ("p95", lambda x: pct(x, 0.95)), ("max", max))},
            "ratio_p95": round(pct(during, 0.95) / pct(rest, 0.95), 2),
            "searches_while_indexing": len(writing), "max_while_indexing_ms": round(max(writing, default=0) * 1000, 1),
            "loadavg_before": load0[0],
            "loadavg_after": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--embedder", choices=("hash", "sbert"), default="hash")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pages", type=int, default=3)
    ap.add_argument("--idle", type=int, default=40, help="idle searches before and after each job")
    ap.add_argument("--code", type=Path, default=ROOT, help="checkout whose api.main the server runs")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="job-latency-"))
    try:
        build(work / "index", args.embedder)
        proc, url = serve(args.code.resolve(), work / "index", args.embedder, work / "server.log")
        try:
            scan = dm.scanned_pdf([dm.render_page([f"第{i + 1}页。", SCAN_TEXT]) for i in range(args.pages)])
            with httpx.Client(timeout=60) as c:
                idle(c, url, 10)  # warm-up
                reps = [one(c, url, scan, args.idle, i) for i in range(args.reps)]
            nice = int(Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {"embedder": args.embedder, "code": str(args.code), "pages": args.pages, "server_nice": nice,
              "cpus": os.cpu_count(), "reps": reps,
              "ratio_p95": {"min": min(r["ratio_p95"] for r in reps), "median": statistics.median(
                  r["ratio_p95"] for r in reps), "max": max(r["ratio_p95"] for r in reps)}}
    text = json.dumps(report, ensure_ascii=False, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
