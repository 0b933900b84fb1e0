"""FastAPI dependencies: the pipeline loaded in the lifespan, as the caller's principal sees it (api/scoped.py);
access checks (api/access.py) and rate limits (the principal once its key is valid, else the client address;
refused authentications count too)."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from api import audit
from api.access import authenticate, principal_of
from api.principals import Principal
from api.scoped import ScopedPipeline
from api.scoped import authorize_upload as authorize_upload  # re-exported for the upload route
from api.security import AuthError, client_address
from rag.core.config import Settings
from rag.core.errors import IndexNotFoundError
from rag.pipeline import Pipeline


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_pipeline(request: Request) -> Pipeline:
    p: Pipeline = request.app.state.pipeline
    if p.settings.backend == "milvus":  # a stateless replica: follow the live version another replica wrote
        p.refresh()  # IndexUnavailableError (503, naming Milvus) when it cannot be reached in time
        request.app.state.load_error = ""
    if not p.ready:
        err = getattr(request.app.state, "load_error", "") or "index not loaded"
        raise IndexNotFoundError(f"service not ready: {err}")
    return scoped_view(request)


def scoped_view(request: Request) -> Pipeline:
    """The app's pipeline as the caller's principal sees it (api/scoped.py), loaded or not."""
    return cast(Pipeline, ScopedPipeline(request.app.state.pipeline, lambda: principal_of(request),
                                         lambda ids, hashes, **kw: audit.note(request.state, ids, hashes, **kw)))


def _limit(request: Request, who: str) -> None:
    wait = request.app.state.limiter.check(who)
    if wait > 0:
        raise AuthError(429, f"rate limit exceeded: retry in {int(wait) + 1} s",
                        {"Retry-After": str(int(wait) + 1)})


def limit_failed_auth(request: Request) -> None:
    """A refused authentication counts against the client address: guessing keys is rate-limited (429)."""
    _limit(request, f"ip:{client_address(request)}")


def _guard(request: Request, need: str) -> Principal:
    try:
        p = authenticate(request, need)
    except AuthError:
        limit_failed_auth(request)  # 429 once the address is over its limit, else the 401/403 below
        raise
    request.state.principal = p
    _limit(request, f"key:{p.name}" if p.authenticated else f"ip:{client_address(request)}")
    return p


def require_read(request: Request) -> Principal:
    return _guard(request, "read")


def require_user(request: Request) -> Principal:
    """Any key (its own conversations and feedback); without keys configured, this machine's same-origin pages."""
    return _guard(request, "user")


def require_write(request: Request) -> Principal:
    return _guard(request, "write")


def require_admin(request: Request) -> Principal:
    return _guard(request, "admin")


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ReadAccess = Depends(require_read)
WriteAccess = Depends(require_write)
UserAccess = Depends(require_user)
AdminAccess = Depends(require_admin)
PrincipalDep = Annotated[Principal, Depends(principal_of)]
