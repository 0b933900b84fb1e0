"""OFD (GB/T 33190, the national e-document format): a zip of XML. ``OFD.xml`` names each document's
``Document.xml``, which lists its pages; a page's ``Content.xml`` holds ``TextObject``/``TextCode`` text with
positions (mm). Text is read page by page in reading order (lines by their baseline, left to right); a page
with no text but images (a scan) has its images OCR'd. ``page_starts`` per page; an encrypted OFD is refused."""

from __future__ import annotations

import io
import posixpath
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from rag.core.errors import EncryptedFileError, UnreadableFileError
from rag.ingest import ocr
from rag.ingest.loaders.base import (
    MAX_UNZIPPED,
    Parsed,
    TextBudget,
    check_deadline,
    inflate_capped,
    pace,
    tables_as_rows,
)

MAX_PAGES = 10_000


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml(blob: bytes, name: str, member: str) -> ET.Element:
    if b"<!DOCTYPE" in blob[:4096] or b"<!ENTITY" in blob:
        raise UnreadableFileError(f"{name}: unreadable OFD: {member} declares a DTD/entities; refused")
    try:
        return ET.fromstring(blob)
    except ET.ParseError as e:
        raise UnreadableFileError(f"{name}: unreadable OFD: {member} is not well-formed XML ({e})") from e


def _find(el: ET.Element, *path: str) -> ET.Element | None:
    cur: ET.Element | None = el
    for part in path:
        if cur is None:
            return None
        cur = next((c for c in cur if _local(c.tag) == part), None)
    return cur


def _iter(el: ET.Element, tag: str) -> list[ET.Element]:
    return [e for e in el.iter() if _local(e.tag) == tag]


def _resolve(base: str, loc: str) -> str:
    loc = loc.strip().replace("\\", "/")
    path = loc.lstrip("/") if loc.startswith("/") else posixpath.join(base, loc)
    return posixpath.normpath(path)


def _floats(s: str | None, n: int) -> list[float]:
    try:
        v = [float(x) for x in (s or "").replace(",", " ").split()]
    except ValueError:
        v = []
    return (v + [0.0] * n)[:n]


@dataclass
class _Glyphs:
    text: str
    x: float
    y: float
    size: float


def _page_text(root: ET.Element) -> str:
    runs: list[_Glyphs] = []
    for obj in _iter(root, "TextObject"):
        bx, by, _, _ = _floats(obj.get("Boundary"), 4)
        size = _floats(obj.get("Size"), 1)[0] or 3.5
        for code in (c for c in obj if _local(c.tag) == "TextCode"):
            if code.text and code.text.strip():
                x, y = _floats(code.get("X"), 1)[0], _floats(code.get("Y"), 1)[0]
                runs.append(_Glyphs(code.text, bx + x, by + y, size))
    runs.sort(key=lambda g: (g.y, g.x))
    lines: list[list[_Glyphs]] = []
    for g in runs:
        if lines and abs(g.y - lines[-1][0].y) < 0.5 * g.size:
            lines[-1].append(g)
        else:
            lines.append([g])
    out: list[str] = []
    prev_y: float | None = None
    for line in lines:
        line.sort(key=lambda g: g.x)
        text = line[0].text
        for a, b in zip(line, line[1:]):
            est_end = a.x + len(a.text) * a.size
            text += ("  " if b.x - est_end > 1.5 * a.size else "") + b.text
        y, size = line[0].y, line[0].size
        if prev_y is not None and y - prev_y > 2.2 * size:
            out.append("")
        out.append(text.strip())
        prev_y = y
    return "\n".join(out)


def _media(xml: dict[str, ET.Element], res_files: list[str]) -> dict[str, str]:
    """MultiMedia ``ID`` -> zip member of its file, from the document's resource files."""
    out: dict[str, str] = {}
    for rf in res_files:
        root = xml.get(rf)
        if root is None:
            continue
        base = _resolve(posixpath.dirname(rf), root.get("BaseLoc", ""))
        for mm in _iter(root, "MultiMedia"):
            f = _find(mm, "MediaFile")
            if mm.get("ID") and f is not None and f.text:
                out[mm.get("ID", "")] = _resolve(base, f.text)
    return out


def load_ofd(data: bytes, name: str) -> Parsed:
    members = inflate_capped(data, name, "OFD", keep=lambda m: m.lower().endswith(".xml"))
    lower = {m.lower(): m for m in members}
    if "ofd.xml" not in lower:
        raise UnreadableFileError(f"{name}: unreadable OFD: no OFD.xml in the package")
    if any(posixpath.basename(m) == "encryptions.xml" for m in lower):
        raise EncryptedFileError(f"{name}: the OFD is encrypted; send a decrypted copy")
    xml: dict[str, ET.Element] = {}

    def get(member: str) -> ET.Element | None:
        real = lower.get(member.lower())
        if real is None or not members[real]:
            return None
        if real not in xml:
            xml[real] = _xml(members[real], name, real)
        return xml[real]

    ofd_root = get("OFD.xml")
    assert ofd_root is not None
    if any(_local(e.tag) in ("Encryptions", "Encryption") for e in ofd_root.iter()):
        raise EncryptedFileError(f"{name}: the OFD is encrypted; send a decrypted copy")
    pages: list[tuple[str, list[str]]] = []  # (page text, image members to OCR when there is no text)
    title = ""
    for body in _iter(ofd_root, "DocBody"):
        info = _find(body, "DocInfo", "Title")
        if info is not None and info.text and not title:
            title = info.text.strip()
        root_el = _find(body, "DocRoot")
        if root_el is None or not root_el.text:
            continue
        doc_path = _resolve("", root_el.text)
        doc = get(doc_path)
        if doc is None:
            raise UnreadableFileError(f"{name}: unreadable OFD: {doc_path} is missing")
        doc_dir = posixpath.dirname(doc_path)
        common = _find(doc, "CommonData")
        res_files = []
        if common is not None:
            for tag in ("PublicRes", "DocumentRes"):
                for el in (c for c in common if _local(c.tag) == tag):
                    if el.text:
                        res_files.append(_resolve(doc_dir, el.text))
        res_xml = {rf: r for rf in res_files if (r := get(rf)) is not None}
        media = _media(res_xml, res_files)
        for page in _iter(doc, "Page"):
            check_deadline()
            if len(pages) >= MAX_PAGES:
                raise UnreadableFileError(f"{name}: more than {MAX_PAGES:,} pages; split the OFD")
            loc = page.get("BaseLoc")
            if not loc:
                continue
            content: ET.Element | None = get(_resolve(doc_dir, loc))
            if content is None:
                pages.append(("", []))
                continue
            images = [media[i.get("ResourceID", "")] for i in _iter(content, "ImageObject")
                      if i.get("ResourceID", "") in media]
            pages.append((_page_text(content), images))
    if not pages:
        raise UnreadableFileError(f"{name}: unreadable OFD: no pages found")
    return _assemble(data, name, pages, title)


def _assemble(data: bytes, name: str, pages: list[tuple[str, list[str]]], title: str) -> Parsed:
    budget = TextBudget(name, "OFD")
    scan = [i for i, (t, imgs) in enumerate(pages) if not t.strip() and imgs]
    texts = [t for t, _ in pages]
    extra: dict[str, Any] = {}
    if scan and ocr.engine_name() != "none":
        from PIL import Image

        ocr.check_page_count(len(scan), name)
        wanted = {m for i in scan for m in pages[i][1]}
        blobs = inflate_capped(data, name, "OFD", cap=MAX_UNZIPPED, keep=lambda m: m in wanted)
        engine = ocr.get_engine()
        paced = pace(name, len(scan))
        for done, i in enumerate(ocr.progress(scan, len(scan), name)):
            paced(done)
            parts = []
            for member in pages[i][1]:
                check_deadline()
                blob = blobs.get(member, b"")
                if not blob:
                    continue
                with Image.open(io.BytesIO(blob)) as img:
                    ocr.check_pixels(img.width, img.height, name, i + 1)
                    parts.append(tables_as_rows(ocr.ocr_image(img.convert("RGB"), engine), gap=2)[0])
            texts[i] = "\n\n".join(p for p in parts if p.strip())
        extra = {"ocr_pages": [i + 1 for i in scan], "ocr_engine": engine.name}
    text, starts = "", []
    for t in texts:
        starts.append(len(text))
        text += budget.add(t.strip("\n")) + "\n\n"
    if not text.strip():
        raise UnreadableFileError(f"{name}: the OFD has no text" + (": OCR found none on its image pages"
                                                                     if scan else ""))
    if title:
        extra["title"] = title
    return text, {"page_starts": starts, "pages": len(pages), **extra}
