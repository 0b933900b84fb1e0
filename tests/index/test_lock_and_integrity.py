"""One writer per index folder across processes, and a verified version folder (issue 21, items 3 and 9).

The lost-update race runs for real: `rag ingest` (the CLI's own code, in this process) is held inside its
read-modify-write while an upload goes to a real API server (another process) on the same folder; both
documents must be in the index afterwards. Hash embedder throughout (no model)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from embeddings.fake import HashEmbedder
from rag.core.errors import IndexCorruptError, IndexNotFoundError, RagError
from rag.core.types import Document
from rag.index import store
from rag.index.build import build_index
from rag.index.update import apply_changes
from tests.conftest import ROOT, start_server, stop_server

HASH_ENV = {"RAG_EMBEDDER": "hash", "RAG_RATE_LIMIT_PER_MINUTE": "0"}
DOCS = [Document("a.txt", "第一份文件。内容关于科技创新。"), Document("b.txt", "第二份文件。内容关于人才引进。")]


def _index(tmp_path: Path) -> Path:
    out = tmp_path / "index"
    build_index(out, DOCS, HashEmbedder())
    return out


def _doc(doc_id: str, text: str) -> Document:
    from rag.ingest.loaders import load_bytes

    return load_bytes(text.encode(), doc_id)


# --- item 3: one writer ---------------------------------------------------------------------------------


def test_cli_ingest_racing_an_api_upload_loses_neither(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's sequence: `rag ingest DIR` has read the current version and is embedding; an upload to the
    running server on the same folder gets its 201; the CLI then switches to its own version. Before the
    lock, that version lacked the uploaded document (404 after a restart)."""
    import rag.index.stream as update  # `rag ingest` embeds through the streamed pipeline
    from rag.cli import app

    index = _index(tmp_path)
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "cli.txt").write_text("命令行导入的文件：关于稀土新材料产业。", encoding="utf-8")
    proc, base = start_server(index, HASH_ENV, timeout=120)
    try:
        entered, release = threading.Event(), threading.Event()
        real_embed = update.embed_chunks

        def held_embed(*a, **k):  # type: ignore[no-untyped-def]
            entered.set()  # the CLI has read the current version and is embedding its new documents
            assert release.wait(60)
            return real_embed(*a, **k)

        monkeypatch.setattr(update, "embed_chunks", held_embed)
        monkeypatch.setenv("RAG_EMBEDDER", "hash")
        cli: dict[str, object] = {}

        def run_cli() -> None:
            cli["result"] = CliRunner().invoke(app, ["ingest", str(folder), "--index-dir", str(index)])

        up: dict[str, object] = {}

        def run_upload() -> None:
            files = [("files", ("api.txt", "接口上传的文件：关于乳业技术创新中心。".encode(), "text/plain"))]
            up["response"] = httpx.post(base + "/v1/documents", files=files, timeout=120)

        t_cli = threading.Thread(target=run_cli)
        t_cli.start()
        assert entered.wait(60), "rag ingest never reached embedding"
        t_up = threading.Thread(target=run_upload)
        t_up.start()
        t_up.join(1.5)
        uploaded_meanwhile = not t_up.is_alive()
        release.set()
        t_cli.join(60)
        t_up.join(120)
        result = cli["result"]
        assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
        r = up["response"]
        assert r.status_code == 201, r.text  # type: ignore[attr-defined]
        assert not uploaded_meanwhile, "the upload was written while `rag ingest` held the index"
        ids = set(store.load(index).documents)
        assert {"a.txt", "b.txt", "cli.txt", "api.txt"} <= ids, ids
        listed = {d["doc_id"] for d in httpx.get(base + "/v1/documents", timeout=30).json()["documents"]}
        assert {"cli.txt", "api.txt"} <= listed
    finally:
        stop_server(proc)


HOLDER = """
import sys, time
from pathlib import Path
from rag.index.lock import index_lock
with index_lock(Path(sys.argv[1]), purpose="test holder"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(index: Path, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(index), str(seconds)], cwd=ROOT,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    return p


def test_writer_waits_for_another_process_then_builds_on_its_result(tmp_path: Path) -> None:
    index = _index(tmp_path)
    holder = _holder(index, 1.5)
    try:
        t0 = time.monotonic()
        rep = apply_changes(index, HashEmbedder(), [_doc("c.txt", "第三份文件。")], [])
        assert time.monotonic() - t0 > 1.0, "apply_changes did not wait for the lock"
        assert rep.added == ["c.txt"]
        assert set(store.load(index).documents) == {"a.txt", "b.txt", "c.txt"}
    finally:
        holder.wait(10)


def test_lock_timeout_is_a_503_error_naming_the_holder_and_kill_9_releases_it(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.core.errors import IndexBusyError

    index = _index(tmp_path)
    holder = _holder(index, 60)
    try:
        monkeypatch.setenv("RAG_INDEX_LOCK_TIMEOUT", "0.3")
        with pytest.raises(IndexBusyError, match=f"pid {holder.pid} \\(test holder\\)") as e:
            apply_changes(index, HashEmbedder(), [_doc("c.txt", "第三份文件。")], [])
        assert str(tmp_path) not in e.value.message  # no server path in what the API shows
        with pytest.raises(IndexBusyError):
            build_index(index, DOCS, HashEmbedder())
        os.kill(holder.pid, signal.SIGKILL)  # the kernel drops a dead holder's lock
        holder.wait(10)
        assert apply_changes(index, HashEmbedder(), [_doc("c.txt", "第三份文件。")], []).added == ["c.txt"]
    finally:
        if holder.poll() is None:
            holder.kill()


def test_lock_is_reentrant_in_a_thread_and_exclusive_between_threads(tmp_path: Path) -> None:
    from rag.index.lock import index_lock

    index = _index(tmp_path)
    order: list[str] = []
    with index_lock(index):
        with index_lock(index):  # the CLI holds it around apply_changes/build_index, which take it again
            apply_changes(index, HashEmbedder(), [_doc("c.txt", "第三份文件。")], [])

        def other() -> None:
            with index_lock(index):
                order.append("other")

        t = threading.Thread(target=other)
        t.start()
        time.sleep(0.3)
        order.append("first")
    t.join(10)
    assert order == ["first", "other"]


# --- item 9: the version folder is verified -----------------------------------------------------------------


def _flip(path: Path, at: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[at if at >= 0 else len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["dense.faiss", "chunks.jsonl", "chunks.idx.npy", "bm25_ids.npy",
                                  "documents.jsonl", "doc_ids.json", "doc_chunks.npy"])
def test_a_flipped_byte_in_any_file_is_a_503_error_naming_it(tmp_path: Path, name: str) -> None:
    index = _index(tmp_path)
    _flip(store.current_path(index) / name)  # same size: only a checksum sees it (faiss loaded it silently)
    with pytest.raises(IndexCorruptError, match=f"{name}.*checksum.*--rebuild"):
        store.load(index)


def test_manifest_records_a_sha256_per_file(tmp_path: Path) -> None:
    index = _index(tmp_path)
    files = store.read_manifest(index).get("files", {})
    folder = store.current_path(index).resolve()
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(files) == on_disk and {"dense.faiss", "chunks.jsonl", "bm25_ids.npy"} <= on_disk
    assert all(len(v) == 64 for v in files.values())


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    index = _index(tmp_path)
    bm25 = next((store.current_path(index) / "bm25").iterdir())
    bm25.unlink()
    with pytest.raises(IndexCorruptError, match=f"bm25/{bm25.name} .*missing"):
        store.load(index)


def test_index_written_before_checksums_still_loads_with_a_warning(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    index = _index(tmp_path)
    path = store.current_path(index) / "manifest.json"
    m = json.loads(path.read_text())
    del m["files"]
    path.write_text(json.dumps(m))
    with caplog.at_level(logging.WARNING, logger="rag.index.store"):
        idx = store.load(index)
    assert set(idx.documents) == {"a.txt", "b.txt"}
    assert "no checksums" in caplog.text
    apply_changes(index, HashEmbedder(), [_doc("c.txt", "第三份文件。")], [])  # the next write adds them
    assert "files" in store.read_manifest(index)


def test_chunk_overwritten_while_serving_is_a_typed_error_not_a_crash(tmp_path: Path) -> None:
    index = _index(tmp_path)
    idx = store.load(index)
    path = store.current_path(index) / "chunks.jsonl"
    data = bytearray(path.read_bytes())
    data[:20] = b"#" * 20
    with open(path, "r+b") as f:  # in place: the loaded table reads it through its memory map
        f.write(bytes(data))
    first = min(idx.chunks)
    with pytest.raises(IndexCorruptError, match="chunks.jsonl.*--rebuild"):
        idx.chunks[first]


def test_dangling_current_is_an_error_and_no_writer_starts_a_fresh_index(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from rag.cli import app

    index = _index(tmp_path)
    target = store.current_path(index).resolve()
    shutil.rmtree(target)
    before = sorted(p.name for p in (index / "versions").iterdir())
    with pytest.raises(IndexCorruptError, match="current.*--rebuild"):
        store.load(index)
    with pytest.raises(IndexCorruptError, match="--rebuild"):
        apply_changes(index, HashEmbedder(), [_doc("c.txt", "第三份文件。")], [])
    assert sorted(p.name for p in (index / "versions").iterdir()) == before
    assert os.readlink(store.current_path(index)).endswith(target.name)
    # `rag ingest` refuses too, and --rebuild is the way out
    monkeypatch.setenv("RAG_EMBEDDER", "hash")
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "c.txt").write_text("第三份文件。", encoding="utf-8")
    r = CliRunner().invoke(app, ["ingest", str(folder), "--index-dir", str(index)])
    assert r.exit_code == 2 and "--rebuild" in r.output
    assert sorted(p.name for p in (index / "versions").iterdir()) == before
    r = CliRunner().invoke(app, ["ingest", str(folder), "--index-dir", str(index), "--rebuild"])
    assert r.exit_code == 0, r.output
    assert set(store.load(index).documents) == {"c.txt"}


def _serve_unready(index: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """A real server that may not become ready (waits for /livez, not /healthz)."""
    from tests.conftest import free_port

    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port",
                                 str(port), "--log-level", "warning"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "RAG_INDEX_DIR": str(index), **HASH_ENV})
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(base + "/livez", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start")


def test_dangling_current_is_503_over_http_and_the_upload_writes_nothing(tmp_path: Path) -> None:
    import shutil

    index = _index(tmp_path)
    shutil.rmtree(store.current_path(index).resolve())
    before = sorted(p.name for p in (index / "versions").iterdir())
    proc, base = _serve_unready(index, tmp_path / "server.log")
    try:
        h = httpx.get(base + "/healthz", timeout=10)
        assert h.status_code == 503 and "--rebuild" in h.json()["error"]
        files = [("files", ("new.txt", "新上传的文件。".encode(), "text/plain"))]
        r = httpx.post(base + "/v1/documents", files=files, timeout=60)
        assert r.status_code == 503 and "--rebuild" in r.json()["message"], r.text
        assert sorted(p.name for p in (index / "versions").iterdir()) == before
    finally:
        stop_server(proc)
    assert "Traceback" not in (tmp_path / "server.log").read_text(errors="replace")


def test_missing_index_is_still_not_found(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError):
        store.load(tmp_path / "none")
    assert not issubclass(IndexNotFoundError, IndexCorruptError) and issubclass(IndexCorruptError, RagError)
