"""Conversations (issue 16) against the real server over the seed index: follow-ups resolved from the OpenAI
messages, from ``history`` and from a stored ``conversation_id``; storage in SQLite, listing, delete, retention,
the history limit, the off switch; the LLM condense step and a server killed mid-answer, with a loopback
OpenAI-compatible server standing in for the LLM.

Assertions do not depend on which reader (trained model or rules) picks the short answer: they check the
rewritten query, the cited document and the text of the citations.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.answer.conversation import CONDENSE_SYSTEM
from rag.conversations import ConversationStore
from tests.conftest import free_port, start_server, stop_server

pytestmark = pytest.mark.integration
# The follow-up "他是哪所大学的教授？" carries the first turn's subject, and its answer's name when it gave one
DIRECTOR_SCHOOL = re.compile(r"鄂尔多斯实验室的主任(?:魏飞)?是哪所大学的教授？")

ORDOS = "000_bcf499b72cb977fc.txt"
HOHHOT = "001_d6fedae4a7c0b999.txt"
DIRECTOR = "鄂尔多斯实验室的主任是谁？"
TRANSFER = "呼和浩特市共培育了多少家技术转移机构？"


@pytest.fixture(scope="module")
def conv(seed_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    """A server storing conversations in its own SQLite file, history limited to 3 turns, retention 30 days;
    the file already holds a conversation last updated 200 days ago (deleted when the server opens it)."""
    db = tmp_path_factory.mktemp("conv") / "conversations.sqlite3"
    store = ConversationStore(db)
    old = store.create("", "old question")
    store.begin(old, "old question", "old question", "none")
    store.close()
    with sqlite3.connect(db) as c:
        c.execute("UPDATE conversations SET updated = ?, created = ? WHERE id = ?",
                  (time.time() - 200 * 86400, time.time() - 200 * 86400, old))
    proc, base = start_server(seed_index, {"RAG_CONVERSATIONS_DB": str(db), "RAG_MAX_HISTORY_TURNS": "3",
                                           "RAG_CONVERSATION_RETENTION_DAYS": "30", "RAG_LLM_BASE_URL": ""})
    try:
        yield base, db, old
    finally:
        stop_server(proc)


def _quotes(body: dict[str, Any], doc: str) -> str:
    return " ".join(c["quote"] for c in body["citations"] if c["doc_id"] == doc)


def _found(body: dict[str, Any], doc: str) -> str:
    """What the answer cites from ``doc`` and the text of its top-3 passages from ``doc``: the evidence retrieval
    found, whether the reader (trained model or rules) answered from it or refused."""
    return _quotes(body, doc) + " ".join(p["text"] for p in body.get("passages", [])[:3] if p["doc_id"] == doc)


def test_chat_completions_follow_up_uses_the_messages(conv: tuple[str, Path, str]) -> None:
    base, _, _ = conv
    messages = [{"role": "user", "content": DIRECTOR},
                {"role": "assistant", "content": "清华大学化工系教授魏飞受聘担任该实验室主任。[1]"},
                {"role": "user", "content": "他是哪所大学的教授？"}]
    r = httpx.post(f"{base}/v1/chat/completions", json={"messages": messages, "mode": "extractive"}, timeout=60)
    assert r.status_code == 200, r.text
    a = r.json()
    assert DIRECTOR_SCHOOL.fullmatch(a["query_used"]) and a["rewrite"] == "rules"
    assert "清华大学" in _quotes(a, ORDOS) or not a["answerable"]  # the chat shape has no passages
    assert all(c["doc_id"] == ORDOS for c in a["citations"][:1])
    # the same question without the history is searched as asked (and the Ordos sentence is not what it gets)
    alone = httpx.post(f"{base}/v1/chat/completions", json={"messages": messages[-1:], "mode": "extractive"},
                       timeout=60).json()
    assert alone["query_used"] == "他是哪所大学的教授？" and alone["rewrite"] == "none"
    assert "魏飞" not in _quotes(alone, ORDOS)


def test_chat_completions_stream_final_chunk_carries_the_rewrite(conv: tuple[str, Path, str]) -> None:
    base, _, _ = conv
    messages = [{"role": "user", "content": TRANSFER}, {"role": "assistant", "content": "34家。"},
                {"role": "user", "content": "那新型研发机构呢？"}]
    with httpx.stream("POST", f"{base}/v1/chat/completions",
                      json={"messages": messages, "mode": "extractive", "stream": True}, timeout=60) as r:
        lines = [x[6:] for x in r.iter_lines() if x.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    final = json.loads(lines[-2])
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["query_used"] == "呼和浩特市共培育了多少家新型研发机构？"
    assert all(c["doc_id"] == HOHHOT for c in final["citations"][:1])


def test_answer_with_conversation_id_is_stored_and_listed(conv: tuple[str, Path, str]) -> None:
    base, db, _ = conv
    first = httpx.post(f"{base}/v1/answer", json={"query": TRANSFER, "mode": "extractive"}, timeout=60).json()
    cid = first["conversation_id"]
    assert len(cid) == 32 and first["turn"] == 1 and first["rewrite"] == "none"
    assert "技术转移机构34家" in _found(first, HOHHOT)
    second = httpx.post(f"{base}/v1/answer", json={"query": "那新型研发机构呢？", "mode": "extractive",
                                                  "conversation_id": cid}, timeout=60).json()
    assert (second["conversation_id"], second["turn"]) == (cid, 2)
    assert second["query_used"] == "呼和浩特市共培育了多少家新型研发机构？" and second["rewrite"] == "rules"
    assert "20余家新型研发机构" in _found(second, HOHHOT)  # Hohhot's, not the region's 68 (002)
    assert second["passages"][0]["doc_id"] == HOHHOT
    for a in (first, second):  # suggested follow-ups: questions asking for a count in the cited passages
        assert len(a["suggestions"]) <= 3 and all(q.endswith("？") and "多少" in q for q in a["suggestions"])
        assert a["query_used"] not in a["suggestions"]
    # streamed third turn, a topic switch: left alone
    with httpx.stream("POST", f"{base}/v1/answer", json={"query": "内蒙古打造了多少个产业集群？", "mode": "extractive",
                                                         "stream": True, "conversation_id": cid}, timeout=60) as r:
        events = [x for x in r.iter_lines() if x.startswith("data: ")]
    done = json.loads(events[-1][6:])
    assert (done["turn"], done["rewrite"], done["query_used"]) == (3, "none", "内蒙古打造了多少个产业集群？")

    got = httpx.get(f"{base}/v1/conversations/{cid}", timeout=10).json()
    assert got["title"] == TRANSFER and [t["turn"] for t in got["turns"]] == [1, 2, 3]
    t2 = got["turns"][1]
    assert t2["question"] == "那新型研发机构呢？" and t2["query"] == second["query_used"] and t2["status"] == "done"
    assert t2["rewrite"] == "rules" and t2["doc_ids"] == [HOHHOT] and t2["answerable"] is True
    assert t2["citations"] == second["citations"] and t2["answer"] == second["answer"]
    assert t2["latency_ms"] > 0 and t2["model"] == "policy-rag-extractive" and t2["mode"] == "extractive"
    listed = httpx.get(f"{base}/v1/conversations", timeout=10).json()["conversations"]
    assert any(c["id"] == cid and c["turns"] == 3 for c in listed)
    with sqlite3.connect(db) as c:  # the database itself, not only the API
        assert c.execute("SELECT COUNT(*) FROM turns WHERE conversation_id = ?", (cid,)).fetchone()[0] == 3

    assert httpx.delete(f"{base}/v1/conversations/{cid}", timeout=10).json() == {"deleted": cid}
    assert httpx.get(f"{base}/v1/conversations/{cid}", timeout=10).status_code == 404
    assert httpx.delete(f"{base}/v1/conversations/{cid}", timeout=10).status_code == 404
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*) FROM turns WHERE conversation_id = ?", (cid,)).fetchone()[0] == 0


def test_feedback_stored_per_turn(conv: tuple[str, Path, str]) -> None:
    base, db, _ = conv
    a = httpx.post(f"{base}/v1/ask", json={"query": DIRECTOR}, timeout=60).json()
    cid = a["conversation_id"]
    r = httpx.post(f"{base}/v1/feedback", json={"conversation_id": cid, "turn": 1, "rating": "down",
                                               "comment": " 没说是哪所大学 "}, timeout=10)
    assert r.status_code == 200, r.text
    assert httpx.post(f"{base}/v1/feedback", json={"conversation_id": cid, "turn": 1, "rating": "up"},
                      timeout=10).status_code == 200  # the latest rating counts
    assert httpx.get(f"{base}/v1/conversations/{cid}", timeout=10).json()["turns"][0]["feedback"] == \
        {"rating": "up", "comment": ""}
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT rating FROM feedback WHERE conversation_id = ?", (cid,)).fetchall() == [("up",)]
    cases: list[tuple[dict[str, Any], int]] = [({"turn": 2}, 404), ({"conversation_id": "f" * 32}, 404),
                                               ({"rating": "meh"}, 422), ({"turn": "1"}, 422)]
    for bad, status in cases:
        body = {"conversation_id": cid, "turn": 1, "rating": "up", **bad}
        assert httpx.post(f"{base}/v1/feedback", json=body, timeout=10).status_code == status, bad


def test_ask_with_history_english_and_self_contained(conv: tuple[str, Path, str]) -> None:
    base, _, _ = conv
    hist = [{"question": "How many technology transfer institutions has Hohhot cultivated?", "doc_ids": [HOHHOT]}]
    a = httpx.post(f"{base}/v1/ask", json={"query": "What about new R&D institutions?", "history": hist},
                   timeout=60).json()
    assert a["query_used"] == "How many new R&D institutions has Hohhot cultivated?" and a["rewrite"] == "rules"
    assert a["passages"][0]["doc_id"] == HOHHOT
    hist = [{"question": DIRECTOR, "doc_ids": [ORDOS]}]
    b = httpx.post(f"{base}/v1/ask", json={"query": "京蒙两地政府是什么时候签订《全面深化京蒙协作框架协议》的？",
                                          "history": hist}, timeout=60).json()
    assert b["rewrite"] == "none" and b["query_used"] == "京蒙两地政府是什么时候签订《全面深化京蒙协作框架协议》的？"
    assert "2023年6月" in _found(b, ORDOS)


@pytest.mark.parametrize(("before", "switch", "doc", "evidence"), [
    (DIRECTOR, "那么内蒙古的科技进步贡献率如何？", "002_4d3571df8ef6d925.txt", "55%以上"),
    ("鄂爾多斯實驗室的主任是誰？", "那內蒙古打造了多少個產業集群呢？", "004_89306360670bd32d.txt", "8大產業集群"),
    ("Who is the director of the Ordos Laboratory?", "And how many industrial clusters has Inner Mongolia built?",
     None, None),
])
def test_a_topic_switch_is_not_dragged_back(conv: tuple[str, Path, str], before: str, switch: str,
                                            doc: str | None, evidence: str | None) -> None:
    """A new question after an Ordos one, in each language (opened with 那么 / 那…呢 / And, which the rules
    once took for an ellipsis): searched as asked, the Ordos document not preferred."""
    base, _, _ = conv
    hist = [{"question": before, "doc_ids": [ORDOS]}]
    a = httpx.post(f"{base}/v1/ask", json={"query": switch, "history": hist}, timeout=180).json()
    assert (a["query_used"], a["rewrite"]) == (switch, "none")
    alone = httpx.post(f"{base}/v1/ask", json={"query": switch}, timeout=180).json()
    assert [p["chunk_id"] for p in a["passages"]] == [p["chunk_id"] for p in alone["passages"]]
    if doc is not None and evidence is not None:
        assert a["passages"][0]["doc_id"] == doc and evidence in _found(a, doc)


@pytest.mark.parametrize(("before", "follow_up", "expected", "doc", "evidence"), [
    ("乌兰察布智能算力项目的总投资是多少？", "总建筑面积呢？", "乌兰察布智能算力项目的总建筑面积是多少？", ORDOS,
     "4万平方米"),
    ("內蒙古科信科技創新推廣有限公司團隊中有多少名初級技術經紀人？", "中級的呢？",
     "內蒙古科信科技創新推廣有限公司團隊中有多少名中級技術經紀人？", "003_925fbcf3af44d05b.txt", "中级技术经纪人5名"),
])
def test_an_elliptical_follow_up_is_resolved(conv: tuple[str, Path, str], before: str, follow_up: str,
                                           expected: str, doc: str, evidence: str) -> None:
    base, _, _ = conv
    a = httpx.post(f"{base}/v1/ask", json={"query": follow_up, "history": [{"question": before}]},
                   timeout=180).json()
    assert (a["query_used"], a["rewrite"]) == (expected, "rules")
    assert evidence in _found(a, doc)


def test_an_elliptical_follow_up_does_not_get_the_previous_answer_again(conv: tuple[str, Path, str]) -> None:
    """Both amounts are in one sentence (享受研发费用税前加计扣除61.24亿元，减免所得税15.31亿元): the rewrite keeps
    the previous question's words, so the reader is asked again for the question as asked."""
    base, _, _ = conv
    doc = "002_4d3571df8ef6d925.txt"
    hist = [{"question": "1105家企业享受研发费用税前加计扣除多少？", "short_answer": "61.24亿元", "doc_ids": [doc]}]
    a = httpx.post(f"{base}/v1/ask", json={"query": "减免所得税呢？", "history": hist}, timeout=180).json()
    assert a["rewrite"] == "rules" and "减免所得税" in a["query_used"]
    assert "减免所得税15.31亿元" in _found(a, doc)
    assert a["answerable"] and "61.24" not in a["short_answer"], (a["short_answer"], a["warnings"])


def test_bad_input(conv: tuple[str, Path, str]) -> None:
    base, _, _ = conv
    unknown = "0" * 32
    r = httpx.post(f"{base}/v1/answer", json={"query": "那新型研发机构呢？", "conversation_id": unknown}, timeout=30)
    assert r.status_code == 404 and unknown in r.json()["message"]
    assert httpx.get(f"{base}/v1/conversations/{unknown}", timeout=10).status_code == 404
    assert httpx.get(f"{base}/v1/conversations/not-an-id", timeout=10).status_code == 422
    r = httpx.post(f"{base}/v1/ask", json={"query": "x", "history": [{"question": "a\x00b"}]}, timeout=10)
    assert r.status_code == 422
    # history over the limit (3): the oldest turns dropped, said in warnings; the follow-up still resolves
    hist = [{"question": f"第{i}个问题是什么？"} for i in range(4)] + [{"question": DIRECTOR}]
    a = httpx.post(f"{base}/v1/ask", json={"query": "他是哪所大学的教授？", "history": hist}, timeout=60).json()
    assert DIRECTOR_SCHOOL.fullmatch(a["query_used"])
    assert any("oldest 2 were dropped" in w for w in a["warnings"])


def test_a_stored_conversation_over_the_limit_drops_its_oldest_turns(conv: tuple[str, Path, str]) -> None:
    """The limit (3 here) applies to the turns read back from the store too: a fifth question of a stored
    conversation is resolved against the last three, and says so; every turn stays stored."""
    base, _, _ = conv
    cid = None
    for q in ["内蒙古科技进步贡献率达到了多少？", "鄂尔多斯实验室是什么时候揭牌的？", DIRECTOR, TRANSFER]:
        a = httpx.post(f"{base}/v1/ask", json={"query": q, "conversation_id": cid}, timeout=180).json()
        cid = a["conversation_id"]
        assert not any("dropped" in w for w in a["warnings"]), a["warnings"]
    a = httpx.post(f"{base}/v1/ask", json={"query": "那新型研发机构呢？", "conversation_id": cid}, timeout=180).json()
    assert a["query_used"] == "呼和浩特市共培育了多少家新型研发机构？" and a["turn"] == 5
    assert any("oldest 1 were dropped" in w for w in a["warnings"]), a["warnings"]
    got = httpx.get(f"{base}/v1/conversations/{cid}", timeout=10).json()
    assert [t["turn"] for t in got["turns"]] == [1, 2, 3, 4, 5]


def test_retention_deleted_the_old_conversation(conv: tuple[str, Path, str]) -> None:
    base, db, old = conv
    assert httpx.get(f"{base}/v1/conversations/{old}", timeout=10).status_code == 404
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*) FROM turns WHERE conversation_id = ?", (old,)).fetchone()[0] == 0
    s = ConversationStore(db.parent / "unit.sqlite3", retention_days=1)
    keep, drop = s.create(), s.create()
    s._tx("UPDATE conversations SET updated = ? WHERE id = ?", (time.time() - 2 * 86400, drop))
    assert s.purge() == 1 and [c["id"] for c in s.list_conversations()] == [keep]
    s.close()


def test_dify_retrieval_with_history(conv: tuple[str, Path, str]) -> None:
    base, _, _ = conv
    body = {"knowledge_id": "k", "query": "那新型研发机构呢？", "retrieval_setting": {"top_k": 3},
            "history": [{"question": TRANSFER, "doc_ids": [HOHHOT]}]}
    r = httpx.post(f"{base}/retrieval", json=body, timeout=30).json()
    assert r["query_used"] == "呼和浩特市共培育了多少家新型研发机构？"
    assert r["records"][0]["metadata"]["doc_id"] == HOHHOT and "新型研发机构" in r["records"][0]["content"]
    plain = httpx.post(f"{base}/retrieval", json={"query": TRANSFER}, timeout=30).json()
    assert plain["query_used"] == TRANSFER


def test_questions_report_api_csv_and_cli(conv: tuple[str, Path, str], tmp_path: Path) -> None:
    base, db, _ = conv
    q = "伊利集团2030年的营业收入目标是多少？"
    answers = [httpx.post(f"{base}/v1/ask", json={"query": x}, timeout=60).json() for x in (q, q + " ")]
    refused = sum(not a["answerable"] for a in answers)
    httpx.post(f"{base}/v1/feedback", json={"conversation_id": answers[0]["conversation_id"], "turn": 1,
                                            "rating": "down", "comment": "文档里没有"}, timeout=10)
    r = httpx.get(f"{base}/v1/report", params={"days": 1, "top": 100}, timeout=30).json()
    entry = next(e for e in r["most_asked"] if e["query"].startswith("伊利集团2030年"))
    assert (entry["count"], entry["refused"], entry["down"]) == (2, refused, 1)  # " " and "？" aside: one question
    assert (entry in r["refused_questions"]) == (refused > 0)
    assert any(d["comment"] == "文档里没有" and d["query"] == q for d in r["rated_down"])
    assert r["latency_ms"]["p50"] > 0 and r["latency_ms"]["p95"] >= r["latency_ms"]["p50"]
    assert r["turns"] >= r["answered"] + r["refused"] and r["rewritten"] >= 3 and r["feedback"]["down"] >= 1
    csv_text = httpx.get(f"{base}/v1/report", params={"format": "csv", "days": 1}, timeout=30)
    assert csv_text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_text.text)))
    assert len(rows) == r["turns"]
    assert [x["rating"] for x in rows if x["query"] == q and x["conversation_id"] == answers[0]["conversation_id"]] \
        == ["down"]
    # the command line reads the same database
    out = subprocess.run([sys.executable, "-m", "rag.cli", "report", "--json", "--days", "1", "--top", "100",
                          "--csv", str(tmp_path / "q.csv")], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "RAG_CONVERSATIONS_DB": str(db)}, check=True)
    cli = json.loads(out.stdout)
    assert cli["most_asked"] == r["most_asked"] and cli["turns"] == r["turns"]
    assert (tmp_path / "q.csv").read_bytes().decode() == csv_text.text


def test_a_key_sees_only_its_own_conversations(seed_index: Path, tmp_path: Path) -> None:
    db = tmp_path / "keys.sqlite3"
    proc, base = start_server(seed_index, {"RAG_API_KEYS": '["alpha-key", "beta-key"]', "RAG_LLM_BASE_URL": "",
                                           "RAG_CONVERSATIONS_DB": str(db)})
    alpha, beta = {"X-API-Key": "alpha-key"}, {"X-API-Key": "beta-key"}
    try:
        a = httpx.post(f"{base}/v1/ask", json={"query": DIRECTOR}, headers=alpha, timeout=60).json()
        cid = a["conversation_id"]
        mine = httpx.get(f"{base}/v1/conversations/{cid}", headers=alpha, timeout=10).json()
        assert mine["owner"].startswith("key-") and "alpha" not in mine["owner"]  # a name, never the key
        assert httpx.get(f"{base}/v1/conversations", timeout=10).status_code == 401
        assert httpx.get(f"{base}/v1/conversations/{cid}", headers=beta, timeout=10).status_code == 404
        assert cid not in [c["id"] for c in httpx.get(f"{base}/v1/conversations", headers=beta,
                                                      timeout=10).json()["conversations"]]
        assert cid in [c["id"] for c in httpx.get(f"{base}/v1/conversations", headers=alpha,
                                                  timeout=10).json()["conversations"]]
        r = httpx.post(f"{base}/v1/ask", json={"query": "他是哪所大学的教授？", "conversation_id": cid},
                       headers=beta, timeout=30)
        assert r.status_code == 404
        assert httpx.delete(f"{base}/v1/conversations/{cid}", headers=beta, timeout=10).status_code == 404
        assert httpx.post(f"{base}/v1/feedback", json={"conversation_id": cid, "turn": 1, "rating": "down"},
                          headers=beta, timeout=10).status_code == 404
        r = httpx.post(f"{base}/v1/ask", json={"query": "他是哪所大学的教授？", "conversation_id": cid},
                       headers=alpha, timeout=60).json()
        assert r["turn"] == 2 and DIRECTOR_SCHOOL.fullmatch(r["query_used"])
    finally:
        stop_server(proc)
    with sqlite3.connect(db) as c:
        assert "alpha-key" not in " ".join(str(x) for row in c.execute("SELECT * FROM conversations") for x in row)


def test_storage_off_stores_nothing(seed_index: Path, tmp_path: Path) -> None:
    db = tmp_path / "off.sqlite3"
    proc, base = start_server(seed_index, {"RAG_STORE_CONVERSATIONS": "false", "RAG_CONVERSATIONS_DB": str(db),
                                           "RAG_LLM_BASE_URL": ""})
    try:
        a = httpx.post(f"{base}/v1/ask", json={"query": "他是哪所大学的教授？",
                                               "history": [{"question": DIRECTOR}]}, timeout=60).json()
        assert a["conversation_id"] is None and a["turn"] is None
        assert DIRECTOR_SCHOOL.fullmatch(a["query_used"])  # resolution still works
        r = httpx.post(f"{base}/v1/answer", json={"query": "x", "conversation_id": "a" * 32}, timeout=30)
        assert r.status_code == 422 and "RAG_STORE_CONVERSATIONS=false" in r.json()["message"]
        assert httpx.get(f"{base}/v1/conversations", timeout=10).status_code == 404
        assert httpx.get(f"{base}/v1/report", timeout=10).status_code == 404
    finally:
        stop_server(proc)
    assert not db.exists()


# -- the LLM condense step, and a server killed mid-answer ------------------------------------------------------
class _LLM(BaseHTTPRequestHandler):
    """Condense requests get a scripted rewrite; answer requests hang (the answer is never finished)."""

    rewrites: dict[str, str] = {}
    answering = threading.Event()

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        msgs = body["messages"]
        if msgs[0]["content"] != CONDENSE_SYSTEM:
            type(self).answering.set()
            time.sleep(30)
            return
        question = msgs[-1]["content"].split("Last question: ")[1].split("\n")[0]
        text = self.rewrites.get(question, question)
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def test_llm_condense_verified_and_turn_survives_a_kill(seed_index: Path, tmp_path: Path) -> None:
    _LLM.rewrites = {"他是哪所大学的教授？": "鄂尔多斯实验室主任魏飞是哪所大学的教授？",
                     "那新型研发机构呢？": TRANSFER}  # the second drops the question's own terms
    llm = ThreadingHTTPServer(("127.0.0.1", free_port()), _LLM)
    threading.Thread(target=llm.serve_forever, daemon=True).start()
    db = tmp_path / "c.sqlite3"
    proc, base = start_server(seed_index, {"RAG_LLM_BASE_URL": f"http://127.0.0.1:{llm.server_port}/v1",
                                           "RAG_CONVERSATIONS_DB": str(db), "RAG_LLM_DEADLINE": "60"})
    try:
        a = httpx.post(f"{base}/v1/answer", json={"query": "他是哪所大学的教授？", "mode": "extractive",
                                                  "history": [{"question": DIRECTOR}]}, timeout=60).json()
        assert (a["query_used"], a["rewrite"]) == ("鄂尔多斯实验室主任魏飞是哪所大学的教授？", "llm")
        assert "清华大学" in _found(a, ORDOS)
        b = httpx.post(f"{base}/v1/answer", json={"query": "那新型研发机构呢？", "mode": "extractive",
                                                  "history": [{"question": TRANSFER}]}, timeout=60).json()
        assert (b["query_used"], b["rewrite"]) == ("呼和浩特市共培育了多少家新型研发机构？", "rules")
        assert any("rule-based" in w and "新型" in w for w in b["warnings"])

        # an LLM answer that never comes: kill -9 the server while it waits; the turn is already stored
        def ask() -> None:
            try:
                httpx.post(f"{base}/v1/answer", json={"query": TRANSFER, "mode": "llm"}, timeout=60)
            except httpx.HTTPError:
                pass
        t = threading.Thread(target=ask, daemon=True)
        t.start()
        assert _LLM.answering.wait(60)
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            stop_server(proc)
        llm.shutdown()
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT question, query, status FROM turns ORDER BY created").fetchall()
    assert rows[-1] == (TRANSFER, TRANSFER, "pending")
    assert [r[2] for r in rows[:2]] == ["done", "done"]
