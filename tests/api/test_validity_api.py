"""Issue 17 items 4 and 5 on the real server (uvicorn, real model) over an index of four 公文 written for the tests
(tests/ingest/policy_texts.py): a 2019 暂行办法 repealed by a 2024 管理办法, a notice that expired in 2022, and a
2023 measure of another issuer. Default answers come from documents in force, ``as_of`` answers as of a day,
a cited superseded document is flagged, filters narrow retrieval, and metadata edits persist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_server, stop_server
from tests.ingest.policy_texts import FILES

pytestmark = pytest.mark.integration

OLD, NEW, EXPIRED, OTHER = "hhht-2019-7.txt", "hhht-2024-3.txt", "nmg-rsj-2021-15.txt", "nmg-kjt-2023-21.txt"
QUESTION = "用人单位吸纳就业困难人员的岗位补贴标准是每人每月多少元？"
REPEALED = ("《呼和浩特市就业补贴暂行办法》：该文件已于2024年3月1日被《呼和浩特市就业补贴管理办法》"
            "（呼政发〔2024〕3号）废止")


@pytest.fixture(scope="module")
def policy_index(tmp_path_factory: pytest.TempPathFactory, real_embedder, settings) -> Path:  # type: ignore[no-untyped-def]
    from rag.index.build import build_index
    from rag.ingest.loaders import load_path

    src = tmp_path_factory.mktemp("policy_docs")
    for name, text in FILES.items():
        (src / name).write_text(text, encoding="utf-8")
    docs, failures = load_path(src)
    assert not failures
    out = tmp_path_factory.mktemp("policy_index")
    build_index(out, docs, real_embedder, settings.chunk_size, settings.chunk_overlap)
    return out


@pytest.fixture(scope="module")
def api(policy_index: Path) -> Iterator[str]:
    proc, base = start_server(policy_index)
    try:
        yield base
    finally:
        stop_server(proc)


def ask(api: str, path: str = "/v1/ask", **body) -> dict:  # type: ignore[no-untyped-def]
    r = httpx.post(api + path, json={"query": QUESTION, "top_k": 5, **body}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def cited(a: dict) -> set[str]:
    return {c["doc_id"] for c in a["citations"]}


def test_documents_list_status_and_links(api):
    docs = {d["doc_id"]: d for d in httpx.get(api + "/v1/documents", timeout=30).json()["documents"]}
    assert {k: d["status"] for k, d in docs.items()} == {OLD: "superseded", NEW: "in_force", EXPIRED: "expired",
                                                         OTHER: "in_force"}
    assert docs[OLD]["superseded_by"] == {"doc_id": NEW, "title": docs[NEW]["title"], "doc_number": "呼政发〔2024〕3号",
                                          "date": "2024-03-01", "how": "废止"}
    assert docs[NEW]["supersedes"] == [OLD]
    assert (docs[NEW]["meta"]["issuer"], docs[NEW]["meta"]["doc_number"]) == ("呼和浩特市人民政府", "呼政发〔2024〕3号")
    assert docs[EXPIRED]["meta"]["date_expires"] == "2022-12-31"


def test_default_answer_comes_from_the_measure_in_force(api):
    a = ask(api)
    assert a["answerable"] and "500元" in a["answer"], a
    assert cited(a) == {NEW}
    assert not {p["doc_id"] for p in a["passages"]} & {OLD, EXPIRED}  # filtered inside retrieval
    assert not any("废止" in w for w in a["warnings"]) and "注意" not in a["answer"]


def test_as_of_2020_answers_from_the_2019_measure(api):
    a = ask(api, as_of="2020-01-01")
    assert a["answerable"] and "300元" in a["answer"], a
    assert cited(a) == {OLD} and {p["doc_id"] for p in a["passages"]} == {OLD}  # the 2024 one did not exist yet
    assert not any("废止" in w for w in a["warnings"])  # in force on that day


@pytest.mark.parametrize("path", ["/v1/ask", "/v1/answer"])
def test_a_cited_superseded_document_is_flagged(api, path):
    extra = {"mode": "extractive"} if path == "/v1/answer" else {}
    a = ask(api, path, include_superseded=True, doc_ids=[OLD], **extra)
    assert cited(a) == {OLD} and REPEALED in a["warnings"], a
    assert a["answer"].endswith("注意：" + REPEALED)  # under the answer text too
    both = ask(api, path, include_superseded=True, **extra)
    assert {p["doc_id"] for p in both["passages"]} >= {OLD, NEW}
    assert (REPEALED in both["warnings"]) == (OLD in cited(both))


def test_chat_completions_take_the_same_filters(api):
    msg = {"messages": [{"role": "user", "content": QUESTION}], "mode": "extractive"}
    r = httpx.post(api + "/v1/chat/completions", json=msg, timeout=60).json()
    assert {c["doc_id"] for c in r["citations"]} == {NEW}
    r = httpx.post(api + "/v1/chat/completions", json={**msg, "as_of": "2020-01-01"}, timeout=60).json()
    assert {c["doc_id"] for c in r["citations"]} == {OLD} and "300元" in r["choices"][0]["message"]["content"]
    r = httpx.post(api + "/v1/chat/completions", json={**msg, "include_superseded": True, "doc_ids": [OLD]},
                   timeout=60).json()
    assert REPEALED in r["warnings"] and REPEALED in r["choices"][0]["message"]["content"]


@pytest.mark.parametrize("body,docs", [
    ({"issuer": "科学技术厅"}, {OTHER}),
    ({"doc_number": "呼政发[2024]3号"}, {NEW}),
    ({"subjects": ["创新券"]}, {OTHER}),
    ({"effective_to": "2023-12-31"}, {OTHER}),  # the 2024 measure took effect later; the others are not in force
    ({"title": "社会保险补贴", "include_superseded": True}, {EXPIRED}),
])
def test_search_filters_exclude_documents(api, body, docs):
    r = httpx.post(api + "/v1/search", json={"query": "补贴标准", "top_k": 10, **body}, timeout=30)
    assert r.status_code == 200, r.text
    assert {x["doc_id"] for x in r.json()["results"]} == docs


def test_dify_metadata_condition(api):
    cond = {"logical_operator": "and", "conditions": [
        {"name": "发文机关", "comparison_operator": "contains", "value": "科学技术厅"}]}
    body = {"knowledge_id": "k", "query": "补贴", "retrieval_setting": {"top_k": 10, "score_threshold": 0.0}}
    r = httpx.post(api + "/retrieval", json={**body, "metadata_condition": cond}, timeout=30)
    assert r.status_code == 200, r.text
    assert {x["metadata"]["doc_id"] for x in r.json()["records"]} == {OTHER}
    meta = r.json()["records"][0]["metadata"]
    assert (meta["issuer"], meta["doc_number"], meta["status"]) == \
        ("内蒙古自治区科学技术厅", "内科发〔2023〕21号", "in_force")
    r = httpx.post(api + "/retrieval", json={**body, "as_of": "2020-01-01"}, timeout=30)
    assert {x["metadata"]["doc_id"] for x in r.json()["records"]} == {OLD}
    bad = {"logical_operator": "and", "conditions": [{"name": "施行日期", "comparison_operator": "before",
                                                      "value": "not a date"}]}
    r = httpx.post(api + "/retrieval", json={**body, "metadata_condition": bad}, timeout=30)
    assert r.status_code == 422 and "not a date" in r.json()["message"]


@pytest.mark.parametrize("body,msg", [
    ({"date_effective": "2024-02-30"}, "is not a date"),
    ({"date_expires": "31/12/2025"}, "is not a date"),
    ({"date_effective": "2024-05-01", "date_expires": "2024-01-01"}, "before date_effective"),
    ({"colour": "red"}, "colour"),
    ({"title": None}, "title"),
    ({}, "at least one field"),
])
def test_put_rejects_bad_metadata(api, body, msg):
    r = httpx.put(f"{api}/v1/documents/{OTHER}", json=body, timeout=30)
    assert r.status_code == 422 and msg in r.json()["message"], r.text


def test_put_metadata_persists_across_a_restart(api, policy_index):
    assert httpx.put(f"{api}/v1/documents/nope.txt", json={"issuer": "x"}, timeout=30).status_code == 404
    # a multipart PUT still replaces the file (another route): here a 404 from it, not a metadata edit
    r = httpx.put(f"{api}/v1/documents/nope.txt", files={"file": ("nope.txt", b"x")}, timeout=30)
    assert r.status_code == 404 and "replace" in r.json()["message"]
    body = {"issuer": "内蒙古自治区科技厅", "date_expires": "2025-06-30", "subjects": ["科技", "中小企业"]}
    r = httpx.put(f"{api}/v1/documents/{OTHER}", json=body, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "expired" and r.json()["metadata"]["issuer"] == "内蒙古自治区科技厅"
    search = {"query": "创新券额度", "top_k": 5}
    found = httpx.post(api + "/v1/search", json=search, timeout=30).json()["results"]
    assert OTHER not in {x["doc_id"] for x in found}  # expired now: left out
    proc, base = start_server(policy_index)  # a second process reads the disk
    try:
        d = httpx.get(f"{base}/v1/documents/{OTHER}", timeout=30).json()
        assert d["meta"]["issuer"] == "内蒙古自治区科技厅" and d["meta"]["subjects"] == ["科技", "中小企业"]
        assert d["status"] == "expired" and d["meta"]["doc_number"] == "内科发〔2023〕21号"
        hits = httpx.post(base + "/v1/search", json={**search, "include_superseded": True}, timeout=30).json()
        assert hits["results"][0]["doc_id"] == OTHER
    finally:
        stop_server(proc)
