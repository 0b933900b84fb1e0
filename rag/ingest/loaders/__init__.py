"""Turn files into Documents, one loader per format behind one interface (``load_bytes``/``load_path``).

| suffix | loader | how |
|---|---|---|
| .txt .md .markdown .text | ``text`` | UTF-8, GB18030/Big5/... detected |
| .html .htm | ``web`` | main text via trafilatura |
| .pdf | ``pdf`` | text layer page by page; pages without one (or a garbage one) OCR'd; page numbers kept |
| .docx | ``word`` | headings as markdown headings, tables in place as rows with headers |
| .doc .wps | ``word`` | LibreOffice headless -> DOCX |
| .xlsx .xls .csv | ``sheet`` | a heading per sheet, each row with its header (``列名：值``) |
| .pptx | ``slides`` | slide titles as headings, text frames, tables; page = slide |
| .ofd | ``ofd`` | TextCode text of each page in reading order; image pages OCR'd |
| .png .jpg .jpeg .tif .tiff .bmp .webp | ``image`` | OCR (``rag/ingest/ocr.py``), a TIFF page a frame |

A loader is ``(bytes, name) -> (text, extra meta)``; ``register`` adds one. Every failure is a typed error
naming the file and the cause (422); ``load_path`` collects failures and loads the rest of a batch. Bounds on
hostile input are in ``base`` (capped zip inflation, pypdf limits, per-file time budget) and ``ocr`` (page and
pixel limits).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.core.errors import InvalidInputError, RagError, UnreadableFileError, UnsupportedFileError
from rag.core.types import Document
from rag.ingest.loaders.base import (
    DEFAULT_PARSE_TIMEOUT,
    MAX_TEXT_CHARS,
    MAX_UNZIPPED,
    MAX_ZIP_MEMBERS,
    PARSE_TIMEOUT_ENV,
    PDF_LIMITS,
    ZIP_BLOCK,
    Loader,
    cause,
    check_deadline,
    check_doc_id,
    content_hash,
    decode,
    inflate_capped,
    parse_timeout,
    table_rows,
    time_budget,
)
from rag.ingest.loaders.image import load_image
from rag.ingest.loaders.ofd import load_ofd
from rag.ingest.loaders.pdf import load_pdf
from rag.ingest.loaders.sheet import load_csv, load_xls, load_xlsx
from rag.ingest.loaders.slides import load_pptx
from rag.ingest.loaders.text import load_text
from rag.ingest.loaders.web import load_html
from rag.ingest.loaders.word import load_doc, load_docx
from rag.ingest.metadata import extract_metadata
from rag.ingest.validity import find_references

__all__ = [
    "DEFAULT_PARSE_TIMEOUT", "KINDS", "LOADERS", "MAX_TEXT_CHARS", "MAX_UNZIPPED", "MAX_ZIP_MEMBERS",
    "PARSE_TIMEOUT_ENV", "PDF_LIMITS", "SUPPORTED", "ZIP_BLOCK", "LoadFailure", "check_deadline", "check_doc_id",
    "content_hash", "decode", "display_source", "document_metadata", "inflate_capped", "iter_files", "load_bytes",
    "load_file", "load_path", "parse_timeout", "register", "table_rows", "time_budget",
]

logger = logging.getLogger(__name__)

LOADERS: dict[str, Loader] = {}
KINDS: dict[str, str] = {}
SUPPORTED: list[str] = []


def register(suffixes: tuple[str, ...], kind: str, loader: Loader) -> None:
    """Read files ending in ``suffixes`` with ``loader``; ``kind`` names the format in error messages."""
    for s in suffixes:
        LOADERS[s] = loader
        KINDS[s] = kind
    SUPPORTED[:] = sorted(LOADERS)


register((".txt", ".md", ".markdown", ".text"), "text file", load_text)
register((".html", ".htm"), "HTML", load_html)
register((".pdf",), "PDF", load_pdf)
register((".docx",), "DOCX", load_docx)
register((".doc",), "DOC", load_doc)
register((".wps",), "WPS", load_doc)
register((".xlsx",), "XLSX", load_xlsx)
register((".xls",), "XLS", load_xls)
register((".csv",), "CSV", load_csv)
register((".pptx",), "PPTX", load_pptx)
register((".ofd",), "OFD", load_ofd)
register((".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"), "image", load_image)


@dataclass
class LoadFailure:
    path: str
    error: str


def load_bytes(data: bytes, name: str, doc_id: str | None = None, meta: dict[str, Any] | None = None,
               timeout: float | None = None) -> Document:
    """One file's bytes -> Document. Any failure is a typed error naming ``name`` (a parser's own exception
    becomes ``UnreadableFileError`` with its cause); ``timeout`` seconds (default ``RAG_PARSE_TIMEOUT``)."""
    suffix = Path(name).suffix.lower()
    loader = LOADERS.get(suffix)
    if loader is None:
        raise UnsupportedFileError(f"{name}: unsupported file type {suffix or '(none)'!r}; "
                                   f"supported: {', '.join(SUPPORTED)}")
    kind = KINDS.get(suffix, "file")
    try:
        with time_budget(name, timeout):
            text, extra = loader(data, name)
    except RagError:
        raise
    except RecursionError as e:
        raise UnreadableFileError(f"{name}: unreadable {kind}: its structure is nested too deeply "
                                  "(RecursionError)") from e
    except MemoryError as e:
        raise UnreadableFileError(f"{name}: unreadable {kind}: too large to read in memory") from e
    except Exception as e:  # parsers raise anything on hostile input: never a 500
        logger.info("%s: %s parser failed", name, kind, exc_info=True)
        raise UnreadableFileError(f"{name}: unreadable {kind} ({cause(e)})") from e
    if not text.strip():
        raise InvalidInputError(f"{name}: the file has no text")
    title = str(extra.pop("title", ""))
    m = {"sha256": content_hash(text), "type": suffix.lstrip("."), "collection": "default",
         **document_metadata(text, title), **extra, **(meta or {})}
    title = title or str(m.pop("title", ""))
    m.pop("title", None)  # the title is Document.title
    return Document(check_doc_id(doc_id or Path(name).name), text, title=title, source=Path(name).name, meta=m)


def document_metadata(text: str, title: str = "") -> dict[str, Any]:
    """The 公文 metadata the text states (``rag/ingest/metadata.py``) and the documents it repeals, replaces or
    amends (``rag/ingest/validity.py``, under ``repeals``)."""
    found = extract_metadata(text)
    refs = find_references(text, str(found.get("title") or ""), str(found.get("doc_number") or ""))
    if refs:
        found["repeals"] = refs
    if title.strip() or not found.get("title"):
        found.pop("title", None)  # the loader's own title comes first
    return found


def display_source(path: Path, root: Path | None = None) -> str:
    """What ``source`` records for a file: its path below the ingested folder (``seeds/a.txt``), never the
    server's absolute path."""
    if root is not None and root.is_dir():
        with contextlib.suppress(ValueError):
            return (Path(root.resolve().name) / path.resolve().relative_to(root.resolve())).as_posix()
    return path.name


def load_file(path: Path, doc_id: str | None = None, meta: dict[str, Any] | None = None,
              root: Path | None = None) -> Document:
    doc = load_bytes(path.read_bytes(), path.name, doc_id, meta)
    doc.source = display_source(path, root)
    return doc


def iter_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    if not root.exists():
        raise InvalidInputError(f"{root} does not exist: give a file or a folder of documents")
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            yield p


def load_path(root: Path, meta: dict[str, Any] | None = None) -> tuple[list[Document], list[LoadFailure]]:
    """Load every file under ``root``; failures are collected and the rest still load."""
    docs, failures = [], []
    for p in iter_files(root):
        try:
            docs.append(load_file(p, meta=meta, root=root))
        except (InvalidInputError, OSError) as e:
            msg = e.message if isinstance(e, InvalidInputError) else str(e)
            logger.warning("skipped %s: %s", p, msg)
            failures.append(LoadFailure(str(p), msg))
    return docs, failures
