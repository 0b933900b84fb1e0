from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import PipelineDep
from rag.errors import NotFoundError

router = APIRouter(prefix="/v1/documents", tags=["documents"])


class DocumentInfo(BaseModel):
    doc_id: str
    title: str
    source: str = ""
    chars: int
    chunks: int
    meta: dict = {}


class DocumentOut(DocumentInfo):
    text: str


class DocumentList(BaseModel):
    documents: list[DocumentInfo]
    total: int


def _counts(pipeline: PipelineDep) -> dict[str, int]:
    counts: dict[str, int] = {}
    assert pipeline.index is not None
    for c in pipeline.index.chunks.values():
        counts[c.doc_id] = counts.get(c.doc_id, 0) + 1
    return counts


@router.get("", response_model=DocumentList)
def list_documents(pipeline: PipelineDep) -> DocumentList:
    """Documents in the index (without their text)."""
    assert pipeline.index is not None
    counts = _counts(pipeline)
    docs = [DocumentInfo(doc_id=d.doc_id, title=d.title, source=d.source, chars=len(d.text),
                         chunks=counts.get(d.doc_id, 0), meta=d.meta)
            for d in pipeline.index.documents.values()]
    return DocumentList(documents=docs, total=len(docs))


@router.get("/{doc_id}", response_model=DocumentOut)
def get_document(doc_id: str, pipeline: PipelineDep) -> DocumentOut:
    """One document with its original text: citation spans (start, end) index into ``text``."""
    assert pipeline.index is not None
    d = pipeline.index.documents.get(doc_id)
    if d is None:
        raise NotFoundError(f"no document {doc_id!r}: list them with GET /v1/documents")
    return DocumentOut(doc_id=d.doc_id, title=d.title, source=d.source, chars=len(d.text),
                       chunks=_counts(pipeline).get(doc_id, 0), meta=d.meta, text=d.text)
