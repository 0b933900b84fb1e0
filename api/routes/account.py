"""GET /v1/me: who the caller is (issue 20): the principal's name, role and the collections it may read, for
the web page's sign-in and for scripts checking a key. Never the key itself."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import PrincipalDep, ReadAccess
from api.schemas import ErrorResponse

router = APIRouter(prefix="/v1", tags=["account"], responses={401: {"model": ErrorResponse},
                                                              403: {"model": ErrorResponse}})


class Me(BaseModel):
    name: str
    role: str = Field(description="reader | editor | admin")
    collections: list[str] = Field(description="The collections it may read; ['*'] = every collection")
    authenticated: bool = Field(description="false: no key was sent (an anonymous reader)")
    source: str = Field(description="key | jwt | dify | anonymous | local (no keys configured, this machine)")
    can_write: bool


@router.get("/me", response_model=Me, dependencies=[ReadAccess])
def me(principal: PrincipalDep) -> Me:
    p = principal
    cols = ["*"] if p.collections is None else sorted(p.collections)
    return Me(name=p.name, role=p.role, collections=cols, authenticated=p.authenticated, source=p.source,
              can_write=p.role in ("editor", "admin"))
