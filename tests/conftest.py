"""Shared fixtures: the real model (loaded once), a real seeds index, a real server on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


@pytest.fixture(scope="session")
def settings():  # type: ignore[no-untyped-def]
    from rag.core.config import Settings

    return Settings()


@pytest.fixture(scope="session")
def real_embedder(settings):  # type: ignore[no-untyped-def]
    from embeddings.factory import create_embedder

    return create_embedder("sbert", settings.models_dir, settings.model_name, settings.dtype)


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory: pytest.TempPathFactory, real_embedder, settings) -> Path:  # type: ignore[no-untyped-def]
    """A real index over seeds/ built with the real model (once per test session)."""
    from rag.index.build import build_index
    from rag.ingest.loaders import load_path

    out = tmp_path_factory.mktemp("seed_index")
    docs, failures = load_path(SEEDS)
    assert not failures and len(docs) == 5
    build_index(out, docs, real_embedder, settings.chunk_size, settings.chunk_overlap)
    return out


@pytest.fixture(scope="session")
def seed_pipeline(seed_index, real_embedder, settings):  # type: ignore[no-untyped-def]
    from rag.pipeline import Pipeline

    s = settings.model_copy(update={"index_dir": seed_index})
    return Pipeline(s, embedder=real_embedder).load()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(index_dir: Path, env: dict[str, str] | None = None,
                 timeout: float = 180) -> tuple[subprocess.Popen, str]:
    port = free_port()
    e = {**os.environ, "RAG_INDEX_DIR": str(index_dir), **(env or {})}
    # Server output goes to a file (a pipe nobody reads would fill up and block the server).
    log = tempfile.NamedTemporaryFile(prefix=f"server-{port}-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"], cwd=ROOT, env=e, stdout=log, stderr=subprocess.STDOUT,
    )
    proc.log_path = log.name  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    with httpx.Client(timeout=2) as client:
        while time.time() < deadline:
            if proc.poll() is not None:
                out = Path(log.name).read_text(errors="replace")
                raise RuntimeError(f"server exited with {proc.returncode}:\n{out[-3000:]}")
            try:
                if client.get(base + "/healthz").status_code == 200:
                    return proc, base
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not become ready in time")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def server(seed_index: Path) -> Iterator[str]:
    """The real API (uvicorn subprocess, real model, seeds index) on a free loopback port."""
    proc, base = start_server(seed_index)
    try:
        yield base
    finally:
        stop_server(proc)


from tests.milvus_server import milvus_server  # noqa: E402,F401 - a real milvus-lite server, once per session
