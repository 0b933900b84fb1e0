from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.schemas import Health
from rag.core.errors import RagError

router = APIRouter(tags=["health"])


def _health(request: Request) -> Health:
    p = request.app.state.pipeline
    llm = getattr(request.app.state, "llm", None) is not None  # api/llm.get_generator
    if p.settings.backend == "milvus":  # ready = Milvus answers and the live version is loaded
        try:
            p.refresh()
        except RagError as e:
            return Health(status="not ready", ready=False, llm=llm, error=e.message)
    idx = p.index
    if idx is None:
        return Health(status="not ready", ready=False, llm=llm, error=getattr(request.app.state, "load_error", ""))
    return Health(status="ok", ready=True, index_chunks=idx.size, index_documents=len(idx.documents),
                  model=str(idx.manifest.get("model", "")), index_version=idx.path.name, llm=llm)


@router.get("/healthz", response_model=Health)
def healthz(request: Request, response: Response) -> Health:
    """Readiness: 200 when the model and index are loaded, 503 otherwise."""
    h = _health(request)
    if not h.ready:
        response.status_code = 503
    return h


@router.get("/readyz", response_model=Health)
def readyz(request: Request, response: Response) -> Health:
    """Readiness (alias of /healthz): 200 when ready, 503 with ``error`` otherwise."""
    return healthz(request, response)


@router.get("/livez")
def livez() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "alive"}


# HEAD for probes and uptime checkers (same status, no body); kept out of the OpenAPI schema.
@router.head("/healthz", include_in_schema=False)
@router.head("/readyz", include_in_schema=False)
def head_ready(request: Request) -> Response:
    return Response(status_code=200 if _health(request).ready else 503)


@router.head("/livez", include_in_schema=False)
def head_live() -> Response:
    return Response(status_code=200)
