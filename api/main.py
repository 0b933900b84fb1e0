"""App wiring only: lifespan (load model + index once), routers, and the one error-to-HTTP table."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import access, observability
from api.audit import AuditLog, AuditMiddleware
from api.followup import create_condenser
from api.jobs import JobRunner
from api.mcp_http import McpEndpoint
from api.routes import account, answer, audit, chat, conversations, dify, documents, health, jobs, metadata, search
from api.security import (
    AuthError,
    BodyLimitMiddleware,
    BodyTooLarge,
    RateLimiter,
    SecurityHeadersMiddleware,
)
from rag.answer.llm import create_generator
from rag.conversations import open_store, store_target
from rag.core import errors
from rag.core.config import Settings
from rag.pipeline import Pipeline

logger = logging.getLogger("api")
WEB = Path(__file__).parent / "web"

# One table: typed error -> HTTP status.
STATUS: dict[type[errors.RagError], int] = {
    errors.InvalidInputError: 422,
    errors.NotFoundError: 404,
    errors.IndexNotFoundError: 503,
    errors.IndexCorruptError: 503,
    errors.IndexBusyError: 503,
    errors.JobQueueFullError: 503,
    errors.JobStoreUnavailableError: 503,
    errors.JobStateError: 409,
    errors.ModelMismatchError: 409,
    errors.ModelNotInstalledError: 503,
    errors.GeneratorError: 502,
    errors.ConfigError: 500,
}


def _status(e: errors.RagError) -> int:
    for cls in type(e).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def create_app(settings: Settings | None = None, pipeline: Pipeline | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = observability.Metrics(lambda: getattr(app.state, "pipeline", None))
    mcp = McpEndpoint(settings)  # the MCP tools (api/mcp_tools.py) on this app's pipeline, keys and limits

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        observability.configure_logging(settings.log_level)
        observability.limit_malloc_arenas()
        p = pipeline or Pipeline(settings)
        observability.instrument_pipeline(p, metrics)
        app.state.pipeline = p
        app.state.settings = settings
        app.state.limiter = RateLimiter(settings.rate_limit_per_minute)
        access.setup(app.state, settings)  # keys file and JWKS: one that does not parse stops the start
        app.state.audit = AuditLog(store_target(settings))  # writes, by whom (api/audit.py)
        app.state.load_error = ""
        if not p.ready:
            try:
                p.load()
                logger.info("ready: %d chunks from %s", p.index.size if p.index else 0, settings.index_dir)
            # serve (health says not ready, with the message) until an index exists or is rebuilt
            except (errors.IndexNotFoundError, errors.IndexCorruptError) as e:
                app.state.load_error = e.message
                logger.error("not ready: %s", e.message)
        app.state.llm = create_generator(settings)  # None when RAG_LLM_BASE_URL is empty
        if app.state.llm is not None:
            logger.info("LLM answers via %r", app.state.llm)
        app.state.condenser = create_condenser(settings)  # None without an LLM or with RAG_CONDENSE=rules
        app.state.conversations = open_store(settings)  # None when RAG_STORE_CONVERSATIONS=false
        # upload jobs: interrupted ones settled against the index just loaded, then the workers start
        app.state.jobs = JobRunner(settings, p, on_indexed=lambda: setattr(app.state, "load_error", ""),
                                   audit=lambda: getattr(app.state, "audit", None))  # a job's write audited
        app.state.jobs.start()
        async with mcp.running():  # MCP over streamable HTTP at /mcp (api/mcp_http.py)
            yield
        app.state.jobs.stop()
        if app.state.llm is not None:
            app.state.llm.close()
        if app.state.condenser is not None:
            app.state.condenser.close()
        if app.state.conversations is not None:
            app.state.conversations.close()
        app.state.audit.close()

    app = FastAPI(title="Policy RAG", version="0.1.0", lifespan=lifespan,
                  description="Cited retrieval and question answering over policy documents.")
    app.state.metrics = metrics

    @app.exception_handler(errors.RagError)
    async def rag_error(_: Request, e: errors.RagError) -> JSONResponse:
        return JSONResponse({"error": type(e).__name__, "message": e.message}, status_code=_status(e))

    @app.exception_handler(AuthError)
    async def auth_error(_: Request, e: AuthError) -> JSONResponse:
        return JSONResponse({"error": "AccessDenied" if e.status != 429 else "RateLimited", "message": e.message},
                            status_code=e.status, headers=e.headers)

    @app.exception_handler(BodyTooLarge)
    async def too_large(_: Request, e: BodyTooLarge) -> JSONResponse:
        return JSONResponse({"error": "TooLarge", "message": str(e.detail)}, status_code=413,
                            headers={"Connection": "close"})

    def body_limit(path: str) -> int:
        """Bytes a request body may have: an upload's files (+ 64 kB of form fields), else max_body_kb."""
        if path.startswith("/v1/documents"):
            return int(settings.max_upload_mb * 1024 * 1024) + 65536
        return settings.max_body_kb * 1024

    # counts the body bytes actually received (Content-Length or chunked, JSON or multipart): 413 past the limit
    app.add_middleware(BodyLimitMiddleware, limit_for=body_limit)
    # one audit row per write request: the principal, the documents and their content hashes
    app.add_middleware(AuditMiddleware, log=lambda: getattr(app.state, "audit", None))

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"])

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(x.get("loc", [])), "msg": x.get("msg", "")} for x in e.errors()]
        msg = "; ".join(f"{'.'.join(str(p) for p in d['loc'][1:]) or 'body'}: {d['msg']}" for d in detail)
        return JSONResponse({"error": "InvalidRequest", "message": msg, "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": "HTTPError", "message": str(e.detail)}, status_code=e.status_code,
                            headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, e: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return JSONResponse({"error": "InternalError", "message": "internal error; see server log"},
                            status_code=500)

    app.include_router(health.router)
    app.include_router(account.router)
    app.include_router(audit.router)
    app.include_router(search.router)
    app.include_router(metadata.json_router)  # a JSON PUT /v1/documents/{id}: before the multipart one
    app.include_router(metadata.router)
    app.include_router(documents.router)
    app.include_router(jobs.router)
    app.include_router(answer.router)
    app.include_router(chat.router)
    app.include_router(dify.router)
    app.include_router(conversations.router)
    app.router.routes.append(mcp.route())  # POST /mcp (api/mcp_http.py)

    if settings.metrics_enabled:
        @app.get("/metrics", include_in_schema=False)
        def prometheus_metrics(request: Request) -> Response:
            """Prometheus text format (api/observability.py); needs a key only when read keys are required."""
            if settings.read_keys_required:
                access.authenticate(request, "read")
            body, ctype = observability.metrics_response(metrics)
            return Response(body, media_type=ctype)

    # outermost (added last): request id + latency/error metrics + JSON access log for every response
    app.add_middleware(observability.ObservabilityMiddleware, metrics=metrics, root=app)
    # outermost: nosniff, no framing, no referrer and a CSP on every response, errors included
    app.add_middleware(SecurityHeadersMiddleware,
                       docs_paths=frozenset(x for x in (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
                                            if x))

    if (WEB / "index.html").exists():
        app.mount("/static", StaticFiles(directory=WEB), name="static")

        @app.get("/", include_in_schema=False)
        def page() -> FileResponse:
            return FileResponse(WEB / "index.html")

        @app.get("/report", include_in_schema=False)
        def report_page() -> FileResponse:
            """The questions report (its data needs write access: GET /v1/report)."""
            return FileResponse(WEB / "report.html")

    return app


app = create_app()
