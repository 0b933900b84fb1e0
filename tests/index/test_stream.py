"""Streamed ingest (rag/index/stream.py): the same index as a one-shot build, incremental no-ops, and a real
`rag ingest` process killed with SIGKILL mid-run, then resumed, ending with the index of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from embeddings.fake import HashEmbedder
from eval.data import SHARED_DATA
from rag.index import store
from rag.index.build import build_index
from rag.index.spool import SPOOL_DIR
from rag.index.stream import StreamParams, ingest_files
from rag.ingest.loaders import iter_files, load_path

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
HASH = {"RAG_EMBEDDER": "hash"}


def snapshot(index: Path) -> tuple[list[dict], list[dict], np.ndarray]:
    """Chunks, documents (without load-time fields) and the vectors in chunk order of the current version."""
    idx = store.load(index)
    chunks = [c.to_json() for c in idx.chunks.values()]
    docs = sorted((d.__dict__ for d in idx.documents.values()), key=lambda d: d["doc_id"])
    vecs = idx.dense.reconstruct(np.array([c["chunk_id"] for c in chunks], dtype=np.int64))
    return chunks, docs, vecs


def test_stream_matches_a_one_shot_build_and_skips_unchanged(tmp_path: Path) -> None:
    emb = HashEmbedder()
    docs, _ = load_path(SEEDS)
    build_index(tmp_path / "built", docs, emb, 300, 1)
    files = list(iter_files(SEEDS))
    seen: list[int] = []
    rep = ingest_files(tmp_path / "streamed", emb, files, StreamParams(segment_chunks=16), root=SEEDS,
                       progress=lambda p: seen.append(p.files_done))
    assert sorted(rep.added) == sorted(d.doc_id for d in docs) and not rep.failures
    assert seen == sorted(seen) and seen[-1] == len(files) and len(seen) > 1  # several checkpoints
    a, b = snapshot(tmp_path / "built"), snapshot(tmp_path / "streamed")
    assert a[0] == b[0] and np.array_equal(a[2], b[2])
    assert [d["doc_id"] for d in a[1]] == [d["doc_id"] for d in b[1]]
    assert not (tmp_path / "streamed" / SPOOL_DIR).exists()  # checkpoints removed once the version is switched
    v1 = store.current_path(tmp_path / "streamed").resolve()
    again = ingest_files(tmp_path / "streamed", emb, files, root=SEEDS)
    assert sorted(again.unchanged) == sorted(rep.added) and not again.added
    assert store.current_path(tmp_path / "streamed").resolve() == v1  # nothing new: no new version


def corpus(folder: Path, n: int) -> Path:
    """``n`` real paragraphs (CMRC 2018 dev) as .txt files."""
    data = json.loads((SHARED_DATA / "cmrc2018" / "cmrc2018_dev.squad.json").read_text(encoding="utf-8"))["data"]
    paras = [p["context"] for art in data for p in art["paragraphs"]][:n]
    folder.mkdir(parents=True)
    for i, t in enumerate(paras):
        (folder / f"p{i:04d}.txt").write_text(t, encoding="utf-8")
    return folder


def cli(folder: Path, index: Path) -> list[str]:
    return [sys.executable, "-m", "rag.cli", "ingest", str(folder), "--index-dir", str(index),
            "--segment-chunks", "24"]


def test_kill9_mid_ingest_then_resume_gives_the_uninterrupted_index(tmp_path: Path) -> None:
    env = {**os.environ, **HASH}
    seeds_only = tmp_path / "base"
    assert subprocess.run(cli(SEEDS, seeds_only), cwd=ROOT, env=env, capture_output=True).returncode == 0
    folder = corpus(tmp_path / "docs", 400)
    ref, index = tmp_path / "ref", tmp_path / "index"
    for dst in (ref, index):
        subprocess.run(["cp", "-a", str(seeds_only), str(dst)], check=True)
    old = store.load(index).path.name
    r = subprocess.run(cli(folder, ref), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr

    proc = subprocess.Popen(cli(folder, index), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    spool = index / SPOOL_DIR
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (spool / "seg-000003").exists():
        time.sleep(0.01)
    assert proc.poll() is None, "the ingest finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    segs = len(list(spool.glob("seg-*")))
    assert segs >= 4
    assert store.load(index).path.name == old  # the last good version is still current and loads

    r = subprocess.run(cli(folder, index), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "resumed after" in r.stderr, r.stderr[-2000:]
    a, b = snapshot(ref), snapshot(index)
    assert len(a[0]) == len(b[0]) > 400
    assert a[0] == b[0] and a[1] == b[1] and np.array_equal(a[2], b[2])
    assert not spool.exists()
