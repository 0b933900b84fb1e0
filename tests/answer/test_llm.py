"""LLM answers (issue 4): prompt, citation verification, OpenAI-compatible client, answer/chat/Dify endpoints.

(a) unit: prompt and citation checks on hand-made passages; the HTTP client against tiny loopback servers.
(b) `llm`: llama.cpp's OpenAI-compatible server with the 0.5B GGUF on loopback behind OUR API, and the
    official `openai` client as the chatbot against our /v1/chat/completions.
(c) degrade: the LLM URL is a closed loopback port -> passages + extractive answer + warning, HTTP 200.
(d) Dify external knowledge /retrieval shape and auth.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from rag.answer.citations import MIN_LEX, split_sentences, support, verify_citations
from rag.answer.extractive import REFUSAL
from rag.answer.llm import PROMPT_PASSAGES, SYSTEM, LLMUnavailableError, OpenAICompatGenerator, build_messages
from rag.core.errors import GeneratorError
from rag.core.types import Chunk, Hit, Sentence
from tests.conftest import free_port, start_server, stop_server

ANSWERABLE = "京蒙两地政府是什么时候签订《全面深化京蒙协作框架协议》的？"
UNANSWERABLE = "大青山實驗室的主任是誰？"


# ---------------------------------------------------------------------------------------------------------
# (a) unit: prompt and citation verification
# ---------------------------------------------------------------------------------------------------------
def _chunk(cid: int, doc: str, sents: list[str], offset: int = 0) -> Chunk:
    out, pos = [], offset
    for s in sents:
        out.append(Sentence(s, pos, pos + len(s)))
        pos += len(s) + 1
    return Chunk(cid, doc, "".join(sents), offset, pos - 1, title="", sentences=out)


P1 = _chunk(7, "a.txt", ["2023年6月，京蒙两地政府签订《全面深化京蒙协作框架协议》。",
                         "协议提出实施教育、医疗、旅游等六个倍增计划。"], offset=100)
P2 = _chunk(9, "b.txt", ["呼和浩特市科技创新发展指数排名第30位。", "全市拥有创新平台665家。"], offset=40)
HITS = [Hit(P1, 0.03, 1, 0.9), Hit(P2, 0.02, 2, 0.85)]


def test_prompt_numbers_passages_and_sets_language():
    m = build_messages("京蒙协议是什么时候签订的？", HITS)
    assert [x["role"] for x in m] == ["system", "user"]
    assert m[0]["content"] == SYSTEM["zh-Hans"] and REFUSAL["zh-Hans"] in m[0]["content"]
    assert "[n]" not in m[0]["content"] and "[1]" in m[0]["content"]  # the citation format is shown
    user = m[1]["content"]
    assert user.index("[1] 2023年6月") < user.index("[2] 呼和浩特") < user.index("问题：京蒙协议")
    assert "a.txt" not in user  # a file name is not a title
    assert SYSTEM["zh-Hant"] == build_messages("京蒙協議是什麼時候簽訂的？", HITS)[0]["content"]
    en = build_messages("When was the agreement signed?", HITS)
    assert "Answer in English" in en[0]["content"] and REFUSAL["en"] in en[0]["content"]
    assert en[1]["content"].endswith("Question: When was the agreement signed?")
    many = [Hit(P1, 0.1, i + 1) for i in range(PROMPT_PASSAGES + 3)]
    assert f"[{PROMPT_PASSAGES}] " in build_messages("问题", many)[1]["content"]
    assert f"[{PROMPT_PASSAGES + 1}] " not in build_messages("问题", many)[1]["content"]


def test_split_sentences_keeps_markers_with_their_sentence():
    s = split_sentences("协议于2023年6月签订。[1]计划有6个[1][2]。\nIt was signed in June 2023 [1]. Done.")
    assert [x[0] for x in s] == ["协议于2023年6月签订。[1]", "计划有6个[1][2]。",
                                 "It was signed in June 2023 [1].", " Done."]
    text = "甲。[1]乙！\n\n丙"
    assert all(text[a:b] == t for t, a, b in split_sentences(text))
    assert verify_citations(text, HITS).text == "甲。乙！\n\n丙"


def test_supported_citation_kept_with_quote_span():
    v = verify_citations("京蒙两地政府于2023年6月签订了《全面深化京蒙协作框架协议》[1]。", HITS)
    assert v.text == "京蒙两地政府于2023年6月签订了《全面深化京蒙协作框架协议》[1]。"
    assert not v.flagged and len(v.citations) == 1
    c = v.citations[0]
    assert (c.n, c.hit.chunk.doc_id, c.hit.chunk.chunk_id, c.supported) == (1, "a.txt", 7, True)
    assert c.quote == P1.sentences[0].text and (c.quote_start, c.quote_end) == (100, 100 + len(c.quote))
    assert c.support >= MIN_LEX


def test_wrong_passage_and_missing_passage_markers_dropped_and_flagged():
    ans = "京蒙两地政府于2023年6月签订框架协议[2]。全市拥有创新平台665家[2]。另有说法[5]。"
    v = verify_citations(ans, HITS)
    assert v.text == "京蒙两地政府于2023年6月签订框架协议。全市拥有创新平台665家[2]。另有说法。"
    assert [(c.n, c.supported) for c in v.citations] == [(2, False), (2, True)]
    assert v.citations[1].quote == "全市拥有创新平台665家。"
    assert {(f.n, f.sentence) for f in v.flagged} == {(2, "京蒙两地政府于2023年6月签订框架协议。"),
                                                      (5, "另有说法。")}
    assert v.warnings() and "[2]" in v.warnings()[0] and "[5]" in v.warnings()[0]


def test_wrong_number_is_unsupported_even_with_high_overlap():
    s = support("京蒙两地政府于2019年6月签订《全面深化京蒙协作框架协议》", P1)
    assert s.lex >= MIN_LEX and not s.numbers_ok and not s.supported and "2019" in s.reason


def test_traditional_chinese_and_marker_variants():
    ans = "全市擁有創新平台665家【2】，指數排名第30位[1, 2]。"
    v = verify_citations(ans, HITS)
    assert [(c.n, c.supported) for c in v.citations] == [(2, True), (1, False), (2, True)]
    assert v.text == "全市擁有創新平台665家[2]，指數排名第30位[2]。"
    assert v.uncited == []


def test_uncited_sentences_attributed_or_reported():
    v = verify_citations("协议于2023年6月签订[1]。全市拥有创新平台665家。这很重要。", HITS)
    assert v.text == "协议于2023年6月签订[1]。全市拥有创新平台665家。[2]这很重要。"
    assert not v.flagged and [u.sentence for u in v.uncited] == ["这很重要。"]
    assert [(f.n, f.sentence) for f in v.added] == [(2, "全市拥有创新平台665家。")]
    assert [(c.n, c.supported, c.quote) for c in v.citations][1] == (2, True, "全市拥有创新平台665家。")
    assert "not supported by any passage" in v.warnings()[0]
    assert verify_citations("全市拥有创新平台665家。", HITS, attribute=False).citations == []


def test_cross_lingual_claims_use_the_embedder(real_embedder):
    zh = _chunk(1, "c.txt", ["乌兰察布市察哈尔高新区智算项目总投资约50亿元。", "项目预计2025年建成投产。"])
    other = _chunk(2, "d.txt", ["呼和浩特市科技创新发展指数排名第30位。", "全市拥有创新平台665家。"])
    hits = [Hit(zh, 0.03, 1, 0.9), Hit(other, 0.02, 2, 0.8)]
    claim = "The intelligent computing project in the Chahar High-tech Zone involves about 5 billion yuan."
    ok = support(claim, zh, real_embedder)
    assert ok.lex < MIN_LEX and ok.cos is not None and ok.quote.text.startswith("乌兰察布")
    off = support("The plan trains astronauts for a mission to the moon.", zh, real_embedder)
    assert off.cos is not None and off.cos < ok.cos and not off.supported

    v = verify_citations(f"{claim} [1] {claim} [2]", hits, real_embedder)
    assert [(c.n, c.supported) for c in v.citations] == [(1, True), (2, False)]  # [2] is not the closest
    assert v.text == f"{claim} [1] {claim}"
    v = verify_citations(claim, hits, real_embedder)  # no marker: attributed to the closest passage
    assert v.text == f"{claim}[1]" and v.citations[0].quote.startswith("乌兰察布")
    assert verify_citations(claim, hits).citations == []  # lexical only: nothing to attribute


# ---------------------------------------------------------------------------------------------------------
# (a) unit: the HTTP client against tiny OpenAI-shaped servers on loopback
# ---------------------------------------------------------------------------------------------------------
class _Script(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions from ``server.script``: a list of (status, body or SSE events)."""

    def log_message(self, *a: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv.requests.append(body)  # type: ignore[attr-defined]
        status, payload = srv.script.pop(0) if len(srv.script) > 1 else srv.script[0]  # type: ignore[attr-defined]
        if isinstance(payload, list):  # SSE
            self.send_response(status)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for ev in payload:
                self.wfile.write(f"data: {ev if isinstance(ev, str) else json.dumps(ev)}\n\n".encode())
                self.wfile.flush()
            return
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def scripted() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Script)
    srv.script, srv.requests = [], []  # type: ignore[attr-defined]
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/v1"


def _completion(text: str) -> dict:
    msg = {"role": "assistant", "content": text}
    return {"choices": [{"index": 0, "message": msg, "finish_reason": "stop"}]}


def test_client_retries_5xx_then_succeeds(scripted):
    scripted.script[:] = [(503, {"error": "busy"}), (500, {"error": "oops"}), (200, _completion("好[1]。"))]
    g = OpenAICompatGenerator(_url(scripted), "m", api_key="k", retries=2, backoff=0.01, max_tokens=64)
    assert g.chat([{"role": "user", "content": "hi"}]) == "好[1]。"
    assert len(scripted.requests) == 3
    assert scripted.requests[0]["model"] == "m" and scripted.requests[0]["max_tokens"] == 64
    assert scripted.requests[0]["stream"] is False


def test_client_gives_up_after_retries_and_does_not_retry_4xx(scripted):
    scripted.script[:] = [(502, {"error": "bad gateway"})]
    g = OpenAICompatGenerator(_url(scripted), "m", retries=1, backoff=0.01)
    with pytest.raises(LLMUnavailableError, match="2 attempt"):
        g.chat([{"role": "user", "content": "hi"}])
    assert len(scripted.requests) == 2
    scripted.requests.clear()
    scripted.script[:] = [(400, {"error": "bad request"})]
    with pytest.raises(GeneratorError, match="HTTP 400"):
        g.chat([{"role": "user", "content": "hi"}])
    assert len(scripted.requests) == 1


def test_client_streams_sse_deltas(scripted):
    def delta(s: str) -> dict:
        return {"choices": [{"index": 0, "delta": {"content": s}, "finish_reason": None}]}

    scripted.script[:] = [(503, {"error": "busy"}),
                          (200, [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}, delta("协议"),
                                 delta("于2023年签订"), delta("[1]。"), "[DONE]"])]
    g = OpenAICompatGenerator(_url(scripted), "m", retries=2, backoff=0.01)
    assert list(g.stream_chat([{"role": "user", "content": "hi"}])) == ["协议", "于2023年签订", "[1]。"]
    assert scripted.requests[-1]["stream"] is True


def test_client_connection_refused_is_unavailable():
    g = OpenAICompatGenerator(f"http://127.0.0.1:{free_port()}/v1", "m", timeout=2, retries=1, backoff=0.01)
    with pytest.raises(LLMUnavailableError, match="ConnectError"):
        g.chat([{"role": "user", "content": "hi"}])
    with pytest.raises(LLMUnavailableError):
        list(g.stream_chat([{"role": "user", "content": "hi"}]))


# ---------------------------------------------------------------------------------------------------------
# answering orchestration with the real pipeline and a stand-in generator (records its calls)
# ---------------------------------------------------------------------------------------------------------
class Recorder:
    """Generator stand-in: answers with a fixed text (or raises) and records the prompts it got."""

    model = "recorder"

    def __init__(self, reply: str | Exception) -> None:
        self.reply = reply
        self.calls: list[list[dict]] = []

    def chat(self, messages, temperature=None, max_tokens=None):  # type: ignore[no-untyped-def]
        self.calls.append(messages)
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply

    def stream_chat(self, messages, temperature=None, max_tokens=None):  # type: ignore[no-untyped-def]
        self.calls.append(messages)
        if isinstance(self.reply, Exception):
            raise self.reply
        yield from (self.reply[i : i + 4] for i in range(0, len(self.reply), 4))


@pytest.mark.integration
def test_refusal_is_decided_before_the_llm(seed_pipeline):
    from rag.answer.answering import answer

    g = Recorder("不应调用")
    a = answer(seed_pipeline, UNANSWERABLE, 5, "llm", g)
    assert not a.answerable and a.text == "" and a.message == REFUSAL["zh-Hant"] and a.hits
    assert g.calls == [] and a.warnings == []


@pytest.mark.integration
def test_llm_answer_verified_and_degrades(seed_pipeline):
    from rag.answer.answering import answer, stream_answer

    ext = answer(seed_pipeline, ANSWERABLE, 5, "extractive")
    assert ext.answerable and ext.mode == "extractive" and ext.citations
    quote = ext.citations[0].quote.lstrip("●")
    n = next(i for i, h in enumerate(ext.hits, 1) if h.chunk.chunk_id == ext.citations[0].hit.chunk.chunk_id)
    g = Recorder(f"{quote}[{n}]")
    a = answer(seed_pipeline, ANSWERABLE, 5, "llm", g)
    assert a.mode == "llm" and a.answerable and a.text == f"{quote}[{n}]" and a.warnings == []
    assert [c.supported for c in a.citations] == [True] and a.citations[0].hit is a.hits[n - 1]
    assert "llm_ms" in a.timings and len(g.calls) == 1 and f"[{n}] " in g.calls[0][1]["content"]

    events = list(stream_answer(seed_pipeline, ANSWERABLE, 5, "llm", Recorder(f"{quote}[{n}]")))
    assert "".join(p for k, p in events if k == "token") == f"{quote}[{n}]"
    assert [k for k, _ in events][-2:] == ["citations", "done"] and events[-1][1].mode == "llm"

    for bad in (LLMUnavailableError("LLM down"), RuntimeError("boom")):
        d = answer(seed_pipeline, ANSWERABLE, 5, "llm", Recorder(bad))
        assert d.mode == "extractive" and d.text == ext.text and d.hits and len(d.warnings) == 1
    none = answer(seed_pipeline, ANSWERABLE, 5, "llm", None)
    assert none.text == ext.text and "no LLM configured" in none.warnings[0]
    made_up = answer(seed_pipeline, ANSWERABLE, 5, "llm", Recorder("火星上建成了900座基地[1]。"))
    assert made_up.mode == "extractive" and made_up.text == ext.text
    assert "no citation supported" in made_up.warnings[0]


@pytest.mark.integration
def test_llm_refusal_is_a_second_judge(seed_pipeline):
    from rag.answer.answering import answer

    a = answer(seed_pipeline, ANSWERABLE, 5, "llm", Recorder("文档中没有找到这个问题的答案。"))
    assert not a.answerable and a.mode == "llm" and a.citations == [] and a.hits and a.message
    assert "found no answer" in a.warnings[0]
    seed_pipeline.settings = seed_pipeline.settings.model_copy(update={"llm_refusal": False})
    try:
        b = answer(seed_pipeline, ANSWERABLE, 5, "llm", Recorder("文档中没有找到这个问题的答案。"))
    finally:
        seed_pipeline.settings = seed_pipeline.settings.model_copy(update={"llm_refusal": True})
    assert b.answerable and b.mode == "extractive" and b.citations  # fell back to the extractive answer


# ---------------------------------------------------------------------------------------------------------
# SSE helpers for our endpoints
# ---------------------------------------------------------------------------------------------------------
def sse_events(r: httpx.Response) -> list[tuple[str, str]]:
    out, event, data = [], "message", []
    for line in r.iter_lines():
        if not line:
            if data:
                out.append((event, "\n".join(data)))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    if data:
        out.append((event, "\n".join(data)))
    return out


def _check_answer_body(body: dict) -> None:
    assert set(body) >= {"answer", "answerable", "message", "citations", "passages", "mode", "warnings"}
    passages = {(p["doc_id"], p["chunk_id"]): p for p in body["passages"]}
    assert passages
    for c in body["citations"]:
        p = passages[(c["doc_id"], c["chunk_id"])]  # every citation points at a returned passage
        assert p["start"] <= c["quote_start"] < c["quote_end"] <= p["end"]
        if c["supported"]:
            assert f"[{c['n']}]" in body["answer"]


# ---------------------------------------------------------------------------------------------------------
# (c) degrade + (d) Dify: our server with the LLM URL on a closed loopback port
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def degraded_server(seed_index: Path) -> Iterator[str]:
    env = {"RAG_LLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1", "RAG_LLM_TIMEOUT": "5",
           "RAG_LLM_RETRIES": "1", "RAG_DIFY_API_KEY": "dify-secret"}
    proc, base = start_server(seed_index, env)
    try:
        yield base
    finally:
        stop_server(proc)


@pytest.mark.integration
def test_degrade_when_llm_unreachable(degraded_server):
    r = httpx.post(f"{degraded_server}/v1/answer", json={"query": ANSWERABLE, "mode": "llm"}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    _check_answer_body(body)
    assert body["answerable"] and body["answer"] and body["citations"] and body["mode"] == "extractive"
    assert len(body["warnings"]) == 1 and "unavailable" in body["warnings"][0]
    ext = httpx.post(f"{degraded_server}/v1/answer", json={"query": ANSWERABLE, "mode": "extractive"},
                     timeout=60).json()
    assert ext["answer"] == body["answer"] and ext["warnings"] == []

    with httpx.stream("POST", f"{degraded_server}/v1/answer", json={"query": ANSWERABLE, "stream": True},
                      timeout=60) as s:
        assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
        ev = sse_events(s)
    kinds = [k for k, _ in ev]
    assert kinds[-2:] == ["citations", "done"] and set(kinds[:-2]) == {"token"}
    done = json.loads(ev[-1][1])
    assert done["answer"] == body["answer"] and "unavailable" in done["warnings"][0]
    assert "".join(json.loads(d)["text"] for k, d in ev if k == "token") == body["answer"]

    chat = httpx.post(f"{degraded_server}/v1/chat/completions",
                      json={"model": "x", "messages": [{"role": "user", "content": ANSWERABLE}]}, timeout=60)
    assert chat.status_code == 200 and chat.json()["choices"][0]["message"]["content"] == body["answer"]
    assert chat.json()["warnings"] and chat.json()["citations"]


@pytest.mark.integration
def test_answer_endpoint_validation_and_refusal(degraded_server):
    r = httpx.post(f"{degraded_server}/v1/answer", json={"query": "  ", "mode": "llm"}, timeout=30)
    assert r.status_code == 422 and r.json()["error"] == "InvalidRequest"
    r = httpx.post(f"{degraded_server}/v1/answer", json={"query": "x", "mode": "poem"}, timeout=30)
    assert r.status_code == 422
    r = httpx.post(f"{degraded_server}/v1/chat/completions",
                   json={"messages": [{"role": "system", "content": "hi"}]}, timeout=30)
    assert r.status_code == 422 and "user message" in r.json()["message"]
    r = httpx.post(f"{degraded_server}/v1/answer", json={"query": UNANSWERABLE, "mode": "llm"}, timeout=60)
    body = r.json()
    assert r.status_code == 200 and not body["answerable"] and body["message"] == REFUSAL["zh-Hant"]
    assert body["warnings"] == [] and body["passages"]  # refused on evidence: the LLM was never called


@pytest.mark.integration
def test_dify_retrieval(degraded_server):
    body = {"knowledge_id": "policies", "query": ANSWERABLE,
            "retrieval_setting": {"top_k": 3, "score_threshold": 0.5}}
    auth = {"Authorization": "Bearer dify-secret"}
    r = httpx.post(f"{degraded_server}/retrieval", json=body, headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    recs = r.json()["records"]
    assert 1 <= len(recs) <= 3
    for x in recs:
        assert set(x) == {"content", "score", "title", "metadata"}
        assert isinstance(x["content"], str) and x["content"] and 0.5 <= x["score"] <= 1 and x["title"]
        assert x["metadata"]["doc_id"].endswith(".txt")
    assert "2023年6月" in recs[0]["content"]
    search = httpx.post(f"{degraded_server}/v1/search", json={"query": ANSWERABLE, "top_k": 3},
                        timeout=30).json()
    assert [x["score"] for x in recs] == [round(p["dense_score"], 4) for p in search["results"]][: len(recs)]

    high = {**body, "retrieval_setting": {"top_k": 3, "score_threshold": 0.99}}
    r = httpx.post(f"{degraded_server}/retrieval", json=high, headers=auth, timeout=30)
    assert r.json()["records"] == []
    r = httpx.post(f"{degraded_server}/retrieval", json=body, timeout=30)
    assert r.status_code == 403 and r.json()["error_code"] == 1001
    r = httpx.post(f"{degraded_server}/retrieval", json=body, headers={"Authorization": "Bearer nope"},
                   timeout=30)
    assert r.status_code == 403 and r.json()["error_code"] == 1002


@pytest.mark.integration
def test_no_llm_configured_warns(server):
    r = httpx.post(f"{server}/v1/answer", json={"query": ANSWERABLE, "mode": "llm"}, timeout=60)
    assert r.status_code == 200
    body = r.json()
    if "no LLM configured" not in " ".join(body["warnings"]):  # RAG_LLM_BASE_URL set in this environment
        pytest.skip("an LLM is configured in the environment")
    assert body["mode"] == "extractive" and body["answer"]


# ---------------------------------------------------------------------------------------------------------
# (b) a real OpenAI-compatible LLM server (llama.cpp, 0.5B GGUF) behind our API; openai client as chatbot
# ---------------------------------------------------------------------------------------------------------
def _llm_skip_reason() -> str:
    from embeddings.fetch_llm import is_installed

    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python not installed: run `make llm-install`"
    if not is_installed("0.5b"):
        return "0.5B GGUF not installed: run `make llm-install LLM_SIZE=0.5b`"
    if importlib.util.find_spec("openai") is None:
        return "openai client not installed: pip install openai"
    return ""


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if reason := _llm_skip_reason():
        pytest.skip(reason)
    from embeddings.fetch_llm import MODELS, gguf_path
    from rag.answer.llm import LlamaServer

    log = tmp_path_factory.mktemp("llama") / "server.log"
    srv = LlamaServer(gguf_path("0.5b"), port=0, alias=MODELS["0.5b"].alias, log_path=log)
    srv.start(wait=180)
    try:
        yield srv.base_url
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def llm_server(llama: str, seed_index: Path) -> Iterator[str]:
    env = {"RAG_LLM_BASE_URL": llama, "RAG_LLM_MODEL": "qwen2.5-0.5b-instruct", "RAG_LLM_TIMEOUT": "120"}
    proc, base = start_server(seed_index, env)
    try:
        yield base
    finally:
        stop_server(proc)


LLM_QUESTIONS = [ANSWERABLE, "內蒙古立足資源稟賦打造了多少個產業集群和多少條重要產業鏈？"]


@pytest.mark.llm
@pytest.mark.integration
def test_llm_answer_endpoint(llm_server):
    modes = []
    for q in LLM_QUESTIONS:
        r = httpx.post(f"{llm_server}/v1/answer", json={"query": q, "mode": "llm"}, timeout=180)
        assert r.status_code == 200, r.text
        body = r.json()
        _check_answer_body(body)
        assert body["answerable"] and body["answer"] and body["citations"]
        assert not any("unavailable" in w for w in body["warnings"])
        modes.append(body["mode"])
        if body["mode"] == "llm":
            assert "llm_ms" in body["timings"] and any(c["supported"] for c in body["citations"])
    assert "llm" in modes, "the LLM answered none of the questions with a supported citation"


@pytest.mark.llm
@pytest.mark.integration
def test_openai_client_against_our_chat_endpoint(llm_server):
    from openai import OpenAI

    client = OpenAI(base_url=f"{llm_server}/v1", api_key="unused", timeout=180, max_retries=0)
    assert "qwen2.5-0.5b-instruct" in [m.id for m in client.models.list().data]
    search = httpx.post(f"{llm_server}/v1/search", json={"query": ANSWERABLE, "top_k": 5}, timeout=30).json()
    passages = search["results"]

    resp = client.chat.completions.create(model="qwen2.5-0.5b-instruct", temperature=0, max_tokens=200,
                                          messages=[{"role": "system", "content": "You are helpful."},
                                                    {"role": "user", "content": ANSWERABLE}])
    assert resp.object == "chat.completion" and resp.choices[0].message.role == "assistant"
    content = resp.choices[0].message.content
    assert content and resp.choices[0].finish_reason == "stop"
    cits = resp.model_extra["citations"]
    assert cits and resp.model_extra["answerable"] is True
    for c in cits:  # each citation points at the retrieved passages (n = position for LLM answers)
        p = passages[c["n"] - 1] if resp.model_extra["mode"] == "llm" else None
        match = [x for x in passages if (x["doc_id"], x["chunk_id"]) == (c["doc_id"], c["chunk_id"])]
        assert match and match[0]["start"] <= c["quote_start"] < c["quote_end"] <= match[0]["end"]
        if p is not None:
            assert (p["doc_id"], p["chunk_id"]) == (c["doc_id"], c["chunk_id"])
        if c["supported"]:
            assert f"[{c['n']}]" in content

    chunks = list(client.chat.completions.create(
        model="qwen2.5-0.5b-instruct", temperature=0, max_tokens=200, stream=True,
        messages=[{"role": "user", "content": ANSWERABLE}]))
    assert chunks and all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.strip()
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and last.model_extra["citations"]
    assert all(c.model_extra.get("citations") is None for c in chunks[:-1])

    r = httpx.post(f"{llm_server}/v1/chat/completions", timeout=180,
                   json={"model": "m", "stream": True,
                         "messages": [{"role": "user", "content": UNANSWERABLE}]})
    lines = [x for x in r.text.split("\n") if x.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    final = json.loads(lines[-2][6:])
    assert final["answerable"] is False and final["citations"] == []
    assert "".join(json.loads(x[6:])["choices"][0]["delta"].get("content", "") for x in lines[:-1]) \
        == REFUSAL["zh-Hant"]


@pytest.mark.llm
@pytest.mark.integration
def test_llm_answer_streaming_events(llm_server):
    req = {"query": ANSWERABLE, "mode": "llm", "stream": True}
    with httpx.stream("POST", f"{llm_server}/v1/answer", json=req, timeout=180) as s:
        assert s.status_code == 200
        ev = sse_events(s)
    kinds = [k for k, _ in ev]
    assert kinds.count("done") == 1 and kinds[-2:] == ["citations", "done"] and kinds.count("token") >= 2
    done = json.loads(ev[-1][1])
    _check_answer_body(done)
    assert done["answerable"] and done["answer"]
    if done["mode"] == "llm":
        assert "first_token_ms" in done["timings"]
        streamed = "".join(json.loads(d)["text"] for k, d in ev if k == "token")
        assert streamed.startswith(done["answer"][:5])
