"""Documents: upload, list, get (with text for in-place citations), replace, delete; collections."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api import jobs
from api.deps import PipelineDep, ReadAccess, SettingsDep, WriteAccess, authorize_upload, get_pipeline, scoped_view
from api.followup import caller_owner
from api.parsing import parse_upload
from rag.core import docmeta
from rag.core.errors import InvalidInputError, NotFoundError
from rag.core.types import Document
from rag.index.doctable import chars, stub, stubs
from rag.ingest.loaders import SUPPORTED, check_doc_id
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
    status: str = Field("in_force", description="Today: in_force | superseded | expired | not_yet_effective")
    superseded_by: dict[str, Any] | None = Field(None, description="The document that repealed or amended it: "
                                                 "doc_id, title, doc_number, date, how")
    supersedes: list[str] = Field([], description="doc_ids of the documents it repealed or amended")


class DocumentOut(DocumentInfo):
    text: str


class DocumentList(BaseModel):
    documents: list[DocumentInfo]
    total: int


class FileFailure(BaseModel):
    file: str
    error: str


class ChangeOut(BaseModel):
    added: list[str]
    replaced: list[str]
    unchanged: list[str]
    deleted: list[str]
    version: str
    chunks: int
    failed: list[FileFailure] = []  # files of a batch that could not be read (the rest went in)


class Collections(BaseModel):
    collections: dict[str, int]


def _info(p: Pipeline, doc_id: str) -> DocumentInfo:
    assert p.index is not None
    d = stub(p.index.documents, doc_id)  # metadata only: the text stays in the index file
    meta = {k: v for k, v in d.meta.items() if k != "page_starts"}
    return DocumentInfo(doc_id=d.doc_id, title=d.title, source=_public_source(d.source),
                        chars=chars(p.index.documents, doc_id),
                        collection=str(d.meta.get("collection", "default")),
                        chunks=len(p.index.doc_chunks.get(doc_id, ())), meta=meta, status=docmeta.status(d.meta),
                        superseded_by=d.meta.get("superseded_by"), supersedes=d.meta.get("supersedes") or [])


@router.get("/documents", response_model=DocumentList, dependencies=[ReadAccess])
def list_documents(pipeline: PipelineDep, collection: str | None = None) -> DocumentList:
    """Documents in the index (without their text), optionally of one collection."""
    assert pipeline.index is not None
    docs = [_info(pipeline, doc.doc_id) for doc in stubs(pipeline.index.documents)
            if collection is None or doc.meta.get("collection", "default") == collection]
    return DocumentList(documents=docs, total=len(docs))


@router.get("/collections", response_model=Collections, dependencies=[ReadAccess])
def list_collections(pipeline: PipelineDep) -> Collections:
    assert pipeline.index is not None
    out: dict[str, int] = {}
    for d in stubs(pipeline.index.documents):
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


async def _read(file: UploadFile, name: str, limit_mb: float) -> bytes:
    data = await file.read(int(limit_mb * 1024 * 1024) + 1)
    if len(data) > limit_mb * 1024 * 1024:
        raise InvalidInputError(f"{name}: larger than the {limit_mb:g} MB upload limit")
    if not data:
        raise InvalidInputError(f"{name}: the file is empty")
    return data


def _meta(collection: str, tags: str, date: str) -> dict[str, Any]:
    col = collection.strip() or "default"
    if len(col) > 100 or any(ord(c) < 32 for c in col):
        raise InvalidInputError("collection must be a short name without control characters")
    meta: dict[str, Any] = {"collection": col}
    if tags.strip():
        meta["tags"] = [t.strip() for t in tags.split(",") if t.strip()]
    if date.strip():
        meta["date"] = _iso_date(date.strip())
    return meta


def _iso_date(value: str) -> str:
    """``YYYY-MM-DD`` (an ISO date-time keeps its date); anything else is a 422."""
    try:
        day = dt.datetime.fromisoformat(value).date() if len(value) > 10 else dt.date.fromisoformat(value)
        return day.isoformat()
    except ValueError:
        raise InvalidInputError(f"date {value[:40]!r} is not an ISO date: use YYYY-MM-DD, e.g. 2024-03-01") from None


def _upload_name(filename: str | None, n: int, doc_id: str | None) -> str:
    """The file's own name (its last path component: browsers may send ``C:\\dir\\a.pdf``); a file without one
    takes ``doc_id`` when that names a supported type, else it is refused (never a made-up ``upload.txt``)."""
    name = re.split(r"[/\\]", filename or "")[-1]
    name = "".join(c for c in name if ord(c) >= 32).strip()
    if name in (".", ".."):
        name = ""
    if not name and doc_id and Path(doc_id).suffix.lower() in SUPPORTED:
        name = doc_id
    if not name:
        raise InvalidInputError(f"file {n} has no filename: send each file with its name and extension "
                                f"({', '.join(SUPPORTED)})")
    return name


def _public_source(source: str) -> str:
    """``source`` as shown by the API: never a server path (an index written by an older `rag ingest` holds
    absolute ones)."""
    if PurePosixPath(source).is_absolute() or PureWindowsPath(source).is_absolute():
        return PurePosixPath(source.replace("\\", "/")).name
    return source


def _pipeline_or_empty(request: Request) -> Pipeline:
    # Uploads also work on an empty service (no index yet): the first upload creates it. The caller's view:
    # its update checks the principal may write each document's collection (api/scoped.py).
    return scoped_view(request)


@router.post("/documents", response_model=ChangeOut, status_code=201, dependencies=[WriteAccess],
             responses={202: {"description": "Queued as a background job: poll the Location (GET /v1/jobs/{id})"}})
async def upload(request: Request, settings: SettingsDep,
                 files: Annotated[list[UploadFile], File(description="txt, md, pdf, docx, html")],
                 collection: Annotated[str, Form()] = "default", tags: Annotated[str, Form()] = "",
                 date: Annotated[str, Form()] = "", doc_id: Annotated[str | None, Form()] = None,
                 run_async: Annotated[bool, Query(alias="async")] = False) -> ChangeOut | JSONResponse:
    """Upload documents (multipart). Same doc_id = a new version; unchanged content is a no-op.

    A batch puts in the files that can be read and lists the others under ``failed`` (each with its cause);
    only when none can be read is the answer a 422. With ``?async=true``, or when the files are big or need
    much OCR (RAG_ASYNC_UPLOAD_MB, RAG_ASYNC_OCR_PAGES), the answer is 202 with a job to poll (api/jobs.py)."""
    p = _pipeline_or_empty(request)
    if doc_id and len(files) != 1:
        raise InvalidInputError("doc_id can only be given with a single file")
    meta = _meta(collection, tags, date)
    fixed_id = check_doc_id(doc_id) if doc_id else None
    authorize_upload(request, meta["collection"], fixed_id)  # 403 outside an editor's collections (issue 20)
    docs: list[Document] = []
    failed: list[tuple[str, InvalidInputError]] = []
    seen: set[str] = set()
    read: list[tuple[str, bytes]] = []
    for n, f in enumerate(files, 1):
        label = f.filename or f"file {n}"
        try:
            name = _upload_name(f.filename, n, fixed_id)
            label = name
            read.append((name, await _read(f, name, settings.max_upload_mb)))
        except InvalidInputError as e:
            failed.append((label, e))
    for name, _ in read:  # a job's documents get the check the pipeline view makes on the answered path
        authorize_upload(request, meta["collection"], fixed_id or name)
    if read and (run_async or await jobs.wants_job(read, settings)):
        job_id = await run_in_threadpool(request.app.state.jobs.submit, read, [(f, e.message) for f, e in failed],
                                         {**meta, "doc_id": fixed_id, "by": jobs.submitter(request)},
                                         caller_owner(request, settings))
        return jobs.accepted(job_id)
    for name, data in read:
        try:
            doc = await parse_upload(data, name, fixed_id, dict(meta))
            if doc.doc_id in seen:
                raise InvalidInputError(f"{name}: a second file with doc_id {doc.doc_id!r} in this upload; "
                                        "the first one was used")
            seen.add(doc.doc_id)
            docs.append(doc)
        except InvalidInputError as e:
            failed.append((name, e))
    if not docs:
        if len(failed) == 1:
            raise failed[0][1]
        raise InvalidInputError(f"none of the {len(failed)} files could be read: "
                                + "; ".join(e.message for _, e in failed))
    rep = await run_in_threadpool(p.update, docs, [])
    request.app.state.load_error = ""
    return ChangeOut(**rep.__dict__, failed=[FileFailure(file=f, error=e.message) for f, e in failed])


@router.put("/documents/{doc_id}", response_model=ChangeOut, dependencies=[WriteAccess])
async def replace(doc_id: str, request: Request, settings: SettingsDep, file: Annotated[UploadFile, File()],
                  collection: Annotated[str, Form()] = "default", tags: Annotated[str, Form()] = "",
                  date: Annotated[str, Form()] = "") -> ChangeOut:
    """Replace a document's content (same doc_id, new version)."""
    p = get_pipeline(request)
    assert p.index is not None
    if doc_id not in p.index.documents:
        raise NotFoundError(f"no document {doc_id!r} to replace: upload it with POST /v1/documents")
    meta = _meta(collection, tags, date)
    name = _upload_name(file.filename, 1, doc_id)
    data = await _read(file, name, settings.max_upload_mb)
    doc = await parse_upload(data, name, check_doc_id(doc_id), meta)
    rep = await run_in_threadpool(p.update, [doc], [])
    return ChangeOut(**rep.__dict__)


@router.delete("/documents/{doc_id}", response_model=ChangeOut, dependencies=[WriteAccess])
async def delete(doc_id: str, request: Request) -> ChangeOut:
    p = get_pipeline(request)
    rep = await run_in_threadpool(p.update, [], [doc_id])
    return ChangeOut(**rep.__dict__)
