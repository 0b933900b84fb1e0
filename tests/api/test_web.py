"""Browser tests for the staff web page (issue 8).

A real server (uvicorn subprocess) over a copy of the seeds index (conftest `seed_index`), driven by
headless Chromium through Python Playwright. Needs `pip install -e '.[web]'` and /usr/bin/chromium
(`make browser` does both). Screenshots go to docs/.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import start_server, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.browser]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright missing: pip install -e '.[web]'")
expect = sync_api.expect
expect.set_options(timeout=30_000)  # slow, shared CI machines

ROOT = Path(__file__).resolve().parents[2]
# Screenshots land in docs/ only when asked (RAG_SCREENSHOTS=1); a plain test run must not
# rewrite tracked files, so they go to a temporary folder otherwise.
SHOTS = ROOT / "docs" if os.environ.get("RAG_SCREENSHOTS") == "1" else Path(
    os.environ.get("TMPDIR", "/tmp")) / "policy-rag-screenshots"
CHROMIUM = os.environ.get("RAG_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}

QUESTION = "中国工程科技发展战略内蒙古研究院每年安排多少专项经费？"
OUT_OF_SCOPE = "伊利集团2030年的营业收入目标是多少？"


# ---------- fixtures: index, server, browser ----------

@pytest.fixture(scope="module")
def web_index(seed_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the session's seed index (conftest), so an upload here cannot change it."""
    out = tmp_path_factory.mktemp("web-index") / "index"
    shutil.copytree(seed_index, out, symlinks=True)
    return out


@pytest.fixture(scope="module")
def web_server(web_index: Path) -> Iterator[str]:
    proc, base = start_server(web_index, {"RAG_LLM_BASE_URL": ""}, timeout=120)  # no LLM: extractive
    try:
        yield base
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


def _page(browser: sync_api.Browser, web_server: str, viewport: dict[str, int]) -> Iterator[sync_api.Page]:
    """A fresh page; afterwards: no script errors, and no request left the service (no CDN, no network)."""
    ctx = browser.new_context(viewport=viewport, locale="zh-CN")
    ctx.set_default_timeout(90_000)
    page = ctx.new_page()
    errors: list[str] = []
    foreign: list[str] = []
    origin = urlsplit(web_server).netloc
    page.on("pageerror", lambda e: errors.append(str(e)))
    # (HTTP error statuses the tests provoke are logged by Chromium as "Failed to load resource")
    page.on("console", lambda m: errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("request", lambda r: foreign.append(r.url)
            if urlsplit(r.url).scheme in ("http", "https") and urlsplit(r.url).netloc != origin else None)
    yield page
    ctx.close()
    assert errors == [], f"script errors on the page: {errors}"
    assert foreign == [], f"the page fetched from outside the service: {foreign}"


@pytest.fixture
def page(browser: sync_api.Browser, web_server: str) -> Iterator[sync_api.Page]:
    yield from _page(browser, web_server, DESKTOP)


@pytest.fixture
def phone(browser: sync_api.Browser, web_server: str) -> Iterator[sync_api.Page]:
    yield from _page(browser, web_server, PHONE)


def _ask(page: sync_api.Page, question: str, submit: str = "enter") -> sync_api.Response:
    """Type a question and submit it (Enter key or the button); returns the /v1/answer response."""
    box = page.locator("#question")
    box.fill(question)
    with page.expect_response(lambda r: urlsplit(r.url).path == "/v1/answer") as info:
        if submit == "enter":
            box.press("Enter")
        else:
            page.locator("#ask-btn").click()
    expect(page.locator("#ask-btn")).to_be_enabled()
    return info.value


def _sse(*events: tuple[str, object]) -> str:
    """A server-sent event body in the server's format (api/llm.sse)."""
    return "".join(f"event: {e}\ndata: {json.dumps(d, ensure_ascii=False)}\n\n" for e, d in events)


def _fulfill_sse(body: str):  # type: ignore[no-untyped-def]
    return lambda route: route.fulfill(status=200, headers={"content-type": "text/event-stream"}, body=body)


def _passage_ids(page: sync_api.Page) -> list[str]:
    return page.locator("#passages li.passage").evaluate_all("els => els.map(e => e.dataset.docId)")


def _shot(page: sync_api.Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


# ---------- tests ----------

def test_answer_with_citation_opens_highlighted_source(page: sync_api.Page, web_server: str) -> None:
    page.goto(web_server + "/")
    expect(page.locator("#health")).to_contain_text("索引就绪")
    resp = _ask(page, QUESTION)
    assert resp.ok, resp.text()
    # only the fields the server accepts (it forbids unknown ones); no filter chosen, none sent
    assert resp.request.post_data_json == {"query": QUESTION, "top_k": 5, "mode": "extractive", "stream": True}

    answer = page.locator("#answer .answer-text")
    expect(answer).to_contain_text("1500万元")
    # the bare answer span above the explanation, with its citation marker
    expect(page.locator("#answer .short-answer strong")).to_have_text("1500万元")
    expect(page.locator("#answer .short-answer button.cite")).to_be_visible()
    cite = answer.locator("button.cite", has_text="[1]")
    expect(cite).to_be_visible()
    expect(page.locator("#passages li.passage").first).to_be_visible()
    _shot(page, "screenshot-answer.png")

    cite.click()
    mark = page.locator("#panel-body mark")
    expect(mark).to_have_count(1)
    expect(mark).to_contain_text("1500")
    expect(mark).to_be_visible()
    expect(mark).to_be_in_viewport()
    expect(page.locator("#panel-meta")).to_contain_text("引用 [1]")
    _shot(page, "screenshot-citation.png")

    # keyboard: closing returns focus to the marker, Enter on it opens the source again
    page.locator("#panel-close").click()
    expect(mark).to_have_count(0)
    expect(cite).to_be_focused()
    page.keyboard.press("Enter")
    expect(mark).to_contain_text("1500")
    expect(mark).to_be_in_viewport()

    # a retrieved passage opens its own span
    first = page.locator("#passages li.passage").first
    first.locator("button.passage-open").click()
    expect(page.locator("#panel-meta")).to_contain_text("检索段落 #1")
    expect(mark).to_be_in_viewport()


def test_answer_streams_tokens(page: sync_api.Page, web_server: str) -> None:
    """Tokens of the SSE answer are appended to a live (streaming) element, then the final JSON
    re-renders the text with clickable [n] markers."""
    page.add_init_script("""
        window.__streamed = [];
        new MutationObserver(rs => rs.forEach(r => {
            const t = r.target;
            if (r.type === "childList" && r.addedNodes.length && t.classList && t.classList.contains("streaming"))
                window.__streamed.push({text: t.textContent, buttons: t.querySelectorAll("button").length,
                                        busy: document.getElementById("answer").getAttribute("aria-busy")});
        })).observe(document, {childList: true, subtree: true});
    """)
    page.goto(web_server + "/")
    resp = _ask(page, QUESTION)
    assert resp.request.post_data_json["stream"] is True
    assert resp.headers["content-type"].startswith("text/event-stream")
    answer = page.locator("#answer .answer-text")
    expect(answer.locator("button.cite", has_text="[1]")).to_be_visible()
    streamed = page.evaluate("window.__streamed")
    assert streamed, "no token was appended to the streaming answer element"
    assert all(s["buttons"] == 0 for s in streamed)   # tokens are plain text until the done event
    assert "1500万元" in streamed[-1]["text"]
    assert streamed[0]["busy"] == "true"
    expect(page.locator("#answer .streaming")).to_have_count(0)
    expect(page.locator("#answer")).not_to_have_attribute("aria-busy", "true")
    expect(page.locator("#ask-status")).to_contain_text("摘录")


def test_stream_error_event_is_shown(page: sync_api.Page, web_server: str) -> None:
    body = _sse(("token", {"text": "部分回答。"}), ("error", {"error": "InternalError", "message": "生成中断：测试"}))
    page.route("**/v1/answer", _fulfill_sse(body))
    page.goto(web_server + "/")
    _ask(page, QUESTION)
    expect(page.locator("#ask-error")).to_contain_text("生成中断：测试")
    expect(page.locator("#answer")).to_contain_text("没有得到回答")
    expect(page.locator("#answer")).not_to_have_attribute("aria-busy", "true")


def test_refusal_message_is_prominent(page: sync_api.Page, web_server: str) -> None:
    api = httpx.post(f"{web_server}/v1/answer", json={"query": OUT_OF_SCOPE, "top_k": 5, "mode": "extractive"},
                     timeout=120)
    api.raise_for_status()
    expected = api.json()
    page.goto(web_server + "/")
    resp = _ask(page, OUT_OF_SCOPE, submit="button")
    assert resp.ok
    if expected["answerable"]:
        expect(page.locator("#answer .answer-text")).to_be_visible()
        pytest.skip("the API answers this question (answerable=true): no refusal to check")
    msg = page.locator("#answer .refusal-msg")
    expect(msg).to_have_text(expected["message"])
    expect(msg).to_be_in_viewport()
    expect(page.locator("#answer button.cite")).to_have_count(0)
    _shot(page, "screenshot-refusal.png")


def test_http_error_shows_server_message(page: sync_api.Page, web_server: str) -> None:
    too_long = "政策" * 600
    api = httpx.post(f"{web_server}/v1/answer", json={"query": too_long, "top_k": 5, "stream": True}, timeout=60)
    assert api.status_code == 422
    page.goto(web_server + "/")
    resp = _ask(page, too_long)
    assert resp.status == 422
    err = page.locator("#ask-error")
    expect(err).to_be_visible()
    expect(err).to_contain_text(api.json()["message"])
    expect(err).to_contain_text("HTTP 422")


def test_enter_submits_but_not_while_composing(page: sync_api.Page, web_server: str) -> None:
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if urlsplit(r.url).path == "/v1/answer" else None)
    page.goto(web_server + "/")
    box = page.locator("#question")
    box.fill("内蒙古")
    # Enter that confirms an IME candidate: isComposing (Chrome, Firefox) or keyCode 229 (Safari)
    box.evaluate("""el => {
        el.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', isComposing: true, bubbles: true,
                                                       cancelable: true}));
        el.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', keyCode: 229, bubbles: true,
                                                       cancelable: true}));
    }""")
    # Shift+Enter is a newline
    box.press("End")
    box.press("Shift+Enter")
    box.type("科技")
    assert box.input_value() == "内蒙古\n科技"
    page.wait_for_timeout(300)
    assert asked == []
    # blank question: told so, nothing sent
    box.fill("   ")
    page.locator("#ask-btn").click()
    expect(page.locator("#ask-error")).to_contain_text("请输入问题")
    assert asked == []
    # plain Enter submits
    _ask(page, QUESTION)
    assert len(asked) == 1


def test_labels_focus_and_live_region(page: sync_api.Page, web_server: str) -> None:
    page.goto(web_server + "/")
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
        .map(e => e.id || e.name)""")
    assert unlabeled == []
    expect(page.locator("#answer")).to_have_attribute("aria-live", "polite")
    page.locator("#question").focus()
    for _ in range(5):  # answer mode, top_k, collection, document, then the button
        page.keyboard.press("Tab")
    expect(page.locator("#ask-btn")).to_be_focused()
    outline = page.locator("#ask-btn").evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline not in ("none", "")


def test_documents_list_and_filter(page: sync_api.Page, web_server: str) -> None:
    listing = httpx.get(f"{web_server}/v1/documents", timeout=30).json()
    page.goto(web_server + "/")
    expect(page.locator("#docs-body tr")).to_have_count(listing["total"])
    expect(page.locator("#doc-filter option")).to_have_count(listing["total"] + 1)
    expect(page.locator("#docs-note")).to_contain_text(f"共 {listing['total']} 篇")

    _ask(page, QUESTION)
    items = page.locator("#passages li.passage")
    expect(items.first).to_be_visible()
    ids = items.evaluate_all("els => els.map(e => e.dataset.docId)")
    target = ids[-1]
    page.select_option("#doc-filter", target)
    expect(items).to_have_count(ids.count(target))
    assert set(items.evaluate_all("els => els.map(e => e.dataset.docId)")) == {target}
    expect(page.locator("#passages-note")).to_contain_text(f"{ids.count(target)} / {len(ids)}")
    page.select_option("#doc-filter", "")
    expect(items).to_have_count(len(ids))

    # a document title opens the whole document (nothing highlighted)
    doc = listing["documents"][1]
    page.locator("#docs-body button", has_text=doc["title"]).click()
    expect(page.locator("#panel-title")).to_have_text(doc["title"])
    expect(page.locator("#panel-meta")).to_contain_text(f"{doc['doc_id']} · {doc['chars']} 字")
    expect(page.locator("#panel-body mark")).to_have_count(0)


def test_doc_filter_restricts_retrieval(page: sync_api.Page, web_server: str) -> None:
    """A chosen document is sent as doc_ids: every retrieved passage comes from it (not just shown)."""
    listing = httpx.get(f"{web_server}/v1/documents", timeout=30).json()
    free = httpx.post(f"{web_server}/v1/answer", json={"query": QUESTION, "top_k": 5, "mode": "extractive"},
                      timeout=120).json()
    counts = Counter(p["doc_id"] for p in free["passages"])
    # a document with enough passages whose share of the unfiltered top 5 is smaller than 5
    doc = next(d for d in listing["documents"] if d["chunks"] >= 5 and counts[d["doc_id"]] < 5)
    page.goto(web_server + "/")
    expect(page.locator(f'#doc-filter option[value="{doc["doc_id"]}"]')).to_have_count(1)
    page.select_option("#doc-filter", doc["doc_id"])
    resp = _ask(page, QUESTION)
    assert resp.request.post_data_json["doc_ids"] == [doc["doc_id"]]
    expect(page.locator("#passages li.passage")).to_have_count(5)
    assert set(_passage_ids(page)) == {doc["doc_id"]}
    expect(page.locator("#passages-note")).to_contain_text("显示 5 / 5")
    expect(page.locator("#passages-note")).not_to_contain_text("重新提问")
    # changing the filter afterwards says a new question searches the new scope
    page.select_option("#doc-filter", "")
    expect(page.locator("#passages-note")).to_contain_text("重新提问")


def test_llm_option_disabled_without_llm(page: sync_api.Page, web_server: str) -> None:
    health = httpx.get(f"{web_server}/healthz", timeout=30).json()
    assert health["llm"] is False
    page.goto(web_server + "/")
    expect(page.locator("#health")).to_contain_text("索引就绪")
    option = page.locator('#answer-mode option[value="llm"]')
    expect(option).to_be_disabled()
    expect(option).to_contain_text("未配置")
    expect(page.locator("#answer-mode")).to_have_value("extractive")
    expect(page.locator('#answer-mode option[value="extractive"]')).to_have_text("摘录（无需模型）")


def test_llm_mode_shows_degradation_warnings(page: sync_api.Page, web_server: str) -> None:
    """With an LLM reported (health mocked), llm is the default mode; the real server has none and
    degrades to the extractive answer with a warning, which the page shows."""
    def health(route: sync_api.Route) -> None:
        real = route.fetch()
        route.fulfill(response=real, json={**real.json(), "llm": True})

    page.route("**/healthz", health)
    page.goto(web_server + "/")
    expect(page.locator('#answer-mode option[value="llm"]')).to_be_enabled()
    expect(page.locator("#answer-mode")).to_have_value("llm")
    resp = _ask(page, QUESTION)
    assert resp.request.post_data_json["mode"] == "llm"
    expect(page.locator("#answer .answer-text")).to_contain_text("1500万元")
    expect(page.locator("#answer .warnings li")).to_contain_text("no LLM configured")
    expect(page.locator("#ask-status")).to_contain_text("摘录")
    # the user's choice is kept
    page.select_option("#answer-mode", "extractive")
    resp = _ask(page, QUESTION)
    assert resp.request.post_data_json["mode"] == "extractive"
    expect(page.locator("#answer .answer-text")).to_contain_text("1500万元")
    expect(page.locator("#answer .warnings")).to_have_count(0)


def test_traditional_display_toggle(page: sync_api.Page, web_server: str) -> None:
    page.goto(web_server + "/")
    _ask(page, QUESTION)
    answer = page.locator("#answer .answer-text")
    expect(answer).to_contain_text("1500万元")
    page.select_option("#lang", "traditional")
    expect(answer).to_contain_text("1500萬元專項經費")
    expect(page.locator("h1")).to_have_text("政策文件問答")
    answer.locator("button.cite").first.click()
    mark = page.locator("#panel-body mark")
    expect(mark).to_contain_text("專項經費")
    expect(mark).to_be_in_viewport()
    page.select_option("#lang", "simplified")
    expect(answer).to_contain_text("1500万元专项经费")
    expect(mark).to_contain_text("专项经费")
    expect(page.locator("h1")).to_have_text("政策文件问答")


def test_untrusted_text_is_escaped(page: sync_api.Page, web_server: str) -> None:
    """Answer, titles, passages and document text are shown as text, never parsed as HTML."""
    evil = '<img src=x onerror="window.__pwned=1"><b>粗体</b>'
    text = "0123456789ABCDEFGHIJ" + evil
    cit = {"n": 1, "doc_id": "evil.txt", "chunk_id": 0, "title": evil, "start": 0, "end": len(text),
           "quote": evil, "quote_start": 5, "quote_end": 15, "score": 0.9, "supported": False}
    passage = {"chunk_id": 0, "doc_id": "evil.txt", "title": evil, "section": evil, "text": evil, "start": 0,
               "end": len(text), "score": 0.03, "rank": 1, "dense_score": 0.9, "bm25_score": 1.0,
               "kind": "body"}
    body = {"answer": evil + "。[1][7]", "answerable": True, "message": "", "citations": [cit],
            "passages": [passage], "mode": "extractive", "warnings": [evil], "timings": {}, "took_ms": 1.0}
    doc = {"doc_id": "evil.txt", "title": evil, "source": "", "chars": len(text), "chunks": 1, "meta": {},
           "text": text}
    stream = _sse(("token", {"text": evil}), ("token", {"text": "。[1][7]"}), ("citations", {"citations": [cit]}),
                  ("done", body))
    page.route("**/v1/answer", _fulfill_sse(stream))
    page.route("**/v1/documents/evil.txt", lambda route: route.fulfill(json=doc))
    page.goto(web_server + "/")
    _ask(page, "x")
    answer = page.locator("#answer .answer-text")
    expect(answer).to_contain_text(evil)
    expect(answer.locator("button.cite")).to_have_count(1)  # [7] has no citation: stays text
    expect(answer).to_contain_text("[7]")
    expect(page.locator("#answer .warn-tag")).to_be_visible()  # supported=false is flagged
    answer.locator("button.cite").click()
    expect(page.locator("#panel-body mark")).to_have_text("56789ABCDE")
    expect(page.locator("#panel-body")).to_contain_text(evil)
    assert page.locator("img, b").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_upload_error_message_from_server(page: sync_api.Page, web_server: str, tmp_path: Path) -> None:
    """The page shows what the server says when an upload is refused (server reply mocked)."""
    f = tmp_path / "note.txt"
    f.write_text("测试文档。", encoding="utf-8")
    page.route("**/v1/documents", lambda route: route.fulfill(
        status=401, json={"error": "Unauthorized", "message": "API 密钥无效"})
        if route.request.method == "POST" else route.continue_())
    page.goto(web_server + "/")
    # the file picker offers every type the server's loaders read (rag/ingest/loaders.py)
    accept = page.locator("#upload-file").get_attribute("accept") or ""
    for ext in (".txt", ".md", ".pdf", ".docx", ".html"):
        assert ext in accept.split(","), ext
        expect(page.locator('label[for="upload-file"]')).to_contain_text(ext)
    page.locator("#upload-btn").click()
    expect(page.locator("#upload-status")).to_contain_text("请先选择")
    page.set_input_files("#upload-file", str(f))
    page.fill("#api-key", "wrong")
    page.locator("#upload-btn").click()
    expect(page.locator("#upload-status")).to_contain_text("HTTP 401")
    expect(page.locator("#upload-status")).to_contain_text("API 密钥无效")


def test_phone_width(phone: sync_api.Page, web_server: str) -> None:
    page = phone
    page.goto(web_server + "/")
    _ask(page, QUESTION)
    answer = page.locator("#answer .answer-text")
    expect(answer).to_contain_text("1500万元")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "horizontal overflow"
    expect(page.locator("#doc-panel")).to_be_hidden()
    answer.scroll_into_view_if_needed()
    _shot(page, "screenshot-phone.png")
    answer.locator("button.cite").first.click()
    mark = page.locator("#panel-body mark")
    expect(mark).to_contain_text("1500")
    expect(mark).to_be_in_viewport()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "horizontal overflow"
    _shot(page, "screenshot-phone-citation.png")
    page.locator("#panel-close").click()
    expect(page.locator("#doc-panel")).to_be_hidden()


# From here on, real uploads add documents to this module's server.
def test_collection_filter(page: sync_api.Page, web_server: str) -> None:
    text = "网页类别测试文档\n\n星河港口管理办法规定，星河港口每年开放三百天，其余时间用于检修。"
    up = httpx.post(f"{web_server}/v1/documents", data={"collection": "测试类别"}, timeout=300,
                    files=[("files", ("web-collection-test.txt", text.encode(), "text/plain"))])
    assert up.status_code == 201, up.text
    question = "星河港口每年开放多少天？"
    page.goto(web_server + "/")
    expect(page.locator("#collection-filter option")).to_have_count(3)  # all, default, 测试类别
    page.select_option("#collection-filter", "测试类别")
    expect(page.locator("#doc-filter option")).to_have_count(2)  # all, the one document
    resp = _ask(page, question)
    assert resp.request.post_data_json["collection"] == "测试类别"
    expect(page.locator("#passages li.passage").first).to_be_visible()
    assert set(_passage_ids(page)) == {"web-collection-test.txt"}
    expect(page.locator("#passages-note")).to_contain_text("已按类别筛选")

    page.select_option("#collection-filter", "default")
    resp = _ask(page, question)
    assert resp.request.post_data_json["collection"] == "default"
    expect(page.locator("#passages-note")).to_contain_text("显示 5 / 5")
    assert "web-collection-test.txt" not in _passage_ids(page)


def test_upload_to_server(page: sync_api.Page, web_server: str, tmp_path: Path) -> None:
    key = "web-test-key"
    probe = httpx.post(f"{web_server}/v1/documents", headers={"X-API-Key": "invalid-probe-key"}, timeout=30)
    if probe.status_code in (404, 405):
        pytest.skip(f"POST /v1/documents not implemented yet (HTTP {probe.status_code})")
    f = tmp_path / "web-upload-test.txt"
    f.write_text("网页上传测试文档\n\n这是一份用于测试网页上传功能的文档。", encoding="utf-8")
    page.goto(web_server + "/")
    page.set_input_files("#upload-file", str(f))
    page.fill("#api-key", key)
    with page.expect_response(lambda r: urlsplit(r.url).path == "/v1/documents"
                              and r.request.method == "POST") as info:
        page.locator("#upload-btn").click()
    r = info.value
    headers = r.request.all_headers()
    assert headers.get("x-api-key") == key
    assert headers.get("content-type", "").startswith("multipart/form-data")
    assert r.ok, r.text()  # the form field is the server's `files`
    assert r.json()["added"] == ["web-upload-test.txt"]
    expect(page.locator("#upload-status")).to_contain_text("已上传")
    expect(page.locator("#docs-body")).to_contain_text("web-upload-test.txt")
