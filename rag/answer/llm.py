"""LLM answer generation over any OpenAI-compatible chat endpoint (httpx), including the local one.

The local LLM is llama.cpp's OpenAI-compatible server (``python -m llama_cpp.server``, started by
``make llm-serve`` or :class:`LlamaServer`), so one client serves both a hosted API and the local model.

Refusal is not the LLM's call: rag/answer/answering.py asks the extractive generator's retrieval-evidence check
first and only calls the LLM for answerable questions. Citations in the LLM's text are checked in code
(rag/answer/citations.py).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpcore
import httpx
import numpy as np

from rag.answer.extractive import REFUSAL, language
from rag.core.errors import GeneratorError
from rag.core.text import normalize
from rag.core.types import Answer, Hit

logger = logging.getLogger(__name__)

# passages numbered [1]..[n] in the prompt: hits[n-1] is passage n. Prompt tokens dominate the latency of a
# small local model on CPU (~40 prompt tokens/s on one busy core: 5 passages ~ 900 tokens ~ 20 s).
PROMPT_PASSAGES = 4
PASSAGE_CHARS = 900  # each passage is cut to this many characters (the 4k-token context of small models)
DEFAULT_TEMPERATURE = 0.1
DEFAULT_MAX_TOKENS = 400
LOCAL_BASE_URL = "http://127.0.0.1:8081/v1"

SYSTEM = {
    "zh-Hans": (
        "你是政策文件问答助手。只根据用户给出的编号资料回答问题，不要使用资料以外的知识。\n"
        "规则：\n"
        "1. 用简体中文回答。\n"
        "2. 每句话末尾用方括号编号标注依据的资料，例如 [1] 或 [2][3]；只引用确实包含该信息的资料。\n"
        f"3. 如果资料中没有答案，只回答：“{REFUSAL['zh-Hans']}”\n"
        "4. 回答简洁，不超过4句话；数字、日期、名称照资料原文写。"
    ),
    "zh-Hant": (
        "你是政策文件問答助手。只根據使用者給出的編號資料回答問題，不要使用資料以外的知識。\n"
        "規則：\n"
        "1. 用繁體中文回答。\n"
        "2. 每句話末尾用方括號編號標註依據的資料，例如 [1] 或 [2][3]；只引用確實包含該資訊的資料。\n"
        f"3. 如果資料中沒有答案，只回答：「{REFUSAL['zh-Hant']}」\n"
        "4. 回答簡潔，不超過4句話；數字、日期、名稱照資料原文寫。"
    ),
    "en": (
        "You answer questions about policy documents using only the numbered passages the user gives. "
        "Do not use any other knowledge.\n"
        "Rules:\n"
        "1. Answer in English, even though the passages may be in Chinese.\n"
        "2. End every sentence with the number of the passage it comes from in square brackets, "
        "e.g. [1] or [2][3]; cite only passages that contain the information.\n"
        f"3. If the passages do not contain the answer, reply only: \"{REFUSAL['en']}\"\n"
        "4. Be brief: at most 4 sentences; copy numbers, dates and names exactly."
    ),
}
USER = {
    "zh-Hans": "资料：\n{passages}\n\n问题：{query}",
    "zh-Hant": "資料：\n{passages}\n\n問題：{query}",
    "en": "Passages:\n{passages}\n\nQuestion: {query}",
}


def format_passages(hits: list[Hit], limit: int = PROMPT_PASSAGES, chars: int = PASSAGE_CHARS) -> str:
    """Numbered passages ``[1] 《title》 section\\ntext``: the number is the hit's position (1-based)."""
    blocks = []
    for n, h in enumerate(hits[:limit], 1):
        c = h.chunk
        title = f"《{c.title}》" if c.title and c.title != c.doc_id else ""
        head = " ".join(x for x in (title, c.section) if x)
        text = c.text if len(c.text) <= chars else c.text[:chars] + "…"
        blocks.append(f"[{n}] {head}\n{text}" if head else f"[{n}] {text}")
    return "\n\n".join(blocks)


def build_messages(query: str, hits: list[Hit], lang: str | None = None,
                   limit: int = PROMPT_PASSAGES) -> list[dict[str, str]]:
    """Chat messages: system rules in the question's language + numbered passages and the question."""
    lang = lang or language(query)
    return [{"role": "system", "content": SYSTEM[lang]},
            {"role": "user",
             "content": USER[lang].format(passages=format_passages(hits, limit), query=query)}]


_REFUSAL_KEYS = ("没有找到", "没有相关", "未找到", "未提及", "没有提及", "没有提到", "无法回答", "无法从",
                 "do not contain", "does not contain", "not contain", "no information", "not mentioned",
                 "cannot answer", "can't answer", "not provided")


def is_refusal(text: str) -> bool:
    """The LLM said the passages do not hold the answer (checked on text without citation markers)."""
    t = normalize(text)
    return any(k in t for k in _REFUSAL_KEYS)


class LLMUnavailableError(GeneratorError):
    """The LLM endpoint timed out, refused the connection or answered 5xx after the retries."""


class LLMBusyError(LLMUnavailableError):
    """Every LLM slot (``concurrency``) stayed taken for the whole short wait."""


class LLMReplyError(GeneratorError):
    """The LLM's reply cannot be used whole: over the size cap, or a stream that ended without ``[DONE]``."""


def _retryable(status: int) -> bool:
    return status >= 500 or status == 429


# -- the per-request deadline, enforced on every socket operation ---------------------------------------------
# httpx timeouts are per operation (connect, each read): a server that drips a byte at a time never trips
# them. The deadline of the request being served on this thread bounds every connect, read and write of the
# client's connections (the network backend below), so it holds while headers, body or SSE events drip.
_DEADLINE = threading.local()


@contextmanager
def _deadline_scope(deadline: float) -> Iterator[None]:
    previous = getattr(_DEADLINE, "at", None)
    _DEADLINE.at = deadline
    try:
        yield
    finally:
        _DEADLINE.at = previous


def _bounded(timeout: float | None, exc: type[Exception]) -> float | None:
    at = getattr(_DEADLINE, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise exc("LLM request deadline reached")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     _bounded(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_tcp(host, port, _bounded(timeout, httpcore.ConnectTimeout),
                                                       local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, _bounded(timeout, httpcore.ConnectTimeout),
                                                               socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _enforce_deadlines(client: httpx.Client) -> bool:
    """Put the deadline backend under the client's connection pools (its own transport and any proxy
    mounts). httpx has no public hook for the network backend, hence the private attributes; False when they
    are missing (the deadline is then checked between reads only) - tests/answer/test_llm_limits.py notices."""
    done = False
    for t in [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]:
        pool = getattr(t, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is None:
            continue
        if not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
        done = True
    return done


class _Slots:
    """At most ``n`` LLM calls at once. A slot is held until its call ends or its deadline passes, whichever
    comes first, so a stream whose reader stalls cannot keep one."""

    def __init__(self, n: int) -> None:
        self.n = max(1, n)
        self._held: dict[int, float] = {}  # ticket -> deadline
        self._tickets = 0
        self._cond = threading.Condition()

    def acquire(self, wait: float, deadline: float) -> int | None:
        end = time.monotonic() + max(0.0, wait)
        with self._cond:
            while True:
                now = time.monotonic()
                for k in [k for k, d in self._held.items() if d <= now]:
                    del self._held[k]
                if len(self._held) < self.n:
                    self._tickets += 1
                    self._held[self._tickets] = deadline
                    return self._tickets
                if now >= end:
                    return None
                self._cond.wait(max(0.001, min(end, *self._held.values()) - now))

    def release(self, ticket: int) -> None:
        with self._cond:
            if self._held.pop(ticket, None) is not None:
                self._cond.notify()

    @property
    def in_use(self) -> int:
        with self._cond:
            now = time.monotonic()
            return sum(1 for d in self._held.values() if d > now)


class OpenAICompatGenerator:
    """Chat completions against ``{base_url}/chat/completions`` (base_url includes the version, e.g. /v1).

    Retries ``retries`` times with exponential backoff on connection errors, timeouts, 5xx and 429; then
    raises :class:`LLMUnavailableError`. Other 4xx raise :class:`GeneratorError` at once.

    Limits (issue 21): each call has a total ``deadline`` (seconds: slot wait, connect, first token and the
    whole reply, retries and backoff included; default ``timeout`` x attempts + backoff) enforced on every
    socket operation; at most ``concurrency`` calls run at once, a call that finds no free slot within
    ``slot_wait`` seconds raises :class:`LLMBusyError`; a reply over ``max_reply_chars`` characters stops
    the reading and raises :class:`LLMReplyError`, as does a stream that ends without ``[DONE]``. Error
    messages (shown to users as warnings) never name the endpoint; the log does.
    """

    name = "llm"

    def __init__(self, base_url: str, model: str, api_key: str = "", timeout: float = 30.0, retries: int = 2,
                 backoff: float = 0.5, temperature: float = DEFAULT_TEMPERATURE,
                 max_tokens: int = DEFAULT_MAX_TOKENS, client: httpx.Client | None = None,
                 deadline: float | None = None, concurrency: int = 4, slot_wait: float = 2.0,
                 max_reply_chars: int = 20000) -> None:
        if not base_url:
            raise GeneratorError("LLM base URL is empty: set RAG_LLM_BASE_URL (e.g. http://127.0.0.1:8081/v1)")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.deadline = float(deadline) if deadline is not None else (
            timeout * (self.retries + 1) + sum(backoff * 2**i for i in range(self.retries)))
        self.slot_wait = max(0.0, slot_wait)
        self.max_reply_chars = max(1, max_reply_chars)
        self._slots = _Slots(concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                                              headers=headers)
        self.deadline_enforced = _enforce_deadlines(self._client)
        if not self.deadline_enforced:
            logger.warning("LLM deadline checked between reads only: httpx internals changed")
        url = httpx.URL(self.base_url)
        self._secrets = sorted({self.base_url, f"{url.host}:{url.port}" if url.port else url.host, url.host},
                               key=len, reverse=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, model={self.model!r})"

    def close(self) -> None:
        self._client.close()

    @property
    def concurrency(self) -> int:
        return self._slots.n

    # -- HTTP ---------------------------------------------------------------------------------------------
    def _body(self, messages: list[dict[str, Any]], stream: bool, temperature: float | None,
              max_tokens: int | None) -> dict[str, Any]:
        return {"model": self.model, "messages": messages, "stream": stream,
                "temperature": self.temperature if temperature is None else temperature,
                "max_tokens": self.max_tokens if max_tokens is None else max_tokens}

    def _public(self, text: str) -> str:
        """``text`` without the endpoint's URL, host or port (messages become user-visible warnings)."""
        for s in self._secrets:
            if s:
                text = text.replace(s, "<llm>")
        return text

    def _pause(self, attempt: int, deadline: float) -> bool:
        """Backoff before a retry; False when the retry would not start before the deadline."""
        delay = self.backoff * (2**attempt)
        if time.monotonic() + delay >= deadline:
            return False
        time.sleep(delay)
        return True

    def _fail(self, what: str, attempts: int) -> LLMUnavailableError:
        logger.warning("LLM at %s unavailable after %d attempt(s): %s", self.base_url, attempts, what)
        return LLMUnavailableError(self._public(f"LLM unavailable after {attempts} attempt(s): {what}"))

    def _timeout(self, e: Exception, deadline: float) -> str:
        if time.monotonic() >= deadline - 0.05:
            return f"no complete answer within the {self.deadline:g} s deadline (RAG_LLM_DEADLINE)"
        return f"timeout after {self.timeout:g}s ({type(e).__name__})"

    def _too_long(self) -> LLMReplyError:
        return LLMReplyError(f"the LLM reply exceeded {self.max_reply_chars} characters "
                             "(RAG_LLM_MAX_REPLY_CHARS); reading stopped")

    @contextmanager
    def _slot(self, deadline: float) -> Iterator[None]:
        ticket = self._slots.acquire(min(self.slot_wait, deadline - time.monotonic()), deadline)
        if ticket is None:
            raise LLMBusyError(f"LLM busy: {self._slots.n} answer(s) already being generated "
                               f"(RAG_LLM_CONCURRENCY) and no slot freed within {self.slot_wait:g} s")
        try:
            yield
        finally:
            self._slots.release(ticket)

    def _open(self, stack: ExitStack, body: dict[str, Any], deadline: float, stream: bool) -> httpx.Response:
        """Send the request and read the status line and headers, all within the deadline."""
        if time.monotonic() >= deadline:
            raise httpx.ConnectTimeout("LLM request deadline reached")
        headers = {"Accept": "text/event-stream"} if stream else None
        with _deadline_scope(deadline):
            return stack.enter_context(self._client.stream("POST", f"{self.base_url}/chat/completions",
                                                           json=body, headers=headers))

    def _chunks(self, r: httpx.Response, deadline: float) -> Iterator[bytes]:
        """The (decoded) body, each read bounded by the deadline, which is also checked between reads."""
        it = r.iter_bytes()
        while True:
            if time.monotonic() >= deadline:
                raise httpx.ReadTimeout("LLM request deadline reached")
            with _deadline_scope(deadline):
                try:
                    chunk = next(it)
                except StopIteration:
                    return
            yield chunk

    def _read(self, r: httpx.Response, deadline: float, cap: int) -> bytes | None:
        """The whole body, or ``None`` as soon as it grows over ``cap`` bytes (reading stops there)."""
        buf = bytearray()
        for chunk in self._chunks(r, deadline):
            buf += chunk
            if len(buf) > cap:
                return None
        return bytes(buf)

    def _error_text(self, r: httpx.Response, deadline: float, n: int) -> str:
        buf = bytearray()
        try:
            for chunk in self._chunks(r, deadline):
                buf += chunk
                if len(buf) >= 4096:
                    break
        except httpx.HTTPError:
            pass
        return self._public(bytes(buf[:4096]).decode("utf-8", "replace")[:n])

    def _lines(self, r: httpx.Response, deadline: float) -> Iterator[str]:
        """SSE lines, capped: total bytes and the length of one line (a reply with no newline is cut off)."""
        total, line_cap = 0, self.max_reply_chars * 6 + 65536
        stream_cap = self.max_reply_chars * 64 + (1 << 20)  # ~100-300 bytes of JSON per token event
        buf = b""
        for chunk in self._chunks(r, deadline):
            total += len(chunk)
            if total > stream_cap:
                raise self._too_long()
            *lines, buf = (buf + chunk).split(b"\n")
            if len(buf) > line_cap:
                raise self._too_long()
            for line in lines:
                yield line.rstrip(b"\r").decode("utf-8", "replace")
        if buf:
            yield buf.rstrip(b"\r").decode("utf-8", "replace")

    def chat(self, messages: list[dict[str, Any]], temperature: float | None = None,
             max_tokens: int | None = None) -> str:
        """One non-streaming completion; returns the assistant text."""
        deadline = time.monotonic() + self.deadline
        with self._slot(deadline):
            return self._chat(self._body(messages, False, temperature, max_tokens), deadline)

    def _chat(self, body: dict[str, Any], deadline: float) -> str:
        last, attempts = "", 0
        for attempt in range(self.retries + 1):
            if attempt and not self._pause(attempt - 1, deadline):
                last += f"; no time left for a retry within the {self.deadline:g} s deadline"
                break
            attempts += 1
            try:
                with ExitStack() as stack:
                    r = self._open(stack, body, deadline, stream=False)
                    if _retryable(r.status_code):
                        last = f"HTTP {r.status_code}: {self._error_text(r, deadline, 200)}"
                        continue
                    if r.status_code >= 400:
                        raise GeneratorError(f"LLM rejected the request: HTTP {r.status_code}: "
                                             f"{self._error_text(r, deadline, 300)}")
                    # JSON may spell each character as a 6-byte \uXXXX escape
                    raw = self._read(r, deadline, self.max_reply_chars * 6 + 65536)
            except httpx.TimeoutException as e:
                last = self._timeout(e, deadline)
                continue
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if raw is None:
                raise self._too_long()
            try:
                text = str(json.loads(raw)["choices"][0]["message"]["content"] or "")
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise GeneratorError(self._public("LLM sent an unexpected response: "
                                                  + raw[:300].decode("utf-8", "replace"))) from e
            if len(text) > self.max_reply_chars:
                raise self._too_long()
            return text
        raise self._fail(last, attempts)

    def stream_chat(self, messages: list[dict[str, Any]], temperature: float | None = None,
                    max_tokens: int | None = None) -> Iterator[str]:
        """Stream content deltas (SSE ``stream: true``). Retries only before the first token arrives."""
        deadline = time.monotonic() + self.deadline
        with self._slot(deadline):
            yield from self._stream(self._body(messages, True, temperature, max_tokens), deadline)

    def _stream(self, body: dict[str, Any], deadline: float) -> Iterator[str]:
        last, attempts = "", 0
        for attempt in range(self.retries + 1):
            if attempt and not self._pause(attempt - 1, deadline):
                last += f"; no time left for a retry within the {self.deadline:g} s deadline"
                break
            attempts += 1
            started, chars = False, 0
            try:
                with ExitStack() as stack:
                    r = self._open(stack, body, deadline, stream=True)
                    if _retryable(r.status_code):
                        last = f"HTTP {r.status_code}: {self._error_text(r, deadline, 200)}"
                        continue
                    if r.status_code >= 400:
                        raise GeneratorError(f"LLM rejected the request: HTTP {r.status_code}: "
                                             f"{self._error_text(r, deadline, 300)}")
                    for data in _sse_data(self._lines(r, deadline)):
                        if data == "[DONE]":
                            return
                        try:
                            obj = json.loads(data)
                        except ValueError:
                            continue
                        if not isinstance(obj, dict):
                            continue
                        if "error" in obj:
                            raise LLMUnavailableError(self._public(f"LLM stream error: {str(obj['error'])[:300]}"))
                        for ch in obj.get("choices") or []:
                            piece = (ch.get("delta") or {}).get("content") if isinstance(ch, dict) else None
                            if piece and isinstance(piece, str):
                                chars += len(piece)
                                if chars > self.max_reply_chars:
                                    raise self._too_long()
                                started = True
                                yield piece
                    if started:
                        raise LLMReplyError("the LLM stream ended without [DONE]: the answer is incomplete")
                    last = "the stream ended without [DONE] and without any text"
            except httpx.TimeoutException as e:
                if started:
                    raise LLMUnavailableError(f"LLM stream stalled: {self._timeout(e, deadline)}") from e
                last = self._timeout(e, deadline)
            except httpx.TransportError as e:
                if started:
                    raise LLMUnavailableError(self._public(f"LLM stream broke: {type(e).__name__}: {e}")) from e
                last = f"{type(e).__name__}: {e}"
        raise self._fail(last, attempts)

    # -- Generator role -----------------------------------------------------------------------------------
    def answer(self, query: str, qvec: np.ndarray, hits: list[Hit]) -> Answer:
        """LLM answer with citations verified lexically (no refusal check: see rag.answer.answering.answer)."""
        from rag.answer.citations import verify_citations

        text = self.chat(build_messages(query, hits))
        v = verify_citations(text, hits[:PROMPT_PASSAGES])
        return Answer(v.text, True, v.citations, hits, mode="llm", warnings=v.warnings())


class LlamaCppGenerator(OpenAICompatGenerator):
    """The local model: llama.cpp's OpenAI-compatible server (``make llm-serve``) on loopback."""

    def __init__(self, base_url: str = LOCAL_BASE_URL, model: str = "qwen2.5-1.5b-instruct",
                 **kw: Any) -> None:
        super().__init__(base_url, model, **kw)


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The ``data:`` payloads of an SSE stream (multi-line data joined; comments and other fields skipped)."""
    buf: list[str] = []
    for line in lines:
        if not line.strip():
            if buf:
                yield "\n".join(buf)
                buf = []
            continue
        if line.startswith(":"):
            continue
        if line.startswith("data:"):
            d = line[5:]
            buf.append(d[1:] if d.startswith(" ") else d)
            if buf[-1].strip() == "[DONE]" or _complete_json(buf[-1]):  # servers that omit the blank line
                yield "\n".join(buf)
                buf = []
    if buf:
        yield "\n".join(buf)


def _complete_json(s: str) -> bool:
    s = s.strip()
    if not (s.startswith("{") and s.endswith("}")):
        return False
    try:
        json.loads(s)
        return True
    except ValueError:
        return False


def create_generator(settings: Any) -> OpenAICompatGenerator | None:
    """The app's LLM client from settings (``None`` when ``llm_base_url`` is empty)."""
    if not getattr(settings, "llm_base_url", ""):
        return None
    return OpenAICompatGenerator(settings.llm_base_url, settings.llm_model, settings.llm_api_key,
                                 settings.llm_timeout, settings.llm_retries,
                                 deadline=getattr(settings, "llm_deadline", None),
                                 concurrency=getattr(settings, "llm_concurrency", 4),
                                 slot_wait=getattr(settings, "llm_slot_wait", 2.0),
                                 max_reply_chars=getattr(settings, "llm_max_reply_chars", 20000))


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """Run ``python -m llama_cpp.server`` for a GGUF on loopback (tests, `make llm-serve` does the same);
    ``port=0`` picks a free one."""

    def __init__(self, model_path: str | Path, port: int = 8081, host: str = "127.0.0.1", alias: str = "",
                 n_ctx: int = 4096, threads: int | None = None, python: str = sys.executable,
                 log_path: str | Path | None = None) -> None:
        self.model_path = Path(model_path)
        self.host, self.port = host, port or _free_port(host)
        self.alias = alias or self.model_path.stem
        self.n_ctx = n_ctx
        # half the cores: llama.cpp threads spin at barriers, so one preempted thread (by the embedder or
        # another process) slows decoding ~5x: 11 vs 2 tokens/s with 1 vs 2 threads on a busy 2-core box
        self.threads = threads or max(1, (os.cpu_count() or 2) // 2)
        self.python = python
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        return [self.python, "-m", "llama_cpp.server", "--model", str(self.model_path), "--model_alias",
                self.alias, "--host", self.host, "--port", str(self.port), "--n_ctx", str(self.n_ctx),
                "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads)]

    def start(self, wait: float = 180.0) -> str:
        if not self.model_path.exists():
            raise GeneratorError(f"GGUF not found at {self.model_path}: run `make llm-install`")
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise GeneratorError(f"llama.cpp server exited with code {self.proc.returncode}"
                                     + (f"; see {self.log_path}" if self.log_path else ""))
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return self.base_url
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise GeneratorError(f"llama.cpp server did not answer within {wait:g}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
