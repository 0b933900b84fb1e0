"""Edit a document's metadata (``PUT /v1/documents/{id}``, issue 17 item 4) without re-embedding anything.

The edit is a new index version like any other write: under the folder's lock (``rag.index.lock``) the current
version is read, its files copied into a temporary folder, ``documents.jsonl`` rewritten with the new metadata
(and ``chunks.jsonl`` with the new title, when the title changes: citations show it), the validity links of
every document recomputed (``rag.ingest.validity.link``: an edited 发文字号 or ``repeals`` moves them), then
the manifest's checksums are rewritten and ``current`` is switched atomically (``store.commit``). Vectors and
BM25 arrays are copied byte for byte. A crash at any point leaves the previous version current; an upload
racing the edit waits for the lock and builds on the edited version, so neither loses the other's change.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rag.core import docmeta
from rag.core.errors import InvalidInputError, NotFoundError
from rag.core.types import Chunk, Document
from rag.index import store
from rag.index.chunktable import CHUNK_SIDECARS, write_sidecars
from rag.index.lock import index_lock
from rag.ingest.validity import link

logger = logging.getLogger(__name__)

EDITABLE = (*docmeta.FIELDS, "repeals")
_REWRITTEN = ("manifest.json", "documents.jsonl")


def read_documents(folder: Path) -> dict[str, Document]:
    docs: dict[str, Document] = {}
    with open(folder / "documents.jsonl", encoding="utf-8") as f:
        for line in f:
            d = Document(**json.loads(line))
            docs[d.doc_id] = d
    return docs


def apply_fields(doc: Document, fields: Mapping[str, Any]) -> None:
    """Set each field (``None`` removes it); ``title`` is the document's title."""
    unknown = sorted(set(fields) - set(EDITABLE))
    if unknown:
        raise InvalidInputError(f"cannot edit {', '.join(unknown)}: editable fields are {', '.join(EDITABLE)}")
    for key, value in fields.items():
        if key == "title":
            if not value or not str(value).strip():
                raise InvalidInputError("title cannot be empty")
            doc.title = str(value).strip()
        elif value is None or value == [] or value == "":
            doc.meta.pop(key, None)
        else:
            doc.meta[key] = value


def _retitle(src: Path, tmp: Path, doc_id: str, title: str) -> None:
    """chunks.jsonl (and its offset sidecars) with ``title`` on the chunks of ``doc_id``."""
    chunks: list[Chunk] = []
    offsets, pos = [], 0
    with open(src / "chunks.jsonl", encoding="utf-8") as fin, open(tmp / "chunks.jsonl", "wb") as fout:
        for raw in fin:
            c = Chunk.from_json(json.loads(raw))
            if c.doc_id == doc_id:
                c.title = title
            line = (json.dumps(c.to_json(), ensure_ascii=False) + "\n").encode("utf-8")
            fout.write(line)
            offsets.append((pos, len(line)))
            pos += len(line)
            chunks.append(Chunk(c.chunk_id, c.doc_id, "", 0, 0))  # the sidecars need ids only
    write_sidecars(tmp, chunks, offsets)


def edit_metadata(index_dir: Path, doc_id: str, fields: Mapping[str, Any]) -> Document:
    """Apply ``fields`` to document ``doc_id`` as a new index version; returns the edited document."""
    with index_lock(index_dir, purpose="metadata edit"):
        manifest = store.read_manifest(index_dir)
        src = store.current_path(index_dir).resolve()
        store.verify(src, manifest)  # never copy a damaged version forward
        docs = read_documents(src)
        if doc_id not in docs:
            raise NotFoundError(f"no document {doc_id!r}: list them with GET /v1/documents")
        doc = docs[doc_id]
        old_title = doc.title
        apply_fields(doc, fields)
        link(docs)
        tmp = store.new_version(index_dir)
        try:
            retitle = doc.title != old_title
            skip = (*_REWRITTEN, "chunks.jsonl", *CHUNK_SIDECARS) if retitle else _REWRITTEN
            shutil.copytree(src, tmp, dirs_exist_ok=True, ignore=lambda d, names: [
                n for n in names if Path(d) == src and n in skip])
            if retitle:
                _retitle(src, tmp, doc_id, doc.title)
            with open(tmp / "documents.jsonl", "w", encoding="utf-8") as f:
                for d in docs.values():
                    f.write(json.dumps(d.__dict__, ensure_ascii=False) + "\n")
            final = store.commit(index_dir, tmp, {k: v for k, v in manifest.items() if k != "files"})
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    logger.info("metadata of %s edited (%s): version %s", doc_id, ", ".join(fields), final.name)
    return doc
