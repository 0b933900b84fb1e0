"""Fixtures of the access-control tests (issue 20): the real app over the seeds indexed with the hash embedder
(fast, no model), served by FastAPI's TestClient with the settings a test asks for."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from rag.core.config import Settings
from tests.conftest import SEEDS

BASE = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def keyed_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from embeddings.fake import HashEmbedder
    from rag.index.build import build_index
    from rag.ingest.loaders import load_path

    out = tmp_path_factory.mktemp("principals_index")
    docs, _ = load_path(SEEDS)
    s = Settings()
    build_index(out, docs, HashEmbedder(), s.chunk_size, s.chunk_overlap)
    return out


@pytest.fixture
def make_app(keyed_index: Path, tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**kw: Any) -> TestClient:
        target = tmp_path / f"index-{len(clients)}"
        shutil.copytree(keyed_index, target, symlinks=True)
        base: dict[str, Any] = {"index_dir": target, "embedder": "hash", "reader": "rules", "llm_base_url": "",
                                "rate_limit_per_minute": 0, "api_keys": [], "read_keys_required": False,
                                "dify_api_key": "", "conversations_db": str(tmp_path / f"c{len(clients)}.db")}
        c = TestClient(create_app(Settings(**{**base, **kw})), base_url=BASE)
        clients.append(c.__enter__())
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)
