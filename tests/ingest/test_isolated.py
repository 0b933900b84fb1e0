"""Parsing in worker processes (rag/ingest/isolated.py, issue 21): the loaders' typed errors come back typed,
OCR progress is heard, the child runs niced with a capped address space, a child that dies is a 422 naming
the signal and is replaced, ``stop`` kills a parse, and a parse past its budget is ended. Real loaders and the
real RapidOCR in real child processes."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from rag.core.errors import ParseTimeoutError, UnreadableFileError, UnsupportedFileError
from rag.ingest.isolated import ParseCancelled, ParsePool
from tests.ingest import docmaker as dm

SCAN_TEXT = "关于加强草原生态保护补助奖励资金管理的通知。各旗县区人民政府要按照每亩每年七元五角的标准发放禁牧补助。"


def scan(pages: int) -> bytes:
    return dm.scanned_pdf([dm.render_page([f"第{i + 1}页。", SCAN_TEXT]) for i in range(pages)])


@pytest.fixture()
def pool() -> Iterator[ParsePool]:
    p = ParsePool(1, nice=10, memory_mb=4096)
    try:
        yield p
    finally:
        p.close()


def test_a_document_and_typed_errors_come_back_from_the_child(pool: ParsePool) -> None:
    doc = pool.parse("第一条　本办法自印发之日起施行。".encode(), "a.txt", None, {"collection": "A", "tags": ["t"]})
    assert doc.doc_id == "a.txt" and "本办法" in doc.text
    assert doc.meta["collection"] == "A" and doc.meta["tags"] == ["t"] and len(doc.meta["sha256"]) == 64
    with pytest.raises(UnreadableFileError, match=r"b\.docx: unreadable DOCX"):
        pool.parse(b"PK\x03\x04" + b"garbage" * 50, "b.docx")
    with pytest.raises(UnsupportedFileError, match="unsupported file type"):
        pool.parse(b"x", "c.exe")
    assert len(pool.pids()) == 1  # one child served all three


def test_child_is_niced_with_a_capped_address_space_and_reports_ocr_pages(pool: ParsePool) -> None:
    seen: list[tuple[int, int]] = []
    doc = pool.parse(scan(2), "scan.pdf", progress=lambda d, t: seen.append((d, t)))
    assert "草原生态保护" in doc.text
    assert seen and seen[0] == (0, 2) and all(t == 2 for _, t in seen), seen
    pid = pool.pids()[0]
    nice = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[16])
    assert nice == min(19, os.nice(0) + 10)
    limits = open(f"/proc/{pid}/limits").read()
    assert f"Max address space         {4096 * 1024 * 1024}" in limits, limits


def test_a_child_that_dies_is_a_422_naming_the_signal_and_is_replaced(pool: ParsePool) -> None:
    pool.parse(b"warm", "w.txt")
    first = pool.pids()[0]
    threading.Timer(1.0, os.kill, (first, signal.SIGKILL)).start()
    with pytest.raises(UnreadableFileError, match=r"scan\.pdf: the parser stopped before finishing \(SIGKILL\)"):
        pool.parse(scan(3), "scan.pdf")
    assert pool.parse(b"again", "again.txt").text == "again"
    assert pool.pids() and pool.pids()[0] != first


def test_stop_kills_the_parse(pool: ParsePool) -> None:
    t0 = time.monotonic()
    with pytest.raises(ParseCancelled):
        pool.parse(scan(3), "scan.pdf", stop=lambda: time.monotonic() - t0 > 1.0)
    assert time.monotonic() - t0 < 5.0 and pool.pids() == []
    assert pool.parse(b"after", "after.txt").text == "after"


def test_a_parse_past_its_budget_is_a_parse_timeout(pool: ParsePool) -> None:
    with pytest.raises(ParseTimeoutError, match="scan.pdf"):
        pool.parse(scan(3), "scan.pdf", timeout=0.5)


def test_a_file_past_the_memory_cap_is_a_422_and_the_pool_goes_on() -> None:
    small = ParsePool(1, nice=10, memory_mb=250)
    try:
        with pytest.raises(UnreadableFileError, match=r"big\.txt: the parser stopped .*250 MB.*RAG_PARSE_MEMORY_MB"):
            small.parse(("第一条　本办法自印发之日起施行。" * 4_000_000).encode(), "big.txt")  # 192 MB
        assert small.parse(b"small", "small.txt").text == "small"
    finally:
        small.close()
