"""Make real test files of every supported format from text (no fixtures on disk): rendered scans (PIL + a
CJK font), PDFs, DOCX/DOC/WPS, XLSX/XLS/CSV, PPTX and OFD. Used by tests/ingest and bench/ocr.py."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_PATHS = [
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
]


def font_path() -> str | None:
    return next((p for p in FONT_PATHS if Path(p).exists()), None)


def font(size: int) -> ImageFont.FreeTypeFont:
    path = font_path()
    if path is None:
        raise RuntimeError("no CJK font: apt-get install fonts-wqy-microhei")
    return ImageFont.truetype(path, size)


def wrap(text: str, width: int) -> list[str]:
    return [text[i : i + width] for i in range(0, len(text), width)] or [""]


def render_page(paragraphs: Sequence[str], size: tuple[int, int] = (1240, 1754), font_size: int = 30,
                chars_per_line: int = 36, rotate: int = 0, table: Sequence[Sequence[str]] | None = None,
                margin: int = 100) -> Image.Image:
    """An A4 page at 150 dpi: paragraphs wrapped at ``chars_per_line``, an optional ruled table after them,
    turned by ``rotate`` degrees (a sideways scan)."""
    img = Image.new("L", size, 255)
    d = ImageDraw.Draw(img)
    f = font(font_size)
    y = margin
    step = int(font_size * 1.6)
    for p in paragraphs:
        for line in wrap(p, chars_per_line):
            d.text((margin, y), line, fill=0, font=f)
            y += step
        y += step // 2
    if table:
        cols = len(table[0])
        cw = (size[0] - 2 * margin) // cols
        rh = int(font_size * 2)
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                x0, y0 = margin + c * cw, y + r * rh
                d.rectangle((x0, y0, x0 + cw, y0 + rh), outline=0, width=2)
                d.text((x0 + 12, y0 + (rh - font_size) // 2), cell, fill=0, font=f)
    if rotate:
        img = img.rotate(rotate, expand=True, fillcolor=255)
    return img


def png_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def scanned_pdf(pages: Sequence[Image.Image]) -> bytes:
    """A PDF of page images only (no text layer), as a scanner writes it."""
    buf = io.BytesIO()
    pages[0].convert("RGB").save(buf, format="PDF", save_all=True, resolution=150,
                                 append_images=[p.convert("RGB") for p in pages[1:]])
    return buf.getvalue()


def text_pdf(lines: Sequence[str]) -> bytes:
    """A one-page PDF with a real text layer (Helvetica, Latin text)."""
    body = "BT /F1 14 Tf 72 720 Td " + " ".join(f"({t}) Tj 0 -20 Td" for t in lines) + " ET"
    objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(body)} >>\nstream\n{body}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{o}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def merge_pdfs(parts: Sequence[bytes]) -> bytes:
    from pypdf import PdfReader, PdfWriter

    w = PdfWriter()
    for p in parts:
        for page in PdfReader(io.BytesIO(p)).pages:
            w.add_page(page)
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def docx_bytes(blocks: Sequence[str | tuple[str, str] | list[list[str]]]) -> bytes:
    """A DOCX: a str is a paragraph, ``("Heading 1", text)`` a styled one, a list of rows a table."""
    import docx

    d = docx.Document()
    for b in blocks:
        if isinstance(b, tuple):
            d.add_paragraph(b[1], style=b[0])
        elif isinstance(b, list):
            t = d.add_table(rows=len(b), cols=len(b[0]))
            for i, row in enumerate(b):
                for j, cell in enumerate(row):
                    t.cell(i, j).text = cell
        else:
            d.add_paragraph(b)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def xlsx_bytes(sheets: dict[str, list[list[object]]]) -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for r in rows:
            ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def pptx_bytes(slides: Sequence[tuple[str, list[str], list[list[str]] | None]]) -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    for title, bullets, table in slides:
        s = prs.slides.add_slide(prs.slide_layouts[1])
        s.shapes.title.text = title
        body = s.placeholders[1].text_frame
        body.text = bullets[0] if bullets else ""
        for b in bullets[1:]:
            body.add_paragraph().text = b
        if table:
            shape = s.shapes.add_table(len(table), len(table[0]), Inches(1), Inches(4), Inches(8), Inches(2))
            for i, row in enumerate(table):
                for j, cell in enumerate(row):
                    shape.table.cell(i, j).text = cell
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def soffice_convert(data: bytes, suffix: str, target: str, timeout: float = 120) -> bytes:
    """Convert with the real LibreOffice (``target`` e.g. ``doc``, ``xls``, ``pdf``)."""
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    if exe is None:
        raise RuntimeError("LibreOffice is not installed (make install)")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"src{suffix}"
        src.write_bytes(data)
        subprocess.run([exe, f"-env:UserInstallation=file://{tmp}/p", "--headless", "--convert-to", target,
                        "--outdir", tmp, str(src)], check=True, capture_output=True, timeout=timeout)
        return (Path(tmp) / f"src.{target.split(':')[0]}").read_bytes()


NS = "http://www.ofdspec.org/2016"


def ofd_bytes(pages: Sequence[Sequence[str] | Image.Image], title: str = "") -> bytes:
    """An OFD package (GB/T 33190 layout): a page is a list of text lines (one TextObject each, 5 mm apart;
    a ``""`` line leaves a gap) or an image (an ImageObject over the page, a scanned page)."""
    buf = io.BytesIO()
    media = []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("OFD.xml", f'<?xml version="1.0" encoding="UTF-8"?><ofd:OFD xmlns:ofd="{NS}" Version="1.0" '
                   f'DocType="OFD"><ofd:DocBody><ofd:DocInfo><ofd:DocID>x</ofd:DocID><ofd:Title>{title}'
                   '</ofd:Title></ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody>'
                   '</ofd:OFD>')
        page_refs = []
        for n, page in enumerate(pages):
            objs = []
            if isinstance(page, Image.Image):
                rid = 100 + n
                media.append(f'<ofd:MultiMedia ID="{rid}" Type="Image"><ofd:MediaFile>page{n}.png</ofd:MediaFile>'
                             "</ofd:MultiMedia>")
                z.writestr(f"Doc_0/Res/page{n}.png", png_bytes(page))
                objs.append(f'<ofd:ImageObject ID="{rid + 1000}" ResourceID="{rid}" Boundary="0 0 210 297" '
                            'CTM="210 0 0 297 0 0"/>')
            else:
                y = 30.0
                for i, line in enumerate(page):
                    if line:
                        # the line's first half and second half as two TextObjects, as converters write them
                        half = max(1, len(line) // 2)
                        for k, (part, x) in enumerate(((line[:half], 25.0), (line[half:], 25.0 + half * 4.2))):
                            if part:
                                objs.append(f'<ofd:TextObject ID="{n * 1000 + i * 2 + k + 1}" Boundary="{x} {y} 160 6" '
                                            f'Font="1" Size="4.2"><ofd:TextCode X="0" Y="4.2">{part}'
                                            "</ofd:TextCode></ofd:TextObject>")
                    y += 7.0 if line else 10.0
            z.writestr(f"Doc_0/Pages/Page_{n}/Content.xml",
                       f'<?xml version="1.0" encoding="UTF-8"?><ofd:Page xmlns:ofd="{NS}"><ofd:Content>'
                       f'<ofd:Layer ID="{n + 5000}">{"".join(objs)}</ofd:Layer></ofd:Content></ofd:Page>')
            page_refs.append(f'<ofd:Page ID="{n + 1}" BaseLoc="Pages/Page_{n}/Content.xml"/>')
        z.writestr("Doc_0/DocumentRes.xml", f'<?xml version="1.0" encoding="UTF-8"?><ofd:Res xmlns:ofd="{NS}" '
                   f'BaseLoc="Res"><ofd:MultiMedias>{"".join(media)}</ofd:MultiMedias></ofd:Res>')
        z.writestr("Doc_0/Document.xml", f'<?xml version="1.0" encoding="UTF-8"?><ofd:Document xmlns:ofd="{NS}">'
                   '<ofd:CommonData><ofd:MaxUnitID>9999</ofd:MaxUnitID><ofd:PageArea><ofd:PhysicalBox>0 0 210 297'
                   '</ofd:PhysicalBox></ofd:PageArea><ofd:DocumentRes>DocumentRes.xml</ofd:DocumentRes>'
                   f'</ofd:CommonData><ofd:Pages>{"".join(page_refs)}</ofd:Pages></ofd:Document>')
    return buf.getvalue()
