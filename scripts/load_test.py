"""Bounded load / soak test of the API over loopback: N async clients POST /v1/search and /v1/ask (extractive)
with the seed questions for a fixed time, then print one JSON report (requests, errors, p50/p95/p99, rps,
per endpoint, server RSS start/end/max).

    # against a running server (loopback only) whose pid is known, for RSS from /proc
    python scripts/load_test.py --url http://127.0.0.1:8000 --clients 50 --seconds 60 --pid 1234
    # start a server on a free loopback port over INDEX (rate limit off), run, stop it: `make load`
    python scripts/load_test.py --serve data/index --clients 50 --seconds 60
    # soak: run for --soak-seconds, sampling the server's RSS every --sample-every seconds: `make soak`
    python scripts/load_test.py --serve data/index --clients 10 --soak-seconds 600
    # with keys configured (issue 20): the server reads KEYS, every request sends the key in $RAG_LOAD_KEY
    RAG_READ_KEYS_REQUIRED=true RAG_LOAD_KEY=rk_... python scripts/load_test.py --serve data/index \
        --keys-file /tmp/keys.toml --key-env RAG_LOAD_KEY

Every loop is bounded by time (--seconds / --soak-seconds) and count (--max-requests). Without --pid the
RSS comes from the server's own /metrics (process_resident_memory_bytes). With --key-env the report's ``auth``
says who the key is (GET /v1/me), what a request without it got, and that a search with it finds results.
The key is read from the environment, never from the command line (it would show in the process list).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import start_server, stop_server  # noqa: E402

GOLD = ROOT / "eval" / "gold" / "seed_gold.jsonl"
FALLBACK = ["中国工程科技发展战略内蒙古研究院每年安排多少专项经费？",
            "呼和浩特市2023年科技创新发展指数排名第几？", "“青城之光”的运算速度是多少？",
            "內蒙古打造了多少個產業集群和重要產業鏈？",
            "How many innovation platforms does Hohhot have in total?"]


def questions() -> list[str]:
    if GOLD.exists():
        qs = [json.loads(ln)["query"] for ln in GOLD.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if qs:
            return qs
    return FALLBACK


def loopback_only(url: str) -> None:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    sys.exit(f"refusing to load-test {host!r}: only loopback addresses (127.0.0.0/8, ::1, localhost)")


def serve(index_dir: Path, embedder: str | None, keys_file: Path | None = None) -> tuple[subprocess.Popen, str, Path]:
    """The API over INDEX_DIR on a free loopback port, rate limit off (the tests' own launcher)."""
    env = {"RAG_RATE_LIMIT_PER_MINUTE": "0", **({"RAG_EMBEDDER": embedder} if embedder else {}),
           **({"RAG_KEYS_FILE": str(keys_file.resolve())} if keys_file else {})}
    proc, base = start_server(index_dir, env, timeout=300)
    return proc, base, Path(proc.log_path)  # type: ignore[attr-defined]


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return round(s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))], 2)


def summary(lat: list[float]) -> dict[str, float]:
    return {"p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99),
            "mean": round(sum(lat) / len(lat), 2) if lat else float("nan"),
            "max": round(max(lat), 2) if lat else float("nan")}


async def rss_mb(client: httpx.AsyncClient, base: str, pid: int | None) -> float | None:
    if pid:
        try:
            for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
                if ln.startswith("VmRSS:"):
                    return round(int(ln.split()[1]) / 1024, 1)
        except OSError:
            return None
    try:
        r = await client.get(base + "/metrics", timeout=10)
        for ln in r.text.splitlines():
            if ln.startswith("process_resident_memory_bytes "):
                return round(float(ln.split()[1]) / 2**20, 1)
    except httpx.HTTPError:
        pass
    return None


def cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) the server process has used: on a shared machine, what it actually got."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


async def auth_check(client: httpx.AsyncClient, base: str, query: str) -> dict[str, Any]:
    """Keys are really on: who the key is, what the same search without it gets, and that it finds results."""
    me = await client.get(base + "/v1/me")
    async with httpx.AsyncClient(timeout=client.timeout) as anonymous:
        bare = await anonymous.post(base + "/v1/search", json={"query": query})
    found = await client.post(base + "/v1/search", json={"query": query})
    who = me.json() if me.status_code == 200 else {}
    return {"principal": who.get("name"), "role": who.get("role"), "collections": who.get("collections"),
            "with_key": found.status_code, "results_with_key": len(found.json().get("results", []))
            if found.status_code == 200 else 0, "without_key": bare.status_code}


async def run(base: str, clients: int, seconds: float, pid: int | None, sample_every: float, top_k: int,
              endpoints: list[str], timeout: float, max_requests: int, warmup: int = 4,
              key: str = "") -> dict[str, Any]:
    qs = questions()
    lat: dict[str, list[float]] = {e: [] for e in endpoints}
    status: dict[str, int] = {}
    errors: list[str] = []
    count = 0
    samples: list[tuple[float, float]] = []
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    headers = {"X-API-Key": key} if key else {}
    auth: dict[str, Any] | None = None
    async with httpx.AsyncClient(limits=limits, timeout=timeout, headers=headers) as client:
        if key:
            auth = await auth_check(client, base, qs[0])
        for i in range(warmup):  # not measured: lazy initialisation (tokenizer dictionaries, first batch)
            await client.post(f"{base}/v1/{endpoints[i % len(endpoints)]}", json={"query": qs[i % len(qs)]})
        t0 = time.monotonic()
        end = t0 + seconds
        first = await rss_mb(client, base, pid)
        cpu0, load0 = cpu_s(pid), os.getloadavg()
        if first is not None:
            samples.append((0.0, first))

        async def worker(i: int) -> None:
            nonlocal count
            rnd = random.Random(i)
            n = i
            while time.monotonic() < end and count < max_requests:
                ep = endpoints[n % len(endpoints)]
                n += 1
                count += 1
                body = {"query": rnd.choice(qs), "top_k": top_k}
                s = time.perf_counter()
                try:
                    r = await client.post(f"{base}/v1/{ep}", json=body)
                    code = str(r.status_code)
                    if r.status_code != 200:
                        errors.append(f"{ep} {r.status_code} {r.text[:160]}")
                except httpx.HTTPError as e:
                    code = type(e).__name__
                    errors.append(f"{ep} {code}: {e}")
                ms = (time.perf_counter() - s) * 1000
                status[code] = status.get(code, 0) + 1
                if code == "200":
                    lat[ep].append(ms)

        async def sampler() -> None:
            while time.monotonic() + sample_every < end:
                await asyncio.sleep(sample_every)
                v = await rss_mb(client, base, pid)
                if v is not None:
                    samples.append((round(time.monotonic() - t0, 1), v))

        sampler_task = asyncio.create_task(sampler())
        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.monotonic() - t0
        cpu1, load1 = cpu_s(pid), os.getloadavg()
        sampler_task.cancel()
        last = await rss_mb(client, base, pid)
        if last is not None:
            samples.append((round(elapsed, 1), last))
    all_lat = [x for v in lat.values() for x in v]
    ok = status.get("200", 0)
    mem = [v for _, v in samples]
    return {
        "url": base, "clients": clients, "seconds": round(elapsed, 1), "endpoints": endpoints, "top_k": top_k,
        "requests": count, "ok": ok, "errors": count - ok, "status": status,
        "rps": round(count / elapsed, 2), "ok_rps": round(ok / elapsed, 2),
        "latency_ms": summary(all_lat),
        "per_endpoint": {e: {"ok": len(v), **summary(v)} for e, v in lat.items()},
        "memory_mb": {"start": mem[0] if mem else None, "end": mem[-1] if mem else None,
                      "max": max(mem) if mem else None, "source": f"/proc/{pid}" if pid else "/metrics",
                      "samples": samples},
        "error_samples": errors[:5],
        "auth": auth,
        # the machine while it ran: load average (1, 5, 15 min) and the CPU share the server got (2.0 = 2 cores)
        "loadavg": {"start": [round(x, 2) for x in load0], "end": [round(x, 2) for x in load1],
                    "cores": os.cpu_count()},
        "server_cpu": None if cpu0 is None or cpu1 is None else round((cpu1 - cpu0) / elapsed, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="Base URL of a running server (loopback only)")
    where.add_argument("--serve", type=Path, metavar="INDEX_DIR", help="Start a server over this index")
    ap.add_argument("--embedder", help="RAG_EMBEDDER for --serve (default: the environment's)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--soak-seconds", type=float, default=0, help="Soak mode: run this long instead")
    ap.add_argument("--sample-every", type=float, default=10, help="RSS sampling period (s)")
    ap.add_argument("--pid", type=int, help="Server pid for RSS from /proc (default: /metrics)")
    ap.add_argument("--endpoints", default="search,ask")
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=60, help="Per-request timeout (s)")
    ap.add_argument("--max-requests", type=int, default=2_000_000)
    ap.add_argument("--warmup", type=int, default=4, help="Unmeasured requests before the clock starts")
    ap.add_argument("--out", type=Path, help="Also write the JSON report here")
    ap.add_argument("--keys-file", type=Path, help="With --serve: the server's RAG_KEYS_FILE (issue 20)")
    ap.add_argument("--key-env", metavar="VAR", help="Send the key held in environment variable VAR (X-API-Key)")
    a = ap.parse_args()
    if not (1 <= a.clients <= 1000 and 0 < a.seconds <= 7200 and 0 <= a.soak_seconds <= 7200):
        sys.exit("--clients 1..1000, --seconds and --soak-seconds up to 7200")
    endpoints = [e.strip() for e in a.endpoints.split(",") if e.strip() in ("search", "ask")]
    if not endpoints:
        sys.exit("--endpoints: search and/or ask")
    key = os.environ.get(a.key_env, "") if a.key_env else ""
    if a.key_env and not key:
        sys.exit(f"--key-env: environment variable {a.key_env} is empty or not set")
    proc = None
    log = None
    if a.serve:
        proc, base, log = serve(a.serve, a.embedder, a.keys_file)
        pid = a.pid or proc.pid
    else:
        base, pid = a.url.rstrip("/"), a.pid
        loopback_only(base)
    seconds = a.soak_seconds or a.seconds
    try:
        report = asyncio.run(run(base, a.clients, seconds, pid, a.sample_every, a.top_k, endpoints, a.timeout,
                                 a.max_requests, max(0, min(a.warmup, 100)), key))
    finally:
        if proc is not None:
            stop_server(proc)
    report["mode"] = "soak" if a.soak_seconds else "load"
    if log is not None:
        report["server_log"] = str(log)
    text = json.dumps(report, ensure_ascii=False)
    print(text)
    if a.out:
        a.out.write_text(text + "\n", encoding="utf-8")
    sys.exit(0 if report["errors"] == 0 else 1)


if __name__ == "__main__":
    main()
