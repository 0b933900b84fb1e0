"""Retrievals at once are capped at the CPU count (issue 19: each holds corpus-sized score buffers)."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from embeddings.fake import HashEmbedder
from rag.core.config import Settings
from rag.core.types import Document
from rag.index.build import build_index
from rag.pipeline import Pipeline


def test_concurrent_searches_share_cpu_count_slots(tmp_path, monkeypatch):
    build_index(tmp_path, [Document(f"d{i}.txt", f"第{i}份文件，关于科技创新平台和人才引进。") for i in range(20)],
                HashEmbedder())
    p = Pipeline(Settings(index_dir=tmp_path, embedder="hash", reader="rules"), embedder=HashEmbedder()).load()
    import rag.pipeline as mod

    real, lock, state = mod.hybrid, threading.Lock(), {"now": 0, "max": 0}

    def slow_hybrid(*a, **kw):  # type: ignore[no-untyped-def]
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.05)
        try:
            return real(*a, **kw)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(mod, "hybrid", slow_hybrid)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: p.search("科技创新平台", 3)[0], range(32)))
    assert all(len(r) == 3 for r in results)
    cap = os.cpu_count() or 1
    assert state["max"] == min(cap, 16), state  # reached, never exceeded
