"""Uploads against a real server (issue 21, items 1 and 6): parsing runs off the event loop, so /livez and
/v1/search keep answering during a heavy upload (the issue's 3,000-paragraph DOCX stalled search for 26 s);
a multipart batch puts the readable files in and lists the others, each with its cause (as the README says);
file names, the ``date`` field and ``source`` are checked. Hash embedder (no model): a quick server."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from embeddings.fake import HashEmbedder
from rag.core.types import Document
from rag.index.build import build_index
from rag.ingest.loaders import load_path
from tests.conftest import SEEDS, start_server, stop_server
from tests.ingest.test_hostile_files import encrypted, make_docx, make_pdf, many_page_pdf, text_page

HASH_ENV = {"RAG_EMBEDDER": "hash", "RAG_RATE_LIMIT_PER_MINUTE": "0"}
TRAFILATURA_ASSERT = ("<svg><html><body><article><p>正文段落：内蒙古测试网页正文，第一段内容足够长以被识别为正文内容。"
                      "</p></article></body></html>").encode()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    index = tmp_path_factory.mktemp("offloop") / "index"
    docs, _ = load_path(SEEDS)
    # a document as an older `rag ingest` recorded it: with the server's absolute path as its source
    docs.append(Document("old.txt", "旧版本导入的文件：关于草原生态保护。", source="/srv/data/policies/old.txt",
                         meta={"collection": "default"}))
    build_index(index, docs, HashEmbedder())
    proc, url = start_server(index, HASH_ENV, timeout=120)
    try:
        yield url
    finally:
        stop_server(proc)


def _post(base: str, *files: tuple[str, bytes], **data: str) -> httpx.Response:
    return httpx.post(base + "/v1/documents", files=[("files", (n, b, "application/octet-stream")) for n, b in files],
                      data=data, timeout=180)


def _p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.95) - 1)]


# --- item 1: off the event loop -----------------------------------------------------------------------------


def test_livez_and_search_keep_answering_during_a_heavy_upload(base: str) -> None:
    heavy = [("p.docx", make_docx(3000)), ("long.pdf", many_page_pdf(1000))]  # the DOCX + a long PDF
    query = {"query": "科技创新平台", "top_k": 5}
    with httpx.Client(timeout=30) as c:
        idle = []
        for _ in range(10):
            t = time.perf_counter()
            assert c.post(base + "/v1/search", json=query).status_code == 200
            idle.append(time.perf_counter() - t)
        result: dict[str, object] = {}

        def upload() -> None:
            t = time.perf_counter()
            result["r"] = _post(base, *heavy)
            result["s"] = time.perf_counter() - t

        th = threading.Thread(target=upload)
        th.start()
        livez, search = [], []
        while th.is_alive():
            t = time.perf_counter()
            assert c.get(base + "/livez").status_code == 200
            livez.append(time.perf_counter() - t)
            t = time.perf_counter()
            assert c.post(base + "/v1/search", json=query).status_code == 200
            search.append(time.perf_counter() - t)
            time.sleep(0.05)
        th.join()
    r = result["r"]
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    assert sorted(r.json()["added"]) == ["long.pdf", "p.docx"]  # type: ignore[attr-defined]
    print(f"\nupload {result['s']:.1f} s; /livez max {max(livez) * 1000:.0f} ms over {len(livez)} probes; "
          f"/v1/search p50 idle {statistics.median(idle) * 1000:.0f} ms, during p50 "
          f"{statistics.median(search) * 1000:.0f} / p95 {_p95(search) * 1000:.0f} ms")
    assert len(livez) >= 3, "the upload finished before anything was measured"
    # a parse on the event loop stalls every probe for the whole parse (4 s here before the fix); one slow probe
    # on a loaded 2-core machine is scheduling noise, so the bound is on the 95th percentile, with a hard cap
    assert _p95(livez) < 1.0, f"/livez p95 {_p95(livez):.1f} s during the upload"
    assert max(livez) < 3.0, f"/livez took {max(livez):.1f} s during the upload"
    assert _p95(search) < 1.0, f"/v1/search p95 {_p95(search):.1f} s during the upload"


# --- item 6: the batch, names, date, source -------------------------------------------------------------------


def test_batch_puts_the_good_files_in_and_lists_the_bad_ones_with_their_cause(base: str) -> None:
    locked = encrypted(make_pdf([text_page(0)]), "secret", "AES-256")
    r = _post(base, ("good-batch.txt", "批量上传中的好文件：关于科技人才。".encode()), ("locked.pdf", locked),
              ("x.html", TRAFILATURA_ASSERT), ("broken.docx", b"PK\x03\x04" + b"garbage" * 50),
              ("empty.txt", b""), ("good-batch.txt", "同名的第二个文件。".encode()))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["added"] == ["good-batch.txt"]
    failed = {f["file"]: f["error"] for f in body["failed"]}
    assert set(failed) == {"locked.pdf", "x.html", "broken.docx", "empty.txt", "good-batch.txt"}, failed
    assert "decrypted copy" in failed["locked.pdf"] and "HTML" in failed["x.html"]
    assert "DOCX" in failed["broken.docx"] and "empty" in failed["empty.txt"]
    doc = httpx.get(base + "/v1/documents/good-batch.txt", timeout=10).json()
    assert doc["text"] == "批量上传中的好文件：关于科技人才。"


def test_a_batch_of_only_bad_files_is_one_422_naming_each(base: str) -> None:
    r = _post(base, ("x.html", TRAFILATURA_ASSERT), ("setup.exe", b"MZ\x90\x00" * 10))
    assert r.status_code == 422
    msg = r.json()["message"]
    assert "x.html" in msg and "setup.exe" in msg and "unsupported" in msg


@pytest.mark.parametrize("name,data,error,words", [
    ("locked.pdf", encrypted(make_pdf([text_page(0)]), "secret", "RC4-128"), "EncryptedFileError",
     ["encrypted", "send a decrypted copy"]),
    ("x.html", TRAFILATURA_ASSERT, "UnreadableFileError", ["x.html", "AssertionError"]),
    ("bomb.pdf", make_pdf([b"BT (Hi) Tj ET " + b" " * (100 << 20)], compress=True), "UnreadableFileError",
     ["bomb.pdf", "Limit"]),
])
def test_unreadable_single_file_is_a_422_naming_the_cause(base: str, name: str, data: bytes, error: str,
                                                          words: list[str]) -> None:
    r = _post(base, (name, data))
    assert r.status_code == 422, r.text
    assert r.json()["error"] == error
    for w in words:
        assert w in r.json()["message"]


def _raw_multipart(base: str, filename: str, data: bytes, **fields: str) -> httpx.Response:
    """One file part with exactly this ``filename`` parameter (httpx leaves out an empty one)."""
    b = "rag-test-boundary"
    body = b"".join(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in fields.items())
    body += (f'--{b}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
             f"Content-Type: text/plain\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
    return httpx.post(base + "/v1/documents", content=body, timeout=60,
                      headers={"Content-Type": f"multipart/form-data; boundary={b}"})


def test_file_names_never_default_to_upload_txt(base: str) -> None:
    for r in (_raw_multipart(base, "", "没有文件名的文件。".encode()), _post(base, ("  ", "空白文件名。".encode()))):
        assert r.status_code == 422 and "no filename" in r.json()["message"], r.text
    assert httpx.get(base + "/v1/documents/upload.txt", timeout=10).status_code == 404
    # a browser on Windows may send the whole path: only the name is kept
    r = _post(base, ("C:\\Users\\me\\报告-win.txt", "视窗路径的文件。".encode()))
    assert r.status_code == 201 and r.json()["added"] == ["报告-win.txt"], r.text
    # with doc_id, a nameless file takes it
    r = _raw_multipart(base, "", "指定编号的文件。".encode(), doc_id="named-by-id.txt")
    assert r.status_code == 201 and r.json()["added"] == ["named-by-id.txt"], r.text


@pytest.mark.parametrize("value,status,stored", [
    ("2024-03-01", 201, "2024-03-01"), ("2024-03-01T10:30:00", 201, "2024-03-01"), ("  2023-12-31 ", 201, "2023-12-31"),
    ("yesterday", 422, None), ("2024-13-01", 422, None), ("2024/03/01", 422, None), ("20240301garbage", 422, None),
])
def test_upload_date_is_an_iso_date(base: str, value: str, status: int, stored: str | None) -> None:
    name = f"dated-{abs(hash(value)) % 10**8}.txt"
    r = _post(base, (name, f"带日期的文件{value}。".encode()), date=value)
    assert r.status_code == status, r.text
    if stored is None:
        assert "ISO date" in r.json()["message"]
        return
    doc = httpx.get(base + f"/v1/documents/{name}", timeout=10).json()
    assert doc["meta"]["date"] == stored


def test_source_never_shows_a_server_path(base: str) -> None:
    docs = httpx.get(base + "/v1/documents", timeout=10).json()["documents"]
    by_id = {d["doc_id"]: d for d in docs}
    assert by_id["old.txt"]["source"] == "old.txt"  # recorded as /srv/data/policies/old.txt
    for d in docs:
        assert not d["source"].startswith("/") and str(Path.cwd()) not in d["source"], d
    seed = next(d for d in docs if d["doc_id"].startswith("000_"))
    assert seed["source"] == f"seeds/{seed['doc_id']}"
