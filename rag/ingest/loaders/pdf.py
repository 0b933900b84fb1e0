"""PDF: the text layer page by page (page offsets kept); a page with no text layer, or a garbage one (private-use
glyphs, ``(cid:12)``, replacement characters), is rendered with pdfium and OCR'd; a mixed PDF is read page by
page. Tables (in the text layer, found through pypdf's layout mode, or in OCR'd text) become rows with their
headers (``base.tables_as_rows``). ``meta``: ``pages``, ``page_starts``, ``ocr_pages`` (1-based numbers of the
pages OCR'd), ``ocr_engine``, ``tables``."""

from __future__ import annotations

import io
import re
import threading
from typing import Any

from rag.core.errors import EncryptedFileError, OcrLimitError, UnreadableFileError
from rag.ingest import ocr
from rag.ingest.loaders.base import Parsed, TextBudget, check_deadline, pace, pdf_limits, tables_as_rows

_CID = re.compile(r"\(cid:\d+\)")
_GOOD = re.compile(r"[\u3400-\u9fff\uf900-\ufaffA-Za-z0-9\u3000-\u303f\uff00-\uffef，。、；：？！“”‘’（）《》]")
_PDFIUM_LOCK = threading.Lock()  # pdfium is not thread-safe: one render at a time per process
MIN_TEXT = 20  # fewer non-space characters than this on a page that has images: a scan with a stray header


def garbage(text: str) -> bool:
    """A text layer that does not read: mostly (cid:n), private-use or replacement glyphs, or symbols."""
    t = _CID.sub("\ufffd", "".join(text.split()))
    if not t:
        return True
    good = len(_GOOD.findall(t))
    return good / len(t) < 0.5


def _has_image(page: Any) -> bool:
    try:
        res = page.get("/Resources")
        xobj = res.get_object().get("/XObject") if res is not None else None
        if xobj is None:
            return False
        return any(x.get_object().get("/Subtype") == "/Image" for x in xobj.get_object().values())
    except Exception:  # a broken resource dictionary: let the text decide
        return False


def needs_ocr(text: str, page: Any) -> bool:
    stripped = "".join(text.split())
    if not stripped:
        return True
    if garbage(text):
        return True
    return len(stripped) < MIN_TEXT and _has_image(page)


def _may_have_table(text: str) -> bool:
    """Cheap pre-check before the (slower) layout extraction: 3+ short lines of several space-separated
    words, as pypdf's plain mode writes table rows."""
    rows = [ln for ln in text.split("\n") if 2 <= len(ln.split()) <= 12 and len(ln) <= 120
            and not ln.rstrip().endswith(("。", "；", "."))]
    return len(rows) >= 2


def scanned_pages(data: bytes, sample: int = 5) -> int:
    """A quick guess (pdfium, no parse) of how many pages of a PDF need OCR: its page count times the share of
    up to ``sample`` evenly spaced pages whose text layer is missing or garbage; 0 when pdfium cannot open it.
    Decides whether an upload runs as a background job before it is read."""
    import pypdfium2 as pdfium

    with _PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(data)
        except Exception:  # encrypted or broken: the loader will say why
            return 0
        try:
            n = len(doc)
            picks = sorted({round(i * (n - 1) / max(1, sample - 1)) for i in range(min(sample, n))})
            empty = 0
            for i in picks:
                page = doc[i]
                try:
                    textpage = page.get_textpage()
                    text = textpage.get_text_range()
                    textpage.close()
                finally:
                    page.close()
                empty += len("".join(text.split())) < MIN_TEXT or garbage(text)
            return round(n * empty / len(picks)) if picks else 0
        finally:
            doc.close()


def render_pages(data: bytes, numbers: list[int], name: str) -> list[Any]:
    """PIL images of the 0-based ``numbers`` pages at ``ocr.OCR_DPI``, scaled down to the pixel limit."""
    import pypdfium2 as pdfium

    limit = ocr.max_pixels()
    out = []
    with _PDFIUM_LOCK:
        doc = pdfium.PdfDocument(data)
        try:
            for i in numbers:
                check_deadline()
                page = doc[i]
                try:
                    w, h = page.get_size()  # points
                    scale = ocr.OCR_DPI / 72
                    if w * h * scale * scale > limit:
                        scale = (limit / max(1.0, w * h)) ** 0.5
                    if scale < ocr.MIN_DPI / 72:
                        raise OcrLimitError(f"{name} page {i + 1}: {w / 72:.0f}x{h / 72:.0f} inches cannot be "
                                            f"rendered for OCR under {limit / 1e6:.0f} MP ({ocr.MAX_PIXELS_ENV})")
                    out.append(page.render(scale=scale, grayscale=True).to_pil())
                finally:
                    page.close()
        finally:
            doc.close()
    return out


def load_pdf(data: bytes, name: str) -> Parsed:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    encrypted = f"{name}: the PDF is encrypted (password-protected); send a decrypted copy"
    pages: list[str] = []
    scan: list[int] = []
    tables = 0
    budget = TextBudget(name, "PDF")
    with pdf_limits():
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
            for i, page in enumerate(reader.pages):
                check_deadline()
                t = page.extract_text() or ""
                if needs_ocr(t, page):
                    scan.append(i)
                    t = ""
                elif _may_have_table(t):
                    laid, n = tables_as_rows(page.extract_text(extraction_mode="layout") or "")
                    if n:
                        t, tables = laid, tables + n
                pages.append(budget.add(t))
        except FileNotDecryptedError as e:
            raise EncryptedFileError(encrypted) from e
    extra: dict[str, Any] = {}
    if scan:
        if ocr.engine_name() == "none":
            if len(scan) == len(pages):
                raise UnreadableFileError(f"{name}: the PDF has no text layer and OCR is turned off "
                                          f"({ocr.ENGINE_ENV}=none)")
        else:
            ocr.check_page_count(len(scan), name)
            engine = ocr.get_engine()
            paced = pace(name, len(scan))
            for done, i in enumerate(ocr.progress(scan, len(scan), name)):
                paced(done)
                check_deadline()
                img = render_pages(data, [i], name)[0]
                laid, n = tables_as_rows(ocr.ocr_image(img, engine), gap=2)
                pages[i], tables = budget.add(laid), tables + n
            extra = {"ocr_pages": [i + 1 for i in scan], "ocr_engine": engine.name}
    text, starts = "", []
    for p in pages:
        starts.append(len(text))
        text += p.strip("\n") + "\n\n"
    if not text.strip():
        cause = f": OCR found no text on its {len(scan)} page(s)" if scan else ""
        raise UnreadableFileError(f"{name}: the PDF has no extractable text{cause}")
    if tables:
        extra["tables"] = tables
    return text, {"page_starts": starts, "pages": len(pages), **extra}
