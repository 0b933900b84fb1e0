"""FastAPI dependencies: the pipeline loaded in the lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from rag.errors import IndexNotFoundError
from rag.pipeline import Pipeline


def get_pipeline(request: Request) -> Pipeline:
    p: Pipeline = request.app.state.pipeline
    if not p.ready:
        err = getattr(request.app.state, "load_error", "") or "index not loaded"
        raise IndexNotFoundError(f"service not ready: {err}")
    return p


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
