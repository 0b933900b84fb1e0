"""The page's validity and issuer filters (issue 17) in headless Chromium, over the four 公文 of
tests/ingest/policy_texts.py (server and index from tests/api/test_validity_api.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.api.test_validity_api import NEW, OLD, QUESTION, REPEALED, api, policy_index  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.browser]
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright missing: pip install -e '.[web]'")

from tests.api.test_web import _page, browser  # noqa: E402,F401 (fixtures)

expect = sync_api.expect


@pytest.fixture
def page(browser, api: str) -> Iterator[sync_api.Page]:  # noqa: F811
    yield from _page(browser, api, {"width": 1366, "height": 900})


def ask(page: sync_api.Page) -> dict:
    page.locator("#new-convo").click()
    page.locator("#question").fill(QUESTION)
    with page.expect_response(lambda r: urlsplit(r.url).path == "/v1/answer") as info:
        page.locator("#ask-btn").click()
    expect(page.locator("#ask-btn")).to_be_enabled()
    resp = info.value
    sent = json.loads(resp.request.post_data or "{}")
    done = [ln for ln in resp.text().split("\n\n") if ln.startswith("event: done")]
    return {"sent": sent, "answer": json.loads(done[-1].split("data: ", 1)[1])}


def test_page_filters_by_validity_and_issuer(page: sync_api.Page, api: str) -> None:  # noqa: F811
    page.goto(api + "/")
    expect(page.locator("#docs-body tr", has_text=OLD).locator(".badge")).to_have_text("已废止")
    expect(page.locator("#issuer-filter option", has_text="内蒙古自治区科学技术厅")).to_have_count(1)

    r = ask(page)  # default: documents in force today
    assert "as_of" not in r["sent"] and {c["doc_id"] for c in r["answer"]["citations"]} == {NEW}
    expect(page.locator("#answer")).to_contain_text("500元")

    page.locator("#as-of").fill("2020-01-01")
    r = ask(page)
    assert r["sent"]["as_of"] == "2020-01-01" and {c["doc_id"] for c in r["answer"]["citations"]} == {OLD}
    expect(page.locator("#answer")).to_contain_text("300元")

    page.locator("#as-of").fill("")
    page.locator("#include-superseded").check()
    page.locator("#doc-filter").select_option(OLD)
    r = ask(page)
    assert r["sent"]["include_superseded"] is True and REPEALED in r["answer"]["warnings"]
    expect(page.locator("#answer .warnings")).to_contain_text("该文件已于2024年3月1日被《呼和浩特市就业补贴管理办法》")
