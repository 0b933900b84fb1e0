"""Documents: upload, list, get (with text for in-place citations), replace, delete; collections."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import PipelineDep, ReadAccess, SettingsDep, WriteAccess, get_pipeline
from rag.core.errors import InvalidInputError, NotFoundError
from rag.ingest.loaders import check_doc_id, load_bytes
from rag.pipeline import Pipeline

router = APIRouter(prefix="/v1", tags=["documents"])


class DocumentInfo(BaseModel):
    doc_id: str
    title: str
    source: str = ""
    collection: str = "default"
    chars: int
    chunks: int
    meta: dict[str, Any] = {}


class DocumentOut(DocumentInfo):
    text: str


class DocumentList(BaseModel):
    documents: list[DocumentInfo]
    total: int


class ChangeOut(BaseModel):
    added: list[str]
    replaced: list[str]
    unchanged: list[str]
    deleted: list[str]
    version: str
    chunks: int


class Collections(BaseModel):
    collections: dict[str, int]


def _info(p: Pipeline, doc_id: str) -> DocumentInfo:
    assert p.index is not None
    d = p.index.documents[doc_id]
    meta = {k: v for k, v in d.meta.items() if k != "page_starts"}
    return DocumentInfo(doc_id=d.doc_id, title=d.title, source=d.source, chars=len(d.text),
                        collection=str(d.meta.get("collection", "default")),
                        chunks=len(p.index.doc_chunks.get(doc_id, ())), meta=meta)


@router.get("/documents", response_model=DocumentList, dependencies=[ReadAccess])
def list_documents(pipeline: PipelineDep, collection: str | None = None) -> DocumentList:
    """Documents in the index (without their text), optionally of one collection."""
    assert pipeline.index is not None
    docs = [_info(pipeline, d) for d, doc in pipeline.index.documents.items()
            if collection is None or doc.meta.get("collection", "default") == collection]
    return DocumentList(documents=docs, total=len(docs))


@router.get("/collections", response_model=Collections, dependencies=[ReadAccess])
def list_collections(pipeline: PipelineDep) -> Collections:
    assert pipeline.index is not None
    out: dict[str, int] = {}
    for d in pipeline.index.documents.values():
        c = str(d.meta.get("collection", "default"))
        out[c] = out.get(c, 0) + 1
    return Collections(collections=out)


@router.get("/documents/{doc_id}", response_model=DocumentOut, dependencies=[ReadAccess])
def get_document(doc_id: str, pipeline: PipelineDep) -> DocumentOut:
    """One document with its original text: citation spans (start, end) index into ``text``."""
    assert pipeline.index is not None
    if doc_id not in pipeline.index.documents:
        raise NotFoundError(f"no document {doc_id!r}: list them with GET /v1/documents")
    return DocumentOut(**_info(pipeline, doc_id).model_dump(), text=pipeline.index.documents[doc_id].text)


async def _read(file: UploadFile, limit_mb: float) -> bytes:
    data = await file.read(int(limit_mb * 1024 * 1024) + 1)
    if len(data) > limit_mb * 1024 * 1024:
        raise InvalidInputError(f"{file.filename}: larger than the {limit_mb:g} MB upload limit")
    if not data:
        raise InvalidInputError(f"{file.filename}: the file is empty")
    return data


def _meta(collection: str, tags: str, date: str) -> dict[str, Any]:
    col = collection.strip() or "default"
    if len(col) > 100 or any(ord(c) < 32 for c in col):
        raise InvalidInputError("collection must be a short name without control characters")
    meta: dict[str, Any] = {"collection": col}
    if tags.strip():
        meta["tags"] = [t.strip() for t in tags.split(",") if t.strip()]
    if date.strip():
        meta["date"] = date.strip()[:10]
    return meta


def _pipeline_or_empty(request: Request) -> Pipeline:
    # Uploads also work on an empty service (no index yet): the first upload creates it.
    return request.app.state.pipeline  # type: ignore[no-any-return]


@router.post("/documents", response_model=ChangeOut, status_code=201, dependencies=[WriteAccess])
async def upload(request: Request, settings: SettingsDep,
                 files: Annotated[list[UploadFile], File(description="txt, md, pdf, docx, html")],
                 collection: Annotated[str, Form()] = "default", tags: Annotated[str, Form()] = "",
                 date: Annotated[str, Form()] = "", doc_id: Annotated[str | None, Form()] = None) -> ChangeOut:
    """Upload documents (multipart). Same doc_id = a new version; unchanged content is a no-op."""
    p = _pipeline_or_empty(request)
    if doc_id and len(files) != 1:
        raise InvalidInputError("doc_id can only be given with a single file")
    meta = _meta(collection, tags, date)
    docs = []
    for f in files:
        data = await _read(f, settings.max_upload_mb)
        docs.append(load_bytes(data, f.filename or "upload.txt", check_doc_id(doc_id) if doc_id else None,
                               dict(meta)))
    rep = await run_in_threadpool(p.update, docs, [])
    request.app.state.load_error = ""
    return ChangeOut(**rep.__dict__)


@router.put("/documents/{doc_id}", response_model=ChangeOut, dependencies=[WriteAccess])
async def replace(doc_id: str, request: Request, settings: SettingsDep, file: Annotated[UploadFile, File()],
                  collection: Annotated[str, Form()] = "default", tags: Annotated[str, Form()] = "",
                  date: Annotated[str, Form()] = "") -> ChangeOut:
    """Replace a document's content (same doc_id, new version)."""
    p = get_pipeline(request)
    assert p.index is not None
    if doc_id not in p.index.documents:
        raise NotFoundError(f"no document {doc_id!r} to replace: upload it with POST /v1/documents")
    data = await _read(file, settings.max_upload_mb)
    doc = load_bytes(data, file.filename or doc_id, check_doc_id(doc_id), _meta(collection, tags, date))
    rep = await run_in_threadpool(p.update, [doc], [])
    return ChangeOut(**rep.__dict__)


@router.delete("/documents/{doc_id}", response_model=ChangeOut, dependencies=[WriteAccess])
async def delete(doc_id: str, request: Request) -> ChangeOut:
    p = get_pipeline(request)
    rep = await run_in_threadpool(p.update, [], [doc_id])
    return ChangeOut(**rep.__dict__)

