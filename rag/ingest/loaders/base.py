"""What every loader shares: the per-file time budget, text decoding, capped zip inflation, pypdf limits and
the table renderer (rows kept with their headers).

Hostile input is bounded here, whoever calls (the API's upload route or `rag ingest`):

* every parser failure, whatever its type (pypdf's NotImplementedError, AssertionError, RecursionError,
  trafilatura's AssertionError, ...), becomes an ``UnreadableFileError`` naming the file and the cause (422);
* a zip package (DOCX, XLSX, PPTX, OFD) is inflated member by member in blocks with a hard cap on the bytes
  really produced (the sizes a zip declares are not trusted), and its parser reads a stored copy of what was
  inflated, never the original;
* PDF stream decompression runs under pypdf's limits (``PDF_LIMITS``); a password-protected PDF is an
  ``EncryptedFileError`` ("send a decrypted copy");
* each file has a time budget (``RAG_PARSE_TIMEOUT`` seconds, default 120, read per call): the parsers'
  loops (pages, paragraphs, rows, OCR pages) check it and stop with a ``ParseTimeoutError``; an external
  converter (LibreOffice) gets what is left of it as its timeout.
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
from typing import Any

from rag.core.errors import (
    EncryptedFileError,
    InvalidInputError,
    ParseTimeoutError,
    UnreadableFileError,
)

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
# who wants to hear how far a file's slow loop (OCR pages) has got: a background upload job's progress
_PROGRESS: ContextVar[Callable[[int, int], None] | None] = ContextVar("parse_progress", default=None)


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


def remaining_budget(default: float = 600.0) -> float:
    """Seconds left of the current file's budget (``default`` when there is none), at least 1."""
    d = _DEADLINE.get()
    return default if d is None else max(1.0, d[0] - time.monotonic())


def check_deadline() -> None:
    d = _DEADLINE.get()
    if d is not None and time.monotonic() > d[0]:
        raise ParseTimeoutError(f"{d[2]}: reading it took longer than {d[1]:g} s ({PARSE_TIMEOUT_ENV}); "
                                "split the file or send a simpler copy")


@contextlib.contextmanager
def progress_to(callback: Callable[[int, int], None]) -> Iterator[None]:
    """Call ``callback(done, total)`` as the parse in this thread gets through its slow steps (OCR pages)."""
    token = _PROGRESS.set(callback)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def pace(name: str, total: int, what: str = "OCR") -> Callable[[int], None]:
    """A check for a loop over ``total`` slow steps (OCR pages): after each, when the pace so far says the rest
    cannot finish within the file's budget, stop now with a ``ParseTimeoutError`` that says how long the file
    would take, instead of working until the budget runs out."""
    start = time.monotonic()

    def check(done: int) -> None:
        report = _PROGRESS.get()
        if report is not None:
            report(done, total)
        d = _DEADLINE.get()
        if d is None or done <= 0 or done >= total:
            return
        per = (time.monotonic() - start) / done
        left = d[0] - time.monotonic()
        if per * (total - done) > 1.5 * left:
            raise ParseTimeoutError(f"{name}: {what} of {total} pages takes about {per:.1f} s a page here, "
                                    f"{per * total:.0f} s in all, more than the {d[1]:g} s budget "
                                    f"({PARSE_TIMEOUT_ENV}); raise it for this file or split the file")

    return check


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
def pdf_limits() -> Iterator[None]:
    try:
        from pypdf import apply_configuration
    except ImportError:  # pypdf < 7.1: its built-in defaults apply
        yield
        return
    with apply_configuration(**PDF_LIMITS):
        yield


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


def stored_zip(members: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for member, blob in members.items():
            z.writestr(member, blob)
    buf.seek(0)
    return buf


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cause(e: BaseException) -> str:
    msg = " ".join(str(e).split())[:200]
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


Parsed = tuple[str, dict[str, Any]]
Loader = Callable[[bytes, str], Parsed]


class TextBudget:
    """Counts extracted characters; past ``MAX_TEXT_CHARS`` the file is refused (split it)."""

    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind, self.chars = name, kind, 0

    def add(self, text: str) -> str:
        self.chars += len(text)
        if self.chars > MAX_TEXT_CHARS:
            raise UnreadableFileError(f"{self.name}: more than {MAX_TEXT_CHARS:,} characters of text; "
                                      f"split the {self.kind}")
        return text


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return " ".join(str(v).split())


def table_rows(rows: list[list[object]]) -> list[str]:
    """A table as text lines, each data row kept with its header: ``列名：值，列名：值。``.

    The first row with two or more non-empty cells is the header; empty cells are dropped; a table of one
    row (or with no header) comes out as ``a | b`` lines."""
    cells = [[_cell(v) for v in r] for r in rows]
    cells = [r for r in cells if any(r)]
    if not cells:
        return []
    h = next((i for i, r in enumerate(cells) if sum(1 for c in r if c) >= 2), None)
    if h is None or h == len(cells) - 1:
        return [" | ".join(c for c in r if c) for r in cells]
    out = [" | ".join(c for c in r if c) for r in cells[:h]]  # caption lines above the header
    header = cells[h]
    for r in cells[h + 1 :]:
        parts = []
        for j, v in enumerate(r):
            if not v:
                continue
            col = header[j] if j < len(header) and header[j] else f"第{j + 1}列"
            parts.append(v if col == v else f"{col}：{v}")
        if parts:
            line = "，".join(parts)
            out.append(line if line[-1] in "。！？；.!?" else line + "。")
    return out


_CJK_SPACE = re.compile(r"(?<=[\u3400-\u9fff\uff00-\uffef])\s+|\s+(?=[\u3400-\u9fff\uff00-\uffef])")
_HEADER_PUNCT = re.compile(r"[，。；：,;:！？!?]")
MAX_HEADER_CELL = 12
MAX_CELL = 40


def _squeeze(cell: str) -> str:
    """Spaces a layout put inside a cell: none next to Chinese, one between Latin words."""
    return _CJK_SPACE.sub("", " ".join(cell.split()))


def tables_as_rows(text: str, gap: int = 3) -> tuple[str, int]:
    """Find tables in layout text (cells apart by ``gap`` or more spaces, as pypdf's layout mode and
    ``ocr.layout`` write them) and rewrite each as rows with their headers (``table_rows``); other lines are
    returned with their spacing squeezed. A table is a header line of 2+ short cells without punctuation
    followed by at least one line with as many cells; text in two columns rarely passes that. Returns the
    text and the number of tables found."""
    split = re.compile(rf"\s{{{gap},}}")
    lines = [ln for ln in text.split("\n")]
    cells = [[c for c in split.split(ln.strip()) if c] for ln in lines]
    out: list[str] = []
    found = 0
    i = 0
    while i < len(lines):
        head = cells[i]
        if len(head) >= 2 and all(len(c) <= MAX_HEADER_CELL and not _HEADER_PUNCT.search(c) for c in head):
            rows, j = [head], i + 1
            while j < len(lines):
                if not lines[j].strip():  # layout mode puts blank lines between rows
                    j += 1
                    continue
                if len(cells[j]) != len(head) or any(len(c) > MAX_CELL for c in cells[j]):
                    break
                rows.append(cells[j])
                j += 1
            if len(rows) >= 2:
                while j > i and not lines[j - 1].strip():
                    j -= 1
                out.extend(table_rows([[_squeeze(c) for c in r] for r in rows]))
                found += 1
                i = j
                continue
        out.append(_squeeze(lines[i]) if lines[i].strip() else "")
        i += 1
    return "\n".join(out), found
