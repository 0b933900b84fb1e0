"""FastAPI dependencies: the pipeline loaded in the lifespan; access checks and rate limits (the key only once
valid, else the client address; refused authentications count too)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.security import AuthError, check_access, client_address
from rag.core.config import Settings
from rag.core.errors import IndexNotFoundError
from rag.pipeline import Pipeline


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_pipeline(request: Request) -> Pipeline:
    p: Pipeline = request.app.state.pipeline
    if not p.ready:
        err = getattr(request.app.state, "load_error", "") or "index not loaded"
        raise IndexNotFoundError(f"service not ready: {err}")
    return p


def _limit(request: Request, who: str) -> None:
    wait = request.app.state.limiter.check(who)
    if wait > 0:
        raise AuthError(429, f"rate limit exceeded: retry in {int(wait) + 1} s",
                        {"Retry-After": str(int(wait) + 1)})


def limit_failed_auth(request: Request) -> None:
    """A refused authentication counts against the client address: guessing keys is rate-limited (429)."""
    _limit(request, f"ip:{client_address(request)}")


def _guard(request: Request, write: bool) -> str:
    try:
        who = check_access(request, request.app.state.settings, write=write)
    except AuthError:
        limit_failed_auth(request)  # 429 once the address is over its limit, else the 401/403 below
        raise
    _limit(request, who)
    return who


def require_read(request: Request) -> str:
    return _guard(request, write=False)


def require_write(request: Request) -> str:
    return _guard(request, write=True)


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ReadAccess = Depends(require_read)
WriteAccess = Depends(require_write)
