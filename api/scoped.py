"""The pipeline as one principal sees it (issue 20): every search carries the principal's collections as
``Filters.collections``, applied inside search before top-k (``Pipeline.allowed_ids``), and the index's
``documents`` hold only its collections, so document lists, texts and collection counts cannot show another
collection. Writes go through :meth:`ScopedPipeline.update` / ``edit_metadata``, which check the principal
may write to the collections touched (a document it cannot read is a 404, not a 403: existence does not leak).

``api/deps.get_pipeline`` hands this view to every route; the principal is resolved when the view is first
used (a route may authenticate in its body, as Dify's does), never skipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

from api.access import check_write, principal_of
from api.principals import Principal
from rag.core.errors import NotFoundError
from rag.core.types import Document, Filters
from rag.index.doctable import DocumentSubset, stubs


def collection_of(doc: Document) -> str:
    return str(doc.meta.get("collection", "default"))


def scoped_filters(filters: Filters | None, cols: frozenset[str] | None) -> Filters | None:
    """``filters`` narrowed to ``cols``; a requested collection outside them is unknown (404)."""
    if cols is None:
        return filters
    f = filters if filters is not None else Filters()
    if f.collection is not None and f.collection not in cols:
        raise NotFoundError(f"unknown collection {f.collection!r}: see GET /v1/collections")
    return dataclasses.replace(f, collections=cols if f.collections is None else cols & f.collections)


class ScopedIndex:
    """An index whose ``documents`` and ``doc_chunks`` hold only ``cols``; the rest is the index's own."""

    def __init__(self, index: Any, cols: frozenset[str]) -> None:
        self._index = index
        self.documents = DocumentSubset(index.documents, (d.doc_id for d in stubs(index.documents)
                                                          if collection_of(d) in cols))
        self.doc_chunks = {k: v for k, v in index.doc_chunks.items() if k in self.documents}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)


def check_document_write(principal: Principal, index: Any, doc_id: str, new_collection: str | None = None) -> None:
    """A change to ``doc_id`` (to ``new_collection``): 404 when the principal cannot read the document that
    is there, 403 when it may not write to its collection or the new one."""
    old = index.documents.get(doc_id) if index is not None else None
    if old is not None:
        if not principal.can_read(collection_of(old)):
            raise NotFoundError(f"no document {doc_id!r}: list them with GET /v1/documents")
        check_write(principal, collection_of(old))
    if new_collection is not None:
        check_write(principal, new_collection)


def authorize_upload(request: Any, collection: str, doc_id: str | None) -> None:
    """Before an upload is parsed or queued: the principal may write to ``collection`` (and to the document
    ``doc_id`` names, when it exists)."""
    index = request.app.state.pipeline.index
    check_document_write(principal_of(request), index, doc_id or "", collection)


def text_hash(doc: Document) -> str:
    return hashlib.sha256(doc.text.encode("utf-8", "surrogatepass")).hexdigest()


Note = Callable[..., None]  # (doc_ids, hashes, **detail): what a write changed, for the audit log (api/audit.py)


class ScopedPipeline:
    def __init__(self, pipeline: Any, principal: Callable[[], Principal], note: Note | None = None) -> None:
        self._p = pipeline
        self._principal = principal
        self._note = note

    def __getattr__(self, name: str) -> Any:
        return getattr(self._p, name)

    @property
    def principal(self) -> Principal:
        return self._principal()

    @property
    def cols(self) -> frozenset[str] | None:
        return self.principal.collections

    @property
    def index(self) -> Any:
        index, cols = self._p.index, self.cols
        return index if index is None or cols is None else ScopedIndex(index, cols)

    def search(self, query: str, top_k: int = 5, mode: str = "hybrid", timings: dict[str, float] | None = None,
               filters: Filters | None = None, rerank: bool | None = None) -> tuple[list[Any], Any]:
        return self._p.search(query, top_k, mode, timings, scoped_filters(filters, self.cols), rerank)

    def ask(self, query: str, top_k: int = 5, filters: Filters | None = None) -> Any:
        return self._p.ask(query, top_k, scoped_filters(filters, self.cols))

    def allowed_ids(self, index: Any, filters: Filters | None) -> Any:
        return self._p.allowed_ids(index, scoped_filters(filters, self.cols))

    def update(self, upserts: list[Document], deletes: list[str] | None = None) -> Any:
        p, index = self.principal, self._p.index
        for d in upserts:
            check_document_write(p, index, d.doc_id, collection_of(d))
        for doc_id in deletes or []:
            if index is None or doc_id not in index.documents:
                continue  # deleting what is not there changes nothing (the update reports it)
            check_document_write(p, index, doc_id)
        if self._note is not None:
            gone = [index.documents[d] for d in deletes or [] if index is not None and d in index.documents]
            self._note([d.doc_id for d in [*upserts, *gone]], {d.doc_id: text_hash(d) for d in [*upserts, *gone]},
                       collections=sorted({collection_of(d) for d in [*upserts, *gone]}))
        return self._p.update(upserts, deletes)

    def edit_metadata(self, doc_id: str, fields: dict[str, Any]) -> Any:
        new = fields.get("collection")
        index = self._p.index
        check_document_write(self.principal, index, doc_id, str(new) if new is not None else None)
        old = index.documents.get(doc_id) if index is not None else None
        if self._note is not None and old is not None:
            self._note([doc_id], {doc_id: text_hash(old)}, fields=sorted(fields), collections=[collection_of(old)])
        return self._p.edit_metadata(doc_id, fields)
