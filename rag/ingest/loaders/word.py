"""Word documents: DOCX with python-docx (headings as markdown headings, tables in place as rows with their
headers); ``.doc`` and ``.wps`` (WPS Office) are converted to DOCX by LibreOffice headless first."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from rag.core.errors import ConverterError, EncryptedFileError
from rag.ingest.loaders.base import (
    Parsed,
    TextBudget,
    check_deadline,
    inflate_capped,
    remaining_budget,
    stored_zip,
    table_rows,
)

_HEADING_STYLE = re.compile(r"(?:Heading|标题|標題)\s*(\d)")


def load_docx(data: bytes, name: str) -> Parsed:
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.table import Table

    # python-docx reads what was inflated under the cap (stored, media emptied), never the original zip
    d = docx.Document(stored_zip(inflate_capped(data, name, "DOCX")))
    # style names by id, looked up once (Paragraph.style costs ~3.5 ms a paragraph: 3,000 paragraphs = 10 s)
    names: dict[str, str] = {}
    default = ""
    for s in d.styles:
        if s.type == WD_STYLE_TYPE.PARAGRAPH and s.style_id:
            names[s.style_id] = s.name or ""
    with contextlib.suppress(Exception):
        default = d.styles.default(WD_STYLE_TYPE.PARAGRAPH).name or ""  # type: ignore[union-attr]
    parts: list[str] = []
    budget = TextBudget(name, "DOCX")
    for i, block in enumerate(d.iter_inner_content()):
        if i % 256 == 0:
            check_deadline()
        if isinstance(block, Table):
            parts.extend(budget.add(r) for r in table_rows(_table_cells(block)))
            continue
        t = block.text.strip()
        if not t:
            continue
        sid = block._p.style
        style = names.get(sid, default) if sid else default
        m = _HEADING_STYLE.match(style)
        parts.append(budget.add(("#" * int(m.group(1)) + " " + t) if m else ("# " + t if style == "Title" else t)))
    return "\n\n".join(parts), {}


def _table_cells(table: Any) -> list[list[object]]:
    """Cell texts row by row; a merged cell (the same ``w:tc`` repeated) counts once."""
    rows: list[list[object]] = []
    for i, row in enumerate(table.rows):
        if i % 64 == 0:
            check_deadline()
        seen: set[int] = set()
        cells: list[object] = []
        for c in row.cells:
            key = id(c._tc)
            cells.append("" if key in seen else c.text.strip())
            seen.add(key)
        rows.append(cells)
    return rows


def soffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


def convert(data: bytes, name: str, suffix: str, target: str = "docx", infilter: str | None = None) -> bytes:
    """``data`` (a ``suffix`` file) converted by LibreOffice headless to ``target``, in a temporary folder with
    its own profile, under what is left of the file's time budget (the process group is killed past it)."""
    exe = soffice()
    if exe is None:
        raise ConverterError(f"{name}: reading {suffix} files needs LibreOffice, which is not installed "
                             "(`make install` installs libreoffice-writer-nogui)")
    timeout = remaining_budget()
    with tempfile.TemporaryDirectory(prefix="rag-soffice-") as tmp:
        src = Path(tmp) / f"input{suffix}"
        src.write_bytes(data)
        out = Path(tmp) / "out"
        cmd = [exe, f"-env:UserInstallation=file://{tmp}/profile", "--headless", "--norestore", "--nologo",
               "--nodefault", "--nolockcheck", "--convert-to", target, "--outdir", str(out), str(src)]
        if infilter:
            cmd.insert(-1, f"--infilter={infilter}")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                env={**os.environ, "HOME": tmp})
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise ConverterError(f"{name}: LibreOffice took longer than {timeout:.0f} s converting it "
                                 "(RAG_PARSE_TIMEOUT); send a DOCX copy") from e
        result = out / f"input.{target}"
        if not result.exists():
            msg = " ".join(err.decode(errors="replace").split())[:200]
            if "password" in msg.lower():
                raise EncryptedFileError(f"{name}: the document is password-protected; send a decrypted copy")
            raise ConverterError(f"{name}: LibreOffice could not read it as {suffix} (corrupt or not a "
                                 f"{suffix} file){': ' + msg if msg else ''}")
        return result.read_bytes()


OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _ole_header_ok(data: bytes) -> bool:
    """An OLE2 compound file header: magic, byte order FFFE, 512- or 4096-byte sectors."""
    return (len(data) >= 1536 and data.startswith(OLE_MAGIC) and data[28:30] == b"\xfe\xff"
            and data[30:32] in (b"\x09\x00", b"\x0c\x00"))


def load_doc(data: bytes, name: str) -> Parsed:
    """``.doc`` (Word 97-2003) and ``.wps`` (WPS Office, the same binary format): LibreOffice -> DOCX ->
    ``load_docx``. The content decides the import filter (Word binary, RTF, or HTML/XML saved as .doc; a DOCX
    renamed .doc is read directly); anything else is refused before LibreOffice could import it as plain
    text, and a conversion that comes out as noise is refused too."""
    from rag.ingest.loaders.pdf import garbage

    suffix = Path(name).suffix.lower() or ".doc"
    head = data[:8].lstrip()
    if data.startswith(b"PK\x03\x04"):
        return load_docx(data, name)
    if data.startswith(OLE_MAGIC):
        if not _ole_header_ok(data):
            raise ConverterError(f"{name}: corrupt {suffix} file (broken compound-file header)")
        infilter: str | None = "MS Word 97"
    elif head.startswith(b"{\\rtf"):
        infilter = "Rich Text Format"
    elif head.startswith(b"<"):
        infilter = None  # HTML or Word 2003 XML saved as .doc: LibreOffice detects which
    else:
        raise ConverterError(f"{name}: not a Word/WPS document (unknown file header {data[:8].hex()}); "
                             "send the original file or a DOCX")
    text, extra = load_docx(convert(data, name, suffix, infilter=infilter), name)
    sample = text[:5000]
    if sample.strip() and garbage(sample):
        raise ConverterError(f"{name}: LibreOffice could not read it as {suffix}: the text comes out as noise "
                             "(corrupt file)")
    return text, {**extra, "converted_by": "libreoffice"}
