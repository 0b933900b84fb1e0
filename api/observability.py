"""Observability: Prometheus metrics, request ids and one JSON log line per request.

* ``GET /metrics`` (Prometheus text format) from a per-app registry:
  ``rag_http_request_duration_seconds{method,route,status}`` (route = the route *template*, e.g.
  ``/v1/documents/{doc_id}``; unknown paths are ``<unmatched>`` so fuzzers cannot blow up label sets),
  ``rag_http_errors_total{method,route,status}`` (status >= 400), ``rag_http_requests_in_progress``,
  ``rag_stage_duration_seconds{stage}`` (embed / retrieve / generate, recorded around the pipeline),
  ``rag_index_chunks``, ``rag_index_documents``, ``rag_ready`` (read at scrape time) and the process
  collector (``process_resident_memory_bytes`` ...).
* ``X-Request-ID``: taken from the request when it is a sane token (<= 128 chars of ``[A-Za-z0-9._:-]``),
  otherwise a new uuid4 hex; always returned in the response header and put on every log record of the
  request (``request_id``).
* Logs: the ``api`` logger writes JSON lines to stderr; ``api.access`` writes one per request
  (method, path, route, status, ms, request_id, client). The level is RAG_LOG_LEVEL, or else uvicorn's
  ``--log-level`` (so ``--log-level warning`` silences request lines, like uvicorn's own access log).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # else "other"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
access_log = logging.getLogger("api.access")


class Metrics:
    """All metrics of one app, in their own registry (several apps in one process do not collide)."""

    def __init__(self, pipeline_of: Callable[[], Any] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("method", "route", "status")
        self.latency = Histogram("rag_http_request_duration_seconds",
                                 "HTTP request latency by route template", labels, buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.errors = Counter("rag_http_errors_total", "HTTP responses with status >= 400", labels,
                              registry=self.registry)
        self.in_progress = Gauge("rag_http_requests_in_progress", "Requests being served",
                                 registry=self.registry)
        self.stages = Histogram("rag_stage_duration_seconds", "Query pipeline stage latency",
                                ("stage",), buckets=STAGE_BUCKETS, registry=self.registry)
        ProcessCollector(registry=self.registry)
        if pipeline_of is not None:
            self.registry.register(_IndexCollector(pipeline_of))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        s = str(status)
        self.latency.labels(method, route, s).observe(seconds)
        if status >= 400:
            self.errors.labels(method, route, s).inc()

    def observe_stages(self, timings: dict[str, float], stages: Iterable[str]) -> None:
        for stage in stages:
            ms = timings.get(f"{stage}_ms")
            if isinstance(ms, (int, float)) and ms == ms and ms >= 0:  # skip NaN / missing
                self.stages.labels(stage).observe(ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _IndexCollector:
    """Index size and readiness, read from the live pipeline at scrape time (never stale after updates)."""

    def __init__(self, pipeline_of: Callable[[], Any]) -> None:
        self.pipeline_of = pipeline_of

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        p = self.pipeline_of()
        idx = getattr(p, "index", None) if p is not None else None
        ready = GaugeMetricFamily("rag_ready", "1 when the index is loaded and queries are served")
        ready.add_metric([], 1.0 if idx is not None else 0.0)
        chunks = GaugeMetricFamily("rag_index_chunks", "Chunks in the loaded index version")
        chunks.add_metric([], float(idx.size) if idx is not None else 0.0)
        docs = GaugeMetricFamily("rag_index_documents", "Documents in the loaded index version")
        docs.add_metric([], float(len(idx.documents)) if idx is not None else 0.0)
        return [ready, chunks, docs]


def instrument_pipeline(pipeline: Any, metrics: Metrics) -> None:
    """Record per-stage latencies of every query path (search, ask, answer, chat, dify) on this instance.

    ``Pipeline.search`` fills ``embed_ms``/``retrieve_ms`` into the timings dict it is given; ``ask`` adds
    ``generate_ms``. The wrappers pass a dict when the caller gave none and observe the values after the call.
    Idempotent; a pipeline without these methods (a test double) is left alone.
    """
    if getattr(pipeline, "_rag_instrumented", False) or not hasattr(pipeline, "search"):
        return
    search, ask = pipeline.search, getattr(pipeline, "ask", None)
    try:
        sig = inspect.signature(search)
    except (TypeError, ValueError):  # pragma: no cover - builtins / odd callables
        return
    if "timings" not in sig.parameters:
        return

    def timed_search(*args: Any, **kwargs: Any) -> Any:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        t = bound.arguments.get("timings")
        if t is None:
            t = bound.arguments["timings"] = {}
        out = search(*bound.args, **bound.kwargs)
        metrics.observe_stages(t, ("embed", "retrieve", "rerank"))
        return out

    pipeline.search = timed_search
    if ask is not None:
        def timed_ask(*args: Any, **kwargs: Any) -> Any:
            ans = ask(*args, **kwargs)
            metrics.observe_stages(getattr(ans, "timings", {}) or {}, ("generate",))
            return ans

        pipeline.ask = timed_ask
    pipeline._rag_instrumented = True


def route_template(app: Any, scope: Scope) -> str:
    """The matched route's path template; ``<unmatched>`` for 404s (bounded label cardinality)."""
    route = scope.get("route")
    if route is None:  # rejected before routing (e.g. 413 in a middleware): match it ourselves
        router = getattr(app, "router", None)
        for r in getattr(router, "routes", ()):
            try:
                match, _ = r.matches({**scope, "type": "http"})
            except Exception:  # pragma: no cover - defensive: a route that cannot match this scope
                continue
            if match in (Match.FULL, Match.PARTIAL):
                route = r
                break
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    return path or "/"


def _request_id(scope: Scope) -> str:
    for k, v in scope.get("headers", ()):
        if k == b"x-request-id":
            try:
                given = v.decode("ascii")
            except UnicodeDecodeError:
                break
            if _SAFE_ID.match(given):
                return given
            break
    return uuid.uuid4().hex


class ObservabilityMiddleware:
    """Pure ASGI middleware (streaming-safe): request id, latency/error metrics, one JSON access line."""

    def __init__(self, app: ASGIApp, metrics: Metrics, root: Any) -> None:
        self.app, self.metrics, self.root = app, metrics, root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        token = request_id_var.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        t0 = time.perf_counter()
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        except asyncio.CancelledError:  # the client went away before an answer (nginx's 499)
            if not started:
                status = 499
            raise
        except Exception:
            status = 500
            logging.getLogger("api").exception("unhandled error")
            if started:
                raise
            body = json.dumps({"error": "InternalError",
                               "message": "internal error; see server log"}).encode()
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"x-request-id", rid.encode("ascii"))]})
            await send({"type": "http.response.body", "body": body})
        finally:
            self.metrics.in_progress.dec()
            seconds = time.perf_counter() - t0
            route = route_template(self.root, scope)
            method = scope.get("method", "")
            self.metrics.observe_request(method if method in METHODS else "other", route, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access_log.info("request", extra={"http": {
                    "method": scope.get("method", ""), "path": scope.get("path", ""), "route": route,
                    "status": status, "ms": round(seconds * 1000, 2),
                    "client": client[0] if client else ""}})
            request_id_var.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id (+ the access fields, + exc)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage(),
        }
        http = getattr(record, "http", None)
        if isinstance(http, dict):
            out.update(http)
        rid = getattr(record, "request_id", "") or request_id_var.get()
        if rid:
            out["request_id"] = rid
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


_HANDLER_NAME = "rag-json"


def configure_logging(level: str = "") -> None:
    """JSON lines on stderr for the ``api`` logger tree. ``level`` empty = follow uvicorn's --log-level."""
    log = logging.getLogger("api")
    if level:
        lvl = logging.getLevelName(level.upper())
        lvl = lvl if isinstance(lvl, int) else logging.INFO
    else:
        uv = logging.getLogger("uvicorn.error")
        lvl = uv.level if uv.level != logging.NOTSET else logging.WARNING
    log.setLevel(lvl)
    if not any(getattr(h, "name", "") == _HANDLER_NAME for h in log.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.set_name(_HANDLER_NAME)
        h.setFormatter(JsonFormatter())
        log.addHandler(h)
        log.propagate = False


def metrics_response(metrics: Metrics) -> tuple[bytes, str]:
    return metrics.render(), CONTENT_TYPE_LATEST


def limit_malloc_arenas(n: int = 2) -> None:
    """Cap glibc's per-thread malloc arenas: with the server's thread pool each thread otherwise gets its
    own arena and RSS climbs under load without any leak (measured with `make soak`). No-op off glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, n)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass
