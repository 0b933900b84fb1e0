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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def _retryable(status: int) -> bool:
    return status >= 500 or status == 429


class OpenAICompatGenerator:
    """Chat completions against ``{base_url}/chat/completions`` (base_url includes the version, e.g. /v1).

    Retries ``retries`` times with exponential backoff on connection errors, timeouts, 5xx and 429; then
    raises :class:`LLMUnavailableError`. Other 4xx raise :class:`GeneratorError` at once.
    """

    name = "llm"

    def __init__(self, base_url: str, model: str, api_key: str = "", timeout: float = 30.0, retries: int = 2,
                 backoff: float = 0.5, temperature: float = DEFAULT_TEMPERATURE,
                 max_tokens: int = DEFAULT_MAX_TOKENS, client: httpx.Client | None = None) -> None:
        if not base_url:
            raise GeneratorError("LLM base URL is empty: set RAG_LLM_BASE_URL (e.g. http://127.0.0.1:8081/v1)")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.temperature = temperature
        self.max_tokens = max_tokens
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                                              headers=headers)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, model={self.model!r})"

    def close(self) -> None:
        self._client.close()

    # -- HTTP ---------------------------------------------------------------------------------------------
    def _body(self, messages: list[dict[str, Any]], stream: bool, temperature: float | None,
              max_tokens: int | None) -> dict[str, Any]:
        return {"model": self.model, "messages": messages, "stream": stream,
                "temperature": self.temperature if temperature is None else temperature,
                "max_tokens": self.max_tokens if max_tokens is None else max_tokens}

    def _sleep(self, attempt: int) -> None:
        time.sleep(self.backoff * (2**attempt))

    def _fail(self, what: str) -> LLMUnavailableError:
        return LLMUnavailableError(f"LLM at {self.base_url} unavailable after {self.retries + 1} attempt(s): "
                                   f"{what}")

    def chat(self, messages: list[dict[str, Any]], temperature: float | None = None,
             max_tokens: int | None = None) -> str:
        """One non-streaming completion; returns the assistant text."""
        url = f"{self.base_url}/chat/completions"
        body = self._body(messages, False, temperature, max_tokens)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(attempt - 1)
            try:
                r = self._client.post(url, json=body)
            except httpx.TimeoutException as e:
                last = f"timeout after {self.timeout:g}s ({type(e).__name__})"
                continue
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if _retryable(r.status_code):
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                continue
            if r.status_code >= 400:
                raise GeneratorError(f"LLM at {self.base_url} rejected the request: HTTP {r.status_code}: "
                                     f"{r.text[:300]}")
            try:
                return str(r.json()["choices"][0]["message"]["content"] or "")
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise GeneratorError(f"LLM at {self.base_url} sent an unexpected response: "
                                     f"{r.text[:300]}") from e
        raise self._fail(last)

    def stream_chat(self, messages: list[dict[str, Any]], temperature: float | None = None,
                    max_tokens: int | None = None) -> Iterator[str]:
        """Stream content deltas (SSE ``stream: true``). Retries only before the first token arrives."""
        url = f"{self.base_url}/chat/completions"
        body = self._body(messages, True, temperature, max_tokens)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(attempt - 1)
            started = False
            try:
                with self._client.stream("POST", url, json=body,
                                         headers={"Accept": "text/event-stream"}) as r:
                    if _retryable(r.status_code):
                        r.read()
                        last = f"HTTP {r.status_code}: {r.text[:200]}"
                        continue
                    if r.status_code >= 400:
                        r.read()
                        raise GeneratorError(f"LLM at {self.base_url} rejected the request: "
                                             f"HTTP {r.status_code}: {r.text[:300]}")
                    for data in _sse_data(r.iter_lines()):
                        if data == "[DONE]":
                            return
                        try:
                            obj = json.loads(data)
                        except ValueError:
                            continue
                        if "error" in obj:
                            raise LLMUnavailableError(f"LLM stream error: {str(obj['error'])[:300]}")
                        for ch in obj.get("choices") or []:
                            piece = (ch.get("delta") or {}).get("content")
                            if piece:
                                started = True
                                yield piece
                    return
            except httpx.TimeoutException as e:
                if started:
                    raise LLMUnavailableError(f"LLM stream stalled (timeout {self.timeout:g}s)") from e
                last = f"timeout after {self.timeout:g}s ({type(e).__name__})"
            except httpx.TransportError as e:
                if started:
                    raise LLMUnavailableError(f"LLM stream broke: {type(e).__name__}: {e}") from e
                last = f"{type(e).__name__}: {e}"
        raise self._fail(last)

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
                                 settings.llm_timeout, settings.llm_retries)


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
