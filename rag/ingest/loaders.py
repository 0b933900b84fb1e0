"""Turn files into Documents: txt/md (encoding detected), PDF (page offsets kept), DOCX (headings
kept as markdown-style headings), HTML (main text via trafilatura). One bad file never stops a batch.

Hostile input is bounded here, whoever calls (the API's upload route or `rag ingest`):

* every parser failure, whatever its type (pypdf's NotImplementedError, AssertionError, RecursionError,
  trafilatura's AssertionError, ...), becomes an ``UnreadableFileError`` naming the file and the cause (422);
* a DOCX is inflated member by member in blocks with a hard cap on the bytes really produced (the sizes a zip
  declares are not trusted), and python-docx reads a stored copy of what was inflated, never the original;
* PDF stream decompression runs under pypdf's limits (``PDF_LIMITS``); a password-protected PDF is an
  ``EncryptedFileError`` ("send a decrypted copy");
* each file has a time budget (``RAG_PARSE_TIMEOUT`` seconds, default 120, read per call): the parsers'
  loops check it and stop with a ``ParseTimeoutError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.core.errors import (
    EncryptedFileError,
    InvalidInputError,
    ParseTimeoutError,
    RagError,
    UnreadableFileError,
)
from rag.core.types import Document

logger = logging.getLogger(__name__)

MAX_UNZIPPED = 64 * 1024 * 1024  # real bytes inflated from a DOCX's XML parts, all members together
MAX_ZIP_MEMBERS = 10_000
MAX_TEXT_CHARS = 20_000_000  # text extracted from one PDF or DOCX
ZIP_BLOCK = 1 << 20
PARSE_TIMEOUT_ENV = "RAG_PARSE_TIMEOUT"
DEFAULT_PARSE_TIMEOUT = 120.0
# pypdf's decompression and parsing limits while reading an upload (pypdf >= 7.1 `Configuration`)
PDF_LIMITS: dict[str, Any] = {
    "maximum_declared_stream_length": 32_000_000,
    "array_based_stream_maximum_output_length": 32_000_000,
    "zlib_maximum_output_length": 32_000_000,
    "lzw_maximum_output_length": 32_000_000,
    "run_length_maximum_output_length": 32_000_000,
    "brotli_maximum_output_length": 32_000_000,
    "jbig2_maximum_output_length": 32_000_000,
    "image_maximum_buffer_size": 32_000_000,
    "stream_decoding_work_maximum_length": 100_000_000,
    "jbig2dec_binary": None,  # never run an external decoder on an upload
}
_DOC_ID = re.compile(r"^[^/\\\x00-\x1f]{1,200}$")
_DEADLINE: ContextVar[tuple[float, float, str] | None] = ContextVar("parse_deadline", default=None)


@dataclass
class LoadFailure:
    path: str
    error: str


def parse_timeout() -> float:
    """Seconds one file may take to parse (``RAG_PARSE_TIMEOUT``; 0 or less = no budget)."""
    raw = os.environ.get(PARSE_TIMEOUT_ENV, "")
    try:
        return float(raw) if raw.strip() else DEFAULT_PARSE_TIMEOUT
    except ValueError:
        logger.warning("%s=%r is not a number: using %g s", PARSE_TIMEOUT_ENV, raw, DEFAULT_PARSE_TIMEOUT)
        return DEFAULT_PARSE_TIMEOUT


@contextlib.contextmanager
def time_budget(name: str, seconds: float | None = None) -> Iterator[None]:
    """Run a file's parse under a budget; ``check_deadline`` in the parsers' loops enforces it."""
    budget = parse_timeout() if seconds is None else seconds
    token = _DEADLINE.set((time.monotonic() + budget, budget, name) if budget > 0 else None)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def check_deadline() -> None:
    d = _DEADLINE.get()
    if d is not None and time.monotonic() > d[0]:
        raise ParseTimeoutError(f"{d[2]}: reading it took longer than {d[1]:g} s ({PARSE_TIMEOUT_ENV}); "
                                "split the file or send a simpler copy")


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


@contextlib.contextmanager
def _pdf_limits() -> Iterator[None]:
    try:
        from pypdf import apply_configuration
    except ImportError:  # pypdf < 7.1: its built-in defaults apply
        yield
        return
    with apply_configuration(**PDF_LIMITS):
        yield


def _pdf(data: bytes, name: str) -> tuple[str, dict[str, Any]]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    encrypted = f"{name}: the PDF is encrypted (password-protected); send a decrypted copy"
    pages: list[str] = []
    with _pdf_limits():
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                # an owner password alone (no user password) opens with "", as in any viewer
                try:
                    opened = reader.decrypt("")
                except (DependencyError, NotImplementedError) as e:  # e.g. AES without `cryptography`
                    raise EncryptedFileError(f"{encrypted} ({e})") from e
                if not opened:
                    raise EncryptedFileError(encrypted)
            chars = 0
            for page in reader.pages:
                check_deadline()
                t = page.extract_text() or ""
                chars += len(t)
                if chars > MAX_TEXT_CHARS:
                    raise UnreadableFileError(f"{name}: more than {MAX_TEXT_CHARS:,} characters of text; "
                                              "split the PDF")
                pages.append(t)
        except FileNotDecryptedError as e:
            raise EncryptedFileError(encrypted) from e
    text, starts = "", []
    for p in pages:
        starts.append(len(text))
        text += p.strip("\n") + "\n\n"
    if not text.strip():
        raise UnreadableFileError(f"{name}: the PDF has no extractable text (scanned images need OCR first)")
    return text, {"page_starts": starts, "pages": len(pages)}


def _xml_part(member: str) -> bool:
    """The OOXML parts text extraction needs; media, fonts and embedded objects are not inflated."""
    return member.lower().endswith((".xml", ".rels"))


def inflate_capped(data: bytes, name: str, kind: str, cap: int = MAX_UNZIPPED,
                   keep: Callable[[str], bool] = _xml_part) -> dict[str, bytes]:
    """The ``keep`` members of a zip, inflated in ``ZIP_BLOCK`` blocks: more than ``cap`` bytes really produced
    (whatever sizes the archive declares), more than ``MAX_ZIP_MEMBERS`` members, an encrypted member or a
    CRC mismatch is an error; other members map to ``b""`` (never inflated)."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as e:
        raise UnreadableFileError(f"{name}: unreadable {kind}: not a zip package ({e})") from e
    with z:
        infos = z.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise UnreadableFileError(f"{name}: unreadable {kind}: {len(infos)} archive members (limit "
                                      f"{MAX_ZIP_MEMBERS})")
        bomb = f"{name}: the {kind} inflates past {cap >> 20} MB; refused"
        wanted = [i for i in infos if not i.is_dir() and keep(i.filename)]
        if sum(i.file_size for i in wanted) > cap:  # declared sizes: an honest big file stops here, cheaply
            raise UnreadableFileError(bomb)
        out: dict[str, bytes] = {i.filename: b"" for i in infos if not i.is_dir()}
        total = 0
        for info in wanted:
            if info.flag_bits & 0x1:
                raise EncryptedFileError(f"{name}: the {kind} is encrypted (password-protected); "
                                         "send a decrypted copy")
            blocks = []
            try:
                with z.open(info) as f:
                    while block := f.read(ZIP_BLOCK):  # read(n) inflates at most ~n bytes per call
                        total += len(block)
                        if total > cap:
                            raise UnreadableFileError(bomb)
                        blocks.append(block)
                        check_deadline()
            except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError,
                    NotImplementedError, RuntimeError) as e:  # bad CRC, unsupported method, truncated data
                raise UnreadableFileError(f"{name}: unreadable {kind}: member {info.filename!r} is corrupt "
                                          f"({type(e).__name__}: {e})") from e
            out[info.filename] = b"".join(blocks)
    return out


def _stored_zip(members: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for member, blob in members.items():
            z.writestr(member, blob)
    buf.seek(0)
    return buf


def _docx(data: bytes, name: str) -> tuple[str, dict[str, Any]]:
    import docx
    from docx.enum.style import WD_STYLE_TYPE

    # python-docx reads what was inflated under the cap (stored, media emptied), never the original zip
    d = docx.Document(_stored_zip(inflate_capped(data, name, "DOCX")))
    # style names by id, looked up once (Paragraph.style costs ~3.5 ms a paragraph: 3,000 paragraphs = 10 s)
    names: dict[str, str] = {}
    default = ""
    for s in d.styles:
        if s.type == WD_STYLE_TYPE.PARAGRAPH and s.style_id:
            names[s.style_id] = s.name or ""
    with contextlib.suppress(Exception):
        default = d.styles.default(WD_STYLE_TYPE.PARAGRAPH).name or ""  # type: ignore[union-attr]
    parts, chars = [], 0
    for i, p in enumerate(d.paragraphs):
        if i % 256 == 0:
            check_deadline()
        t = p.text.strip()
        if not t:
            continue
        sid = p._p.style
        style = names.get(sid, default) if sid else default
        m = re.match(r"(?:Heading|标题|標題)\s*(\d)", style)
        parts.append(("#" * int(m.group(1)) + " " + t) if m else ("# " + t if style == "Title" else t))
        chars += len(t)
        if chars > MAX_TEXT_CHARS:
            raise UnreadableFileError(f"{name}: more than {MAX_TEXT_CHARS:,} characters of text; split the DOCX")
    for table in d.tables:
        for i, row in enumerate(table.rows):
            if i % 64 == 0:
                check_deadline()
            parts.append(" | ".join(c.text.strip() for c in row.cells))
    return "\n\n".join(parts), {}


def _html(data: bytes, name: str) -> tuple[str, dict[str, Any]]:
    import trafilatura

    html = decode(data, name)
    text = trafilatura.extract(html, output_format="markdown", include_tables=True, favor_recall=True)
    if not text:
        raise UnreadableFileError(f"{name}: no main text found in the HTML page")
    check_deadline()
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
KINDS = {".pdf": "PDF", ".docx": "DOCX", ".html": "HTML", ".htm": "HTML"}


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _cause(e: BaseException) -> str:
    msg = " ".join(str(e).split())[:200]
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def load_bytes(data: bytes, name: str, doc_id: str | None = None, meta: dict[str, Any] | None = None,
               timeout: float | None = None) -> Document:
    """One file's bytes -> Document. Any failure is a typed error naming ``name`` (a parser's own exception
    becomes ``UnreadableFileError`` with its cause); ``timeout`` seconds (default ``RAG_PARSE_TIMEOUT``)."""
    suffix = Path(name).suffix.lower()
    loader = LOADERS.get(suffix)
    if loader is None:
        raise InvalidInputError(f"{name}: unsupported file type {suffix or '(none)'!r}; "
                                f"supported: {', '.join(SUPPORTED)}")
    kind = KINDS.get(suffix, "text file")
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
        raise UnreadableFileError(f"{name}: unreadable {kind} ({_cause(e)})") from e
    if not text.strip():
        raise InvalidInputError(f"{name}: the file has no text")
    title = str(extra.pop("title", ""))
    m = {"sha256": content_hash(text), "type": suffix.lstrip("."), "collection": "default", **extra,
         **(meta or {})}
    return Document(check_doc_id(doc_id or Path(name).name), text, title=title, source=Path(name).name, meta=m)


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
