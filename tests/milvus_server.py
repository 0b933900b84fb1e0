"""A real milvus-lite server process on a loopback port for the Milvus backend tests (``python -m milvus_lite
server``, the gRPC server pymilvus talks to, as a Milvus standalone would be), started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eval.milvus_parity import MilvusLite


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusLite]:
    pytest.importorskip("milvus_lite")
    server = MilvusLite(tmp_path_factory.mktemp("milvus") / "data")
    try:
        server.wait()
        yield server
    finally:
        server.stop()
