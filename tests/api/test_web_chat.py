"""The web page as a chat (issue 16), in headless Chromium: a two-turn conversation whose second answer is right
only if the history was used, 👍 stored, a reload that restores the thread, a new conversation, past ones.

Same setup as tests/api/test_web.py (Playwright + /usr/bin/chromium, `make browser`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import start_server, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.browser]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright missing: pip install -e '.[web]'")
expect = sync_api.expect

from tests.api.test_web import CHROMIUM, CHROMIUM_ARGS, DESKTOP, _page, _shot  # noqa: E402

FIRST = "鄂尔多斯实验室的主任是谁？"
FOLLOW_UP = "他是哪所大学的教授？"
DIRECTOR_SCHOOL = re.compile(r"鄂尔多斯实验室的主任(?:魏飞)?是哪所大学的教授？")  # with the answer's name when given


@pytest.fixture(scope="module")
def chat_server(seed_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("web-chat") / "conversations.sqlite3"
    proc, base = start_server(seed_index, {"RAG_LLM_BASE_URL": "", "RAG_CONVERSATIONS_DB": str(db)}, timeout=120)
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


@pytest.fixture
def page(browser: sync_api.Browser, chat_server: str) -> Iterator[sync_api.Page]:
    yield from _page(browser, chat_server, DESKTOP)


def _ask(page: sync_api.Page, question: str) -> sync_api.Request:
    page.locator("#question").fill(question)
    with page.expect_response(lambda r: urlsplit(r.url).path == "/v1/answer") as info:
        page.locator("#ask-btn").click()
    expect(page.locator("#ask-btn")).to_be_enabled(timeout=90_000)
    return info.value.request


def _ask_by(page: sync_api.Page, button: sync_api.Locator) -> sync_api.Request:
    with page.expect_response(lambda r: urlsplit(r.url).path == "/v1/answer") as info:
        button.click()
    expect(page.locator("#ask-btn")).to_be_enabled(timeout=90_000)
    return info.value.request


def test_two_turn_conversation_feedback_and_reload(page: sync_api.Page, chat_server: str) -> None:
    page.goto(chat_server + "/")
    first = _ask(page, FIRST)
    assert "conversation_id" not in (first.post_data_json or {})
    expect(page.locator("#passages")).to_contain_text("魏飞")
    second = _ask(page, FOLLOW_UP)
    cid = second.post_data_json["conversation_id"]
    assert len(cid) == 32
    # the first turn moved into the thread; the follow-up was searched as its standalone rewrite and is right
    expect(page.locator("#thread li.turn")).to_have_count(1)
    expect(page.locator("#thread li.turn .turn-q")).to_contain_text(FIRST)
    expect(page.locator("#current-question")).to_contain_text(FOLLOW_UP)
    expect(page.locator("#answer .query-used")).to_contain_text(DIRECTOR_SCHOOL)
    # what was retrieved for it holds the answer (whether the reader then answers or refuses)
    expect(page.locator("#passages li.passage").first).to_contain_text("清华大学")
    page.locator("#thread").evaluate("el => el.scrollIntoView({block: 'start'})")
    _shot(page, "screenshot-chat.png")

    # 👎 on the first turn, 👍 on the second: stored in the database
    with page.expect_response(lambda r: urlsplit(r.url).path == "/v1/feedback"):
        page.locator("#answer button.rate[data-rating='up']").click()
    expect(page.locator("#answer button.rate[data-rating='up']")).to_have_attribute("aria-pressed", "true")
    with page.expect_response(lambda r: urlsplit(r.url).path == "/v1/feedback"):
        page.locator("#thread button.rate[data-rating='down']").click()
    turns = httpx.get(f"{chat_server}/v1/conversations/{cid}", timeout=10).json()["turns"]
    assert [t["feedback"]["rating"] for t in turns] == ["down", "up"]

    # a reload restores the thread, the last answer and its rating; the next question continues it
    page.reload()
    expect(page.locator("#thread li.turn .turn-q")).to_contain_text(FIRST)
    expect(page.locator("#current-question")).to_contain_text(FOLLOW_UP)
    expect(page.locator("#answer .query-used")).to_contain_text(DIRECTOR_SCHOOL)
    expect(page.locator("#answer button.rate[data-rating='up']")).to_have_attribute("aria-pressed", "true")
    third = _ask(page, "该实验室以什么为主要科研方向？")
    assert third.post_data_json["conversation_id"] == cid
    expect(page.locator("#thread li.turn")).to_have_count(2)
    expect(page.locator("#answer .query-used")).to_contain_text("鄂尔多斯实验室以什么为主要科研方向？")

    # up to three suggested follow-ups; one click asks it in the same conversation
    suggestion = page.locator("#answer button.suggestion").first
    suggested = suggestion.count() > 0
    if suggested:
        text = suggestion.inner_text()
        asked = _ask_by(page, suggestion)
        assert asked.post_data_json["query"] == text and asked.post_data_json["conversation_id"] == cid
        expect(page.locator("#thread li.turn")).to_have_count(3)

    # a new conversation starts empty and sends no conversation_id; the old one is in the list and reopens
    page.locator("#new-convo").click()
    expect(page.locator("#thread li.turn")).to_have_count(0)
    expect(page.locator("#current-question")).to_be_hidden()
    fresh = _ask(page, "呼和浩特市共培育了多少家技术转移机构？")
    assert "conversation_id" not in fresh.post_data_json
    old = page.locator(f"#convo-list button[data-id='{cid}']")
    expect(old).to_contain_text(FIRST)
    old.click()
    expect(page.locator("#thread li.turn")).to_have_count(3 if suggested else 2)


def test_report_page_lists_questions_and_exports_csv(page: sync_api.Page, chat_server: str, tmp_path: Path) -> None:
    """Runs after the conversation above (same server): its questions and its 👎 are in the report."""
    page.goto(chat_server + "/report")
    expect(page.locator("#asked-body")).to_contain_text(FIRST)
    expect(page.locator("#down-list")).to_contain_text(FIRST)
    expect(page.locator("#report-summary")).to_contain_text("p50")
    with page.expect_download() as info:
        page.locator("#report-csv").click()
    path = tmp_path / "questions.csv"
    info.value.save_as(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("created,conversation_id,turn") and FIRST in text and FOLLOW_UP in text
    _shot(page, "screenshot-report.png")
