"""The documents of a file index version, their text read from ``documents.jsonl`` on demand (issue 19).

A served index needs every document's metadata (filters, listings, validity) but a document's original text
only to show it (``GET /v1/documents/{id}``) or to rebuild a version. Holding every text cost about 2 bytes per
character of the corpus in anonymous memory (1M chunks of real text: some 500 MB); here the table keeps the
metadata, the text's length and the line's place in the file, and ``table[doc_id]`` reads that one line (a
``pread``; the file is never rewritten in place: versions are immutable folders).

``table[doc_id]`` / ``.get`` / ``.values()`` return complete documents (a fresh object each time, so a caller
that edits one cannot change what the next caller reads). ``stubs(documents)`` gives the text-less copies for
code that needs metadata only; it accepts any mapping (the Milvus store keeps a plain dict).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rag.core.types import Document

DOCS_FILE = "documents.jsonl"


class DocumentTable(Mapping[str, Document]):
    """``doc_id -> Document`` over ``folder/documents.jsonl`` (one JSON object per line)."""

    def __init__(self, folder: Path) -> None:
        self._path = folder / DOCS_FILE
        self._fd = os.open(self._path, os.O_RDONLY)
        # doc_id -> (metadata-only document, byte offset, byte length, characters of text)
        self._rows: dict[str, tuple[Document, int, int, int]] = {}
        pos = 0
        with open(self._path, "rb") as f:
            for line in f:
                d = json.loads(line)
                text = d.pop("text", "")
                stub = Document(text="", **d)
                self._rows[stub.doc_id] = (stub, pos, len(line), len(text))
                pos += len(line)

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def __getitem__(self, doc_id: str) -> Document:
        _, off, n, _ = self._rows[doc_id]
        line = os.pread(self._fd, n, off)
        return Document(**json.loads(line))

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def stub(self, doc_id: str) -> Document:
        """The document without its text (shared: do not edit it)."""
        return self._rows[doc_id][0]

    def stubs(self) -> Iterator[Document]:
        return (r[0] for r in self._rows.values())

    def chars(self, doc_id: str) -> int:
        return self._rows[doc_id][3]


class DocumentSubset(Mapping[str, Document]):
    """The documents of ``parent`` whose ids are in ``keys`` (a caller's collections), read through it."""

    def __init__(self, parent: Mapping[str, Document], keys: Iterable[str]) -> None:
        self._parent, self._keys = parent, frozenset(keys)

    def __getitem__(self, doc_id: str) -> Document:
        if doc_id not in self._keys:
            raise KeyError(doc_id)
        return self._parent[doc_id]

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._keys

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._parent if k in self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def stubs(self) -> Iterator[Document]:
        return (d for d in stubs(self._parent) if d.doc_id in self._keys)

    def stub(self, doc_id: str) -> Document:
        if doc_id not in self._keys:
            raise KeyError(doc_id)
        return stub(self._parent, doc_id)

    def chars(self, doc_id: str) -> int:
        if doc_id not in self._keys:
            raise KeyError(doc_id)
        return chars(self._parent, doc_id)


def stubs(documents: Mapping[str, Document]) -> Iterable[Document]:
    """Every document's metadata without reading texts (a plain dict: its documents as they are)."""
    fn: Any = getattr(documents, "stubs", None)
    return fn() if fn is not None else documents.values()


def stub(documents: Mapping[str, Document], doc_id: str) -> Document:
    """One document's metadata (KeyError when absent); text-less for a table, complete for a dict."""
    fn: Any = getattr(documents, "stub", None)
    return fn(doc_id) if fn is not None else documents[doc_id]


def chars(documents: Mapping[str, Document], doc_id: str) -> int:
    fn: Any = getattr(documents, "chars", None)
    return int(fn(doc_id)) if fn is not None else len(documents[doc_id].text)
