"""Turn files into Documents: txt/md (encoding detected), PDF (page offsets kept), DOCX (headings
kept as markdown-style headings), HTML (main text via trafilatura). One bad file never stops a batch.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.core.errors import InvalidInputError
from rag.core.types import Document

logger = logging.getLogger(__name__)

MAX_UNZIPPED = 200 * 1024 * 1024  # a DOCX that inflates past this is refused (zip bomb)
_DOC_ID = re.compile(r"^[^/\\\x00-\x1f]{1,200}$")


@dataclass
class LoadFailure:
    path: str
    error: str


def check_doc_id(doc_id: str) -> str:
    """Doc ids are names, never paths: no separators, no '..', no control characters."""
    if not _DOC_ID.match(doc_id) or doc_id in (".", "..") or doc_id.startswith(".."):
        raise InvalidInputError(f"invalid doc_id {doc_id!r}: use a file name without '/', '\\\\' or '..'")
    return doc_id


def decode(data: bytes, name: str = "") -> str:
    """Decode text bytes: UTF-8 (with or without BOM), else the best of GB18030/Big5/... guesses."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidInputError(f"{name or 'file'} looks binary (NUL bytes): upload a text document")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data, cp_isolation=["gb18030", "big5", "utf_16", "cp1252", "shift_jis"]).best()
    if best is None:
        raise InvalidInputError(f"{name or 'file'}: cannot detect the text encoding; save it as UTF-8")
    text = str(best)
    if sum(1 for ch in text[:4000] if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\n\r\t")) > 20:
        raise InvalidInputError(f"{name or 'file'} does not look like text: upload a text document")
    return text


def _pdf(data: bytes, name: str) -> tuple[str, dict[str, Any]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [p.extract_text() or "" for p in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise InvalidInputError(f"{name}: unreadable PDF ({e})") from e
    text, starts = "", []
    for p in pages:
        starts.append(len(text))
        text += p.strip("\n") + "\n\n"
    if not text.strip():
        raise InvalidInputError(f"{name}: the PDF has no extractable text (scanned images need OCR first)")
    return text, {"page_starts": starts, "pages": len(pages)}


def _docx(data: bytes, name: str) -> tuple[str, dict[str, Any]]:
    import docx

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if sum(i.file_size for i in z.infolist()) > MAX_UNZIPPED:
                raise InvalidInputError(f"{name}: the DOCX inflates past {MAX_UNZIPPED >> 20} MB; refused")
        d = docx.Document(io.BytesIO(data))
    except InvalidInputError:
        raise
    except Exception as e:  # python-docx raises many types on corrupt input
        raise InvalidInputError(f"{name}: unreadable DOCX ({type(e).__name__})") from e
    parts = []
    for p in d.paragraphs:
        t = p.text.strip()
        if not t:
            continue
        style = (p.style.name if p.style is not None else "") or ""
        m = re.match(r"(?:Heading|标题|標題)\s*(\d)", style)
        parts.append(("#" * int(m.group(1)) + " " + t) if m else ("# " + t if style == "Title" else t))
    for table in d.tables:
        for row in table.rows:
            parts.append(" | ".join(c.text.strip() for c in row.cells))
    return "\n\n".join(parts), {}


def _html(data: bytes, name: str) -> tuple[str, dict[str, Any]]:
    import trafilatura

    html = decode(data, name)
    text = trafilatura.extract(html, output_format="markdown", include_tables=True, favor_recall=True)
    if not text:
        raise InvalidInputError(f"{name}: no main text found in the HTML page")
    meta = trafilatura.extract_metadata(html)
    extra = {"title": meta.title} if meta is not None and meta.title else {}
    return text, extra


def _text(data: bytes, name: str) -> tuple[str, dict[str, Any]]:
    return decode(data, name), {}


LOADERS: dict[str, Callable[[bytes, str], tuple[str, dict[str, Any]]]] = {
    ".txt": _text, ".md": _text, ".markdown": _text, ".text": _text,
    ".pdf": _pdf, ".docx": _docx, ".html": _html, ".htm": _html,
}
SUPPORTED = sorted(LOADERS)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_bytes(data: bytes, name: str, doc_id: str | None = None, meta: dict[str, Any] | None = None) -> Document:
    suffix = Path(name).suffix.lower()
    loader = LOADERS.get(suffix)
    if loader is None:
        raise InvalidInputError(f"{name}: unsupported file type {suffix or '(none)'!r}; "
                                f"supported: {', '.join(SUPPORTED)}")
    text, extra = loader(data, name)
    if not text.strip():
        raise InvalidInputError(f"{name}: the file has no text")
    title = str(extra.pop("title", ""))
    m = {"sha256": content_hash(text), "type": suffix.lstrip("."), "collection": "default", **extra,
         **(meta or {})}
    return Document(check_doc_id(doc_id or Path(name).name), text, title=title, source=name, meta=m)


def load_file(path: Path, doc_id: str | None = None, meta: dict[str, Any] | None = None) -> Document:
    doc = load_bytes(path.read_bytes(), path.name, doc_id, meta)
    doc.source = str(path)
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
            docs.append(load_file(p, meta=meta))
        except (InvalidInputError, OSError) as e:
            msg = e.message if isinstance(e, InvalidInputError) else str(e)
            logger.warning("skipped %s: %s", p, msg)
            failures.append(LoadFailure(str(p), msg))
    return docs, failures
