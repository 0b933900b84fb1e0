"""The web page follows an upload that became a background job (issue 21): headless Chromium against a real
server (hash embedder) where every upload is a job (RAG_ASYNC_UPLOAD_MB tiny): the page polls GET /v1/jobs/{id}
and says 已上传 only once the job is done, then lists the document; a failed job shows its message."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.api.test_web import CHROMIUM, CHROMIUM_ARGS, DESKTOP, _page
from tests.conftest import start_server, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.browser]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright missing: pip install -e '.[web]'")
expect = sync_api.expect


@pytest.fixture(scope="module")
def job_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from embeddings.fake import HashEmbedder
    from rag.index.build import build_index
    from rag.ingest.loaders import load_path
    from tests.conftest import SEEDS

    index = tmp_path_factory.mktemp("jobs-web") / "index"
    docs, _ = load_path(SEEDS)
    build_index(index, docs, HashEmbedder())
    env = {"RAG_EMBEDDER": "hash", "RAG_RATE_LIMIT_PER_MINUTE": "0", "RAG_ASYNC_UPLOAD_MB": "0.000001",
           "RAG_LLM_BASE_URL": ""}
    proc, base = start_server(index, env, timeout=120)
    try:
        yield base
    finally:
        stop_server(proc)
        shutil.rmtree(index.parent, ignore_errors=True)


@pytest.fixture
def page(job_server: str) -> Iterator[sync_api.Page]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or `make browser`)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield from _page(browser, job_server, DESKTOP)
        browser.close()


def test_page_follows_an_upload_job_to_done_and_shows_a_failed_one(page: sync_api.Page, job_server: str,
                                                                   tmp_path: Path) -> None:
    good = tmp_path / "web-job-test.txt"
    good.write_text("网页后台上传测试文档\n\n这份文件经由后台任务写入索引。", encoding="utf-8")
    page.goto(job_server + "/")
    page.set_input_files("#upload-file", str(good))
    with page.expect_response(lambda r: urlsplit(r.url).path == "/v1/documents"
                              and r.request.method == "POST") as info:
        page.locator("#upload-btn").click()
    assert info.value.status == 202, info.value.text()
    expect(page.locator("#upload-status")).to_contain_text("已上传：web-job-test.txt", timeout=60_000)
    expect(page.locator("#docs-body")).to_contain_text("web-job-test.txt")

    bad = tmp_path / "broken.docx"
    bad.write_bytes(b"PK\x03\x04" + b"garbage" * 50)
    page.set_input_files("#upload-file", str(bad))
    page.locator("#upload-btn").click()
    expect(page.locator("#upload-status")).to_contain_text("上传失败", timeout=60_000)
    expect(page.locator("#upload-status")).to_contain_text("broken.docx")
    expect(page.locator("#upload-btn")).to_be_enabled()
