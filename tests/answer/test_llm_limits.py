"""LLM limits (issue 21, item 5): a total deadline per call, a concurrency limit of its own, a cap on the reply
size and on citations, streams without ``[DONE]`` marked incomplete, warnings that never name the LLM's URL.

The LLM is a tiny hostile HTTP server on 127.0.0.1 started here (raw sockets in threads): it accepts and never
answers, drips the status line or the body a byte at a time, streams tokens for ever, sends a reply of
megabytes, or ends a stream without ``[DONE]``. Deadlines are 2 s, so every test takes seconds.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import numpy as np
import pytest

from rag.answer import answering
from rag.answer.llm import LLMBusyError, LLMReplyError, LLMUnavailableError, OpenAICompatGenerator
from rag.core.errors import GeneratorError
from rag.core.types import Answer, Chunk, Hit, Sentence

DEADLINE = 2.0
SLACK = 1.0  # scheduling on a busy machine
MSG = [{"role": "user", "content": "京蒙协议是什么时候签订的？"}]

Behaviour = Callable[[socket.socket, threading.Event], None]


# --- hostile servers -----------------------------------------------------------------------------------------
class Hostile:
    """Reads one HTTP request per connection, then runs ``behave(sock, stop)``; ``stop`` is set on close."""

    def __init__(self, behave: Behaviour) -> None:
        self.stop = threading.Event()
        self.requests = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    got = sock.recv(65536)
                    if not got:
                        return
                    data += got
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += sock.recv(65536)
                outer.requests += 1
                try:
                    behave(sock, outer.stop)
                except OSError:  # the client hung up: what these tests want
                    pass

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile() -> Iterator[Callable[[Behaviour], Hostile]]:
    servers: list[Hostile] = []

    def start(behave: Behaviour) -> Hostile:
        servers.append(Hostile(behave))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def silent(sock: socket.socket, stop: threading.Event) -> None:
    stop.wait(30)


def drip_status(sock: socket.socket, stop: threading.Event) -> None:
    for b in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 100:
        if stop.wait(0.3):
            return
        sock.sendall(bytes([b]))


def _sse_head(sock: socket.socket) -> None:
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")


def _delta(text: str) -> bytes:
    return f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': text}}]})}\n\n".encode()


def drip_body(sock: socket.socket, stop: threading.Event) -> None:
    """Non-streaming: a promised 100 kB JSON body, one byte every 0.3 s."""
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    for b in b'{"choices": [{"message": {"content": "' + b"x" * 99000:
        if stop.wait(0.3):
            return
        sock.sendall(bytes([b]))


def tokens_forever(sock: socket.socket, stop: threading.Event) -> None:
    _sse_head(sock)
    while not stop.wait(0.2):
        sock.sendall(_delta("协议"))


def no_done(sock: socket.socket, stop: threading.Event) -> None:
    _sse_head(sock)
    for t in ("2023年6月，", "京蒙两地政府签订", "《全面深化京蒙协作框架协议》[1]。"):
        sock.sendall(_delta(t))
    # the connection closes here: no `data: [DONE]`


def huge_json(sock: socket.socket, stop: threading.Event) -> None:
    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "甲[1]。" * 2_000_000}}]},
                      ensure_ascii=False).encode()
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    sock.sendall(body)


def huge_stream(sock: socket.socket, stop: threading.Event) -> None:
    _sse_head(sock)
    event = _delta("京蒙两地政府签订框架协议[1]。" * 50)
    for _ in range(20_000):  # ~40 MB unless the client stops reading
        if stop.is_set():
            return
        sock.sendall(event)


def one_huge_line(sock: socket.socket, stop: threading.Event) -> None:
    _sse_head(sock)
    sock.sendall(b"data: " + b"x" * (8 << 20))


def busy_503(sock: socket.socket, stop: threading.Event) -> None:
    sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy")


def gen(srv: Hostile, **kw: object) -> OpenAICompatGenerator:
    args: dict = {"timeout": 30, "retries": 2, "backoff": 0.2, "deadline": DEADLINE, **kw}
    return OpenAICompatGenerator(srv.url, "m", **args)


def timed(fn: Callable[[], object]) -> tuple[float, BaseException | None]:
    t0 = time.monotonic()
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - returned for the assertions
        return time.monotonic() - t0, e
    return time.monotonic() - t0, None


def timed_together(*fns: Callable[[], object]) -> list[tuple[float, BaseException | None]]:
    """``timed`` for each, all at once (the deadline tests wait the deadline out: in parallel, once)."""
    out: list[tuple[float, BaseException | None]] = [(0.0, None)] * len(fns)

    def run(i: int) -> None:
        out[i] = timed(fns[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def assert_private(e: BaseException | str, srv: Hostile) -> None:
    text = str(e)
    assert "127.0.0.1" not in text and str(srv.port) not in text and "http://" not in text, text


# --- the deadline -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("behave", [silent, drip_status, drip_body], ids=["silent", "drip-status", "drip-body"])
def test_deadline_holds_for_a_silent_or_dripping_server(hostile, behave):
    srv = hostile(behave)
    g = gen(srv)
    for took, err in timed_together(lambda: g.chat(MSG), lambda: list(g.stream_chat(MSG))):
        assert isinstance(err, LLMUnavailableError), err
        assert took < DEADLINE + SLACK, f"took {took:.1f} s with a {DEADLINE} s deadline"
        assert "deadline" in str(err)
        assert_private(err, srv)
    assert g.deadline_enforced  # the deadline sits under httpx's connections (private hook still there)


def test_deadline_bounds_a_stream_that_never_ends(hostile):
    srv = hostile(tokens_forever)
    got: list[str] = []
    took, err = timed(lambda: got.extend(gen(srv).stream_chat(MSG)))
    assert got and set(got) == {"协议"}  # tokens did arrive, every 0.2 s
    assert isinstance(err, LLMUnavailableError) and "deadline" in str(err)
    assert took < DEADLINE + SLACK


def test_retries_fit_within_the_deadline(hostile):
    srv = hostile(busy_503)
    g = gen(srv, retries=6, backoff=0.5)  # 0.5 + 1 + 2 + 4 ... s of backoff: only the first fit in 2 s
    took, err = timed(lambda: g.chat(MSG))
    assert isinstance(err, LLMUnavailableError) and "no time left for a retry" in str(err)
    assert took < DEADLINE + SLACK and 2 <= srv.requests <= 3
    assert "HTTP 503" in str(err)


# --- the concurrency limit ----------------------------------------------------------------------------------
def test_concurrency_limit_refuses_fast_when_every_slot_is_taken(hostile):
    srv = hostile(silent)
    g = gen(srv, concurrency=1, slot_wait=0.3, deadline=3)
    holder = threading.Thread(target=lambda: pytest.raises(LLMUnavailableError, g.chat, MSG), daemon=True)
    holder.start()
    time.sleep(0.3)
    took, err = timed(lambda: g.chat(MSG))
    assert isinstance(err, LLMBusyError) and "busy" in str(err) and "RAG_LLM_CONCURRENCY" in str(err)
    assert took < 0.3 + SLACK
    assert srv.requests == 1  # the refused call never reached the LLM
    holder.join(5)
    assert g._slots.in_use == 0


def test_a_stalled_stream_reader_loses_its_slot_at_the_deadline(hostile):
    srv = hostile(tokens_forever)
    g = gen(srv, concurrency=1, slot_wait=0.1)
    stalled = g.stream_chat(MSG)
    assert next(stalled) == "协议"  # holds the only slot, then its reader stops reading
    assert isinstance(timed(lambda: g.chat(MSG))[1], LLMBusyError)
    time.sleep(DEADLINE + 0.1)
    fresh = g.stream_chat(MSG)
    assert next(fresh) == "协议"  # the slot came back when the stalled call's deadline passed
    fresh.close()
    with pytest.raises(LLMUnavailableError, match="deadline"):
        list(stalled)
    stalled.close()


# --- reply size, incomplete streams ------------------------------------------------------------------------
@pytest.mark.parametrize("behave,stream", [(huge_json, False), (huge_stream, True), (one_huge_line, True)],
                         ids=["json-12MB", "stream-40MB", "one-8MB-line"])
def test_reply_over_the_cap_stops_reading(hostile, behave, stream):
    srv = hostile(behave)
    g = gen(srv, max_reply_chars=1000, deadline=10)
    got: list[str] = []
    took, err = timed((lambda: got.extend(g.stream_chat(MSG))) if stream else (lambda: g.chat(MSG)))
    assert isinstance(err, LLMReplyError) and "exceeded 1000 characters" in str(err), err
    assert sum(map(len, got)) <= 1000
    assert took < 3  # stopped reading: not the whole reply, not the deadline


def test_stream_without_done_is_incomplete(hostile):
    srv = hostile(no_done)
    got: list[str] = []
    with pytest.raises(LLMReplyError, match=r"without \[DONE\]"):
        got.extend(gen(srv).stream_chat(MSG))
    assert "".join(got) == "2023年6月，京蒙两地政府签订《全面深化京蒙协作框架协议》[1]。"


def test_error_messages_do_not_name_the_endpoint(hostile):
    def echo_400(sock: socket.socket, stop: threading.Event) -> None:
        body = f"bad request for http://127.0.0.1:{srv.port}/v1/chat/completions".encode()
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    srv = hostile(echo_400)
    with pytest.raises(GeneratorError, match="HTTP 400") as e:
        gen(srv).chat(MSG)
    assert_private(e.value, srv)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    g = OpenAICompatGenerator(f"http://127.0.0.1:{port}/v1", "m", retries=0, deadline=DEADLINE)
    with pytest.raises(LLMUnavailableError) as e:
        g.chat(MSG)
    assert "127.0.0.1" not in str(e.value) and str(port) not in str(e.value)


# --- answering: every failure above degrades to the extractive answer with a warning --------------------------
def _chunk(cid: int, doc: str, sents: list[str]) -> Chunk:
    out, pos = [], 0
    for s in sents:
        out.append(Sentence(s, pos, pos + len(s)))
        pos += len(s)
    return Chunk(cid, doc, "".join(sents), 0, pos, sentences=out)


P1 = _chunk(7, "a.txt", ["2023年6月，京蒙两地政府签订《全面深化京蒙协作框架协议》。",
                         "协议提出实施教育、医疗、旅游等六个倍增计划。"])
HITS = [Hit(P1, 0.03, 1, 0.9)]
EXTRACTIVE = "2023年6月，京蒙两地政府签订《全面深化京蒙协作框架协议》。[1]"


class StubPipeline:
    """What rag.answer.answering needs of a pipeline: one hit and an answerable extractive answer."""

    settings = SimpleNamespace(llm_refusal=True)
    embedder = None

    def search(self, query, top_k, mode, timings=None, filters=None):  # type: ignore[no-untyped-def]
        return HITS, np.zeros(4, dtype=np.float32)

    def extractive(self, q, qvec, hits, timings):  # type: ignore[no-untyped-def]
        return Answer(EXTRACTIVE, True, [], hits)


@pytest.mark.parametrize("behave,why", [(silent, "deadline"), (drip_body, "deadline"), (no_done, "[DONE]"),
                                        (huge_json, "exceeded"), (huge_stream, "exceeded")],
                         ids=["silent", "drip", "no-done", "huge-json", "huge-stream"])
def test_answers_degrade_with_a_warning(hostile, behave, why):
    srv = hostile(behave)
    g = gen(srv, max_reply_chars=1000)
    q = "京蒙协议是什么时候签订的？"
    out: dict[str, object] = {}
    timings = timed_together(lambda: out.update(a=answering.answer(StubPipeline(), q, 5, "llm", g)),
                             lambda: out.update(ev=list(answering.stream_answer(StubPipeline(), q, 5, "llm", g))))
    assert all(err is None for _, err in timings), timings
    a, events = out["a"], out["ev"]
    assert isinstance(a, Answer) and isinstance(events, list)
    done = events[-1][1]
    assert [k for k, _ in events][-2:] == ["citations", "done"]
    for x in (a, done):
        assert x.mode == "extractive" and x.answerable and x.text == EXTRACTIVE
        assert len(x.warnings) == 1 and "returned the extractive answer" in x.warnings[0]
        assert_private(x.warnings[0], srv)
    assert why in done.warnings[0] or why in a.warnings[0]
    assert max(t for t, _ in timings) < DEADLINE + SLACK


def test_answer_degrades_when_the_llm_is_busy(hostile):
    srv = hostile(silent)
    g = gen(srv, concurrency=1, slot_wait=0.2)
    holder = threading.Thread(target=lambda: pytest.raises(LLMUnavailableError, g.chat, MSG), daemon=True)
    holder.start()
    time.sleep(0.2)
    a = answering.answer(StubPipeline(), "京蒙协议是什么时候签订的？", 5, "llm", g)
    assert a.mode == "extractive" and a.text == EXTRACTIVE and "busy" in a.warnings[0]
    holder.join(5)


class Fixed:
    """A generator that answers with one fixed text."""

    model = "fixed"

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def chat(self, messages, temperature=None, max_tokens=None):  # type: ignore[no-untyped-def]
        return self.reply


def test_citations_are_capped():
    reply = "2023年6月，京蒙两地政府签订《全面深化京蒙协作框架协议》[1]。" * 120
    a = answering.answer(StubPipeline(), "京蒙协议是什么时候签订的？", 5, "llm", Fixed(reply))
    assert a.mode == "llm" and a.answerable
    assert len(a.citations) == answering.MAX_CITATIONS
    assert any("120 citations" in w for w in a.warnings)
