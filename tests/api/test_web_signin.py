"""The web page signs in with a key (issue 20) in headless Chromium against the real server (real model, the
seeds index plus collections A and B): the key is kept in sessionStorage (no cookie), every request carries it,
the page lists only the principal's collections and documents, answers never show collection B, a reload
keeps the session, signing out forgets it, a wrong key is refused with the server's message; the security
headers are on the page and its script runs under its Content-Security-Policy (no script errors).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from api.keys import add as add_key
from tests.conftest import start_server, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.browser]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright missing: pip install -e '.[web]'")
from tests.api.test_web import CHROMIUM, CHROMIUM_ARGS, DESKTOP, _page  # noqa: E402

expect = sync_api.expect
SECRET = "ZX4417QUOKKA"
QUESTION = "紫藤项目的内部预算编号是什么？"


@pytest.fixture(scope="module")
def signin_server(seed_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("web-signin")
    index = tmp / "index"
    shutil.copytree(seed_index, index, symlinks=True)
    keys_file = tmp / "keys.json"
    keys = {n: add_key(keys_file, n, r, c) for n, r, c in [("admin", "admin", ["*"]), ("reader-a", "reader", ["A"])]}
    proc, base = start_server(index, {"RAG_KEYS_FILE": str(keys_file), "RAG_LLM_BASE_URL": "",
                                      "RAG_CONVERSATIONS_DB": str(tmp / "conv.sqlite3")}, timeout=120)
    try:
        for name, text, col in (("quokka-ledger.txt", f"紫藤项目的内部预算编号是{SECRET}，由乙库保管。", "B"),
                                ("zitang-public.txt", "紫藤项目的公开说明：预算编号另行通知。", "A")):
            r = httpx.post(f"{base}/v1/documents", headers={"X-API-Key": keys["admin"]}, data={"collection": col},
                           files={"files": (name, text.encode(), "text/plain")}, timeout=120)
            assert r.status_code == 201, r.text
        yield base, keys
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or `make browser`)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: sync_api.Browser, signin_server: tuple[str, dict[str, str]]) -> Iterator[sync_api.Page]:
    yield from _page(browser, signin_server[0], DESKTOP)


def _options(page: sync_api.Page) -> list[str]:
    return [o for o in page.locator("#collection-filter option").evaluate_all("os => os.map(o => o.value)") if o]


def test_sign_in_shows_only_the_principals_collections(page: sync_api.Page,
                                                       signin_server: tuple[str, dict[str, str]]) -> None:
    base, keys = signin_server
    r = page.goto(base + "/")
    assert r is not None
    h = r.headers
    csp = h["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "no-referrer"
    # without a key (keys are scoped): no collection, no document
    expect(page.locator("#docs-body")).not_to_contain_text("quokka")
    # a wrong key: refused with the server's message, nothing stored
    page.fill("#api-key", "wrong-key")
    page.locator("#signin-btn").click()
    expect(page.locator("#signin-status")).to_contain_text("登录失败")
    expect(page.locator("#signin-status")).to_contain_text("403")
    assert page.evaluate("window.sessionStorage.getItem('rag.apiKey')") is None
    # the reader of A
    page.fill("#api-key", keys["reader-a"])
    with page.expect_response(lambda x: urlsplit(x.url).path == "/v1/me" and x.ok):
        page.locator("#signin-btn").click()
    expect(page.locator("#signin-status")).to_contain_text("已登录：reader-a")
    expect(page.locator("#docs-body")).to_contain_text("zitang-public.txt")
    expect(page.locator("#docs-body")).not_to_contain_text("quokka")
    assert _options(page) == ["A"]
    assert page.evaluate("window.sessionStorage.getItem('rag.apiKey')") == keys["reader-a"]
    assert page.evaluate("document.cookie") == ""
    # a reload keeps the session; questions carry the key and never show B
    page.reload()
    expect(page.locator("#signin-status")).to_contain_text("已登录：reader-a")
    box = page.locator("#question")
    box.fill(QUESTION)
    with page.expect_response(lambda x: urlsplit(x.url).path == "/v1/answer") as info:
        box.press("Enter")
    resp = info.value
    assert resp.request.all_headers().get("x-api-key") == keys["reader-a"]
    assert SECRET not in resp.text()
    expect(page.locator("#ask-btn")).to_be_enabled()
    assert SECRET not in page.content()
    # signing out forgets the key
    page.locator("#signout-btn").click()
    expect(page.locator("#signin-btn")).to_be_visible()
    assert page.evaluate("window.sessionStorage.getItem('rag.apiKey')") is None
    assert page.locator("#api-key").input_value() == ""


def test_admin_sees_every_collection(page: sync_api.Page, signin_server: tuple[str, dict[str, str]]) -> None:
    base, keys = signin_server
    page.goto(base + "/")
    page.fill("#api-key", keys["admin"])
    page.locator("#signin-btn").click()
    expect(page.locator("#signin-status")).to_contain_text("管理员")
    expect(page.locator("#docs-body")).to_contain_text("quokka-ledger.txt")
    assert {"A", "B", "default"} <= set(_options(page))
    # the questions report (admin only) in the same tab uses the signed-in key
    with page.expect_response(lambda x: urlsplit(x.url).path == "/v1/report") as info:
        page.goto(base + "/report")
    assert info.value.ok and info.value.request.all_headers().get("x-api-key") == keys["admin"]
