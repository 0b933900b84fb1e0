"""kill -9 during ingest, measured (issue 21): is an index ever left partial, and is an acknowledged upload job
ever lost? Prints one JSON report.

    python scripts/kill9_check.py --docs 400 --out bench/results/kill9_ingest.json

* ``cli``: ``rag ingest`` of DOCS CMRC paragraphs (one file each; generated text without ../shared/data) into a
  copy of a seeds index, killed with SIGKILL at fractions of a reference run, when a version folder is being
  written (``tmp-dir``) and right after ``current`` switched (``switched``). After each kill the index must load
  (checksums verified) and hold the old documents or the old plus all the new ones, nothing in between.
* ``job``: the same files as one ``POST /v1/documents?async=true`` to a server on loopback, the server killed
  with SIGKILL at fractions of a reference job and once the job reports ``stage: indexing``; then the index is
  checked the same way, the server restarted, and the job followed to its end: it must be resumed to ``done``
  (or be ``done`` already) with every document searchable by id.
* ``sync``: the same files one by one as synchronous uploads while the server is killed (scripts/kill9_sync.py):
  every acknowledged (201) upload is kept.

``--keys`` (issue 20): the server gets a keys file made in the temporary folder (never kept) and
RAG_READ_KEYS_REQUIRED=true; the uploads and job polls send an editor's key (scripts/kill9_sync.py).

Hash embedder by default (``--embedder sbert`` for the real model; slower, same checks). Every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kill9_sync import Keys, keys_enforced, listed, sync_part  # noqa: E402

from rag.index import store  # noqa: E402
from tests.conftest import SEEDS, start_server, stop_server  # noqa: E402

CMRC = ROOT.parent / "shared" / "data" / "cmrc2018" / "cmrc2018_dev.squad.json"


def corpus(folder: Path, n: int) -> set[str]:
    folder.mkdir(parents=True)
    if CMRC.exists():
        data = json.loads(CMRC.read_text(encoding="utf-8"))["data"]
        texts = [p["context"] for art in data for p in art["paragraphs"]][:n]
    else:
        texts = [f"第{i}号测试文件。关于草原生态保护补助第{i}项措施的说明，共{i % 7 + 1}条。" * 20 for i in range(n)]
    for i, text in enumerate(texts):
        (folder / f"doc_{i:04d}.txt").write_text(text, encoding="utf-8")
    return {f"doc_{i:04d}.txt" for i in range(len(texts))}


def state(index: Path, old: set[str], new: set[str]) -> str:
    """``old`` or ``new`` (all of them); raises on a partial or unloadable index."""
    idx = store.load(index)
    ids = set(idx.documents)
    if ids not in (old, old | new):
        raise AssertionError(f"partial index: {len(ids - old)} of {len(new)} new documents")
    if not idx.size == idx.manifest["n_chunks"] == idx.dense.ntotal:
        raise AssertionError("chunk counts disagree")
    return "old" if ids == old else "new"


def cli_run(folder: Path, index: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", str(folder), "--index-dir", str(index)],
                            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cli_part(base: Path, folder: Path, work: Path, old: set[str], new: set[str], env: dict[str, str]) -> dict[str, Any]:
    ref = work / "cli-ref"
    shutil.copytree(base, ref, symlinks=True)
    t0 = time.monotonic()
    if cli_run(folder, ref, env).wait(timeout=1800) != 0:
        raise RuntimeError("reference ingest failed")
    full = time.monotonic() - t0
    assert state(ref, old, new) == "new"
    trials = []
    for i, at in enumerate([0.1, 0.25, 0.4, 0.55, 0.7, 0.85, "tmp-dir", "switched"]):
        index = work / f"cli-{i}"
        shutil.copytree(base, index, symlinks=True)
        link = os.readlink(index / "current")
        proc = cli_run(folder, index, env)
        t0 = time.monotonic()
        deadline = t0 + (full * at if isinstance(at, float) else full * 3)
        while time.monotonic() < deadline and proc.poll() is None:
            if at == "tmp-dir" and any(p.name.startswith(".tmp-") for p in (index / "versions").iterdir()):
                break
            if at == "switched" and os.readlink(index / "current") != link:
                break
            time.sleep(0.005)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        trials.append({"at": at, "after_s": round(time.monotonic() - t0, 2), "killed": killed,
                       "index": state(index, old, new)})
        again = cli_run(folder, index, env).wait(timeout=1800)  # the next run completes over what was left
        trials[-1]["rerun"] = "ok" if again == 0 and state(index, old, new) == "new" else f"rc {again}"
    return {"reference_s": round(full, 1), "trials": trials,
            "killed": sum(t["killed"] for t in trials)}


def upload(url: str, folder: Path, keys: Keys) -> str:
    files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in sorted(folder.iterdir())]
    r = httpx.post(url + "/v1/documents?async=true", files=files, data=keys.form, headers=keys.writer, timeout=300)
    if r.status_code != 202:
        raise RuntimeError(f"upload: {r.status_code} {r.text[:300]}")
    return str(r.headers["location"])


def follow(url: str, where: str, timeout: float, keys: Keys) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = httpx.get(url + where, headers=keys.writer, timeout=30).json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def job_part(base: Path, folder: Path, work: Path, old: set[str], new: set[str], env: dict[str, str],
             keys: Keys) -> dict[str, Any]:
    ref = work / "job-ref"
    shutil.copytree(base, ref, symlinks=True)
    proc, url = start_server(ref, env, timeout=600)
    try:
        auth = keys_enforced(url, keys)
        t0 = time.monotonic()
        job = follow(url, upload(url, folder, keys), 1800, keys)
        full = time.monotonic() - t0
    finally:
        stop_server(proc)
    if job["status"] != "done":
        raise RuntimeError(f"reference job: {job}")
    trials = []
    for i, at in enumerate([0.1, 0.3, 0.5, 0.7, 0.9, "indexing"]):
        index = work / f"job-{i}"
        shutil.copytree(base, index, symlinks=True)
        proc, url = start_server(index, env, timeout=600)
        try:
            where = upload(url, folder, keys)
            t0 = time.monotonic()
            deadline = t0 + (full * at if isinstance(at, float) else full * 3)
            seen: dict[str, Any] = {}
            while time.monotonic() < deadline:
                seen = httpx.get(url + where, headers=keys.writer, timeout=30).json()
                if seen["status"] in ("done", "failed") or (at == "indexing" and seen["stage"] == "indexing"):
                    break
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            stop_server(proc)
        trial: dict[str, Any] = {"at": at, "after_s": round(time.monotonic() - t0, 2),
                                 "last_seen": f"{seen.get('status')}/{seen.get('stage')}",
                                 "files_done": seen.get("progress", {}).get("files_done"),
                                 "index_after_kill": state(index, old, new)}
        t1 = time.monotonic()
        proc, url = start_server(index, env, timeout=600)
        try:
            trial["restart_s"] = round(time.monotonic() - t1, 1)
            first = httpx.get(url + where, headers=keys.writer, timeout=30).json()
            trial["on_restart"] = f"{first['status']} (attempts {first['attempts']})"
            end = follow(url, where, 1800, keys)
            trial["final"] = f"{end['status']} (attempts {end['attempts']}) {end['message'][:80]}".strip()
            trial["done_after_restart_s"] = round(time.monotonic() - t1, 1)
            docs = listed(url, keys)
            trial["documents"] = "old+new" if docs == old | new else f"{len(docs - old)}/{len(new)} new"
        finally:
            stop_server(proc)
        trials.append(trial)
    lost = sum(t["documents"] != "old+new" for t in trials)
    return {"reference_s": round(full, 1), "trials": trials, "jobs_lost": lost, "auth": auth}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=400)
    ap.add_argument("--embedder", default="hash")
    ap.add_argument("--parts", default="cli,job", help="any of cli, job, sync")
    ap.add_argument("--keys", action="store_true", help="Keys configured: a keys file, read keys required")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    env = {"RAG_EMBEDDER": a.embedder, "RAG_RATE_LIMIT_PER_MINUTE": "0", "RAG_MAX_UPLOAD_MB": "100"}
    report: dict[str, Any] = {"docs": a.docs, "embedder": a.embedder, "keys": a.keys, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="kill9-") as tmp:
        work = Path(tmp)
        keys = Keys()
        if a.keys:
            keys = Keys.make(work / "keys.toml")
            env.update({"RAG_KEYS_FILE": str(work / "keys.toml"), "RAG_READ_KEYS_REQUIRED": "true"})
        base = work / "base"
        if cli_run(SEEDS, base, env).wait(timeout=1800) != 0:
            raise RuntimeError("seeds ingest failed")
        old = set(store.load(base).documents)
        new = corpus(work / "corpus", a.docs)
        parts = a.parts.split(",")
        if "cli" in parts:
            report["cli"] = cli_part(base, work / "corpus", work, old, new, env)
        if "job" in parts:
            report["job"] = job_part(base, work / "corpus", work, old, new, env, keys)
        if "sync" in parts:
            report["sync"] = sync_part(base, work / "corpus", work, old, env, keys)
    report["load_after"] = os.getloadavg()
    text = json.dumps(report, ensure_ascii=False)
    print(text)
    if a.out:
        a.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
