"""Render the issue-17 test corpus (``eval/corpus17/src/*.txt``, fictional 公文 of 示例市) into the formats the
loaders read: DOCX, DOC and WPS (LibreOffice from the DOCX), PDF with a text layer (LibreOffice), scanned PDF,
TIFF, PNG and JPEG (text drawn with a CJK font, no text layer), OFD (GB/T 33190 package written here), XLSX, XLS
(LibreOffice), CSV, PPTX, HTML, Markdown and a GBK-encoded TXT.

``python -m eval.corpus17.build [--out DIR]`` writes the files (default ``eval/corpus17/files``, committed: 660 KB,
so the eval and the tests need neither LibreOffice nor the font to read them). The text of every rendering is a
pure function of the sources; office containers carry fixed properties where the writer lets us set them, and
LibreOffice stamps its own dates, so DOC/XLS/text-PDF bytes differ between builds while their text does not.

Source conventions: the first line is the title; ``## X`` starts a sheet (XLSX) or a slide (PPTX); ``| a | b |``
lines are table rows (a ruled table in scans, DOCX and slides, rows in sheets and CSV).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import html
import io
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from eval.corpus17 import ofd, scan

logger = logging.getLogger("eval.corpus17")
HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
FILES = HERE / "files"  # the rendered corpus, committed (660 KB)
FIXED = dt.datetime(2024, 1, 1)

# source stem -> output file name (its suffix chooses the renderer)
TARGETS: dict[str, str] = {
    "d01_housing_2021": "d01_housing_2021.doc",
    "d02_housing_2024": "d02_housing_2024.docx",
    "d03_wengang_2022": "d03_wengang_2022.pdf",
    "d04_rencai_annex_2024": "d04_rencai_annex_2024.xlsx",
    "d05_gongzu_2024": "d05_gongzu_2024.csv",
    "d06_peixun_2023": "d06_peixun_2023.xls",
    "d07_gongche_2023": "d07_gongche_2023.wps",
    "d08_shuzi_jiedu_2024": "d08_shuzi_jiedu_2024.pptx",
    "d09_xinxigongkai_2023": "d09_xinxigongkai_2023.ofd",
    "d10_xunqi_2024": "d10_xunqi_2024.html",
    "d11_daolu_2023": "d11_daolu_2023.txt",
    "d12_zhangzhe_2023_hant": "d12_zhangzhe_2023_hant.md",
    "d13_nongcun_2023_scan": "d13_nongcun_2023_scan.pdf",
    "d14_laji_2023_scan": "d14_laji_2023_scan.tif",
    "d15_wage_2024_scan": "d15_wage_2024_scan.png",
    "d16_wage_2022_scan": "d16_wage_2022_scan.jpg",
}
SCANNED = ("d13_nongcun_2023_scan", "d14_laji_2023_scan", "d15_wage_2024_scan", "d16_wage_2022_scan")


def is_row(line: str) -> bool:
    return line.startswith("|") and line.endswith("|")


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip("|").split("|")]


def blocks(text: str) -> list[str | list[list[str]]]:
    """Lines, with each run of ``| … |`` lines as one table (a list of rows)."""
    out: list[str | list[list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if is_row(line):
            if out and isinstance(out[-1], list):
                out[-1].append(cells(line))
            else:
                out.append([cells(line)])
        else:
            out.append(line)
    return out


def sections(text: str) -> tuple[str, list[tuple[str, list[str]]]]:
    """Title and ``## name`` sections with their lines."""
    lines = text.splitlines()
    secs: list[tuple[str, list[str]]] = []
    for line in lines[1:]:
        if line.startswith("## "):
            secs.append((line[3:].strip(), []))
        elif line.strip():
            if not secs:
                secs.append(("", []))
            secs[-1][1].append(line.strip())
    return lines[0].strip(), secs


def _heading(line: str) -> bool:
    return line.startswith("第") and "章" in line[:5] and len(line) <= 16


def docx_bytes(text: str) -> bytes:
    import docx

    d = docx.Document()
    cp = d.core_properties
    cp.created = cp.modified = FIXED
    cp.author = cp.last_modified_by = "示例市"
    for i, b in enumerate(blocks(text)):
        if isinstance(b, list):
            t = d.add_table(rows=len(b), cols=len(b[0]))
            t.style = "Table Grid"
            for r, row in enumerate(b):
                for c, cell in enumerate(row):
                    t.cell(r, c).text = cell
        elif i == 0:
            d.add_heading(b, level=1)
        elif _heading(b):
            d.add_heading(b, level=2)
        elif b:
            d.add_paragraph(b)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def xlsx_bytes(text: str) -> bytes:
    import openpyxl

    title, secs = sections(text)
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    wb.properties.created = wb.properties.modified = FIXED
    for i, (name, lines) in enumerate(secs):
        ws = wb.create_sheet(name or title[:31])
        if i == 0:  # the table's caption above its header, as offices write it
            ws.append([title])
        for line in lines:
            ws.append([_number(c) for c in cells(line)] if is_row(line) else [line])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _number(cell: str) -> object:
    try:
        return int(cell)
    except ValueError:
        try:
            return float(cell)
        except ValueError:
            return cell


def csv_bytes(text: str) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    for line in text.splitlines():
        if line.strip():
            w.writerow(cells(line) if is_row(line) else [line.strip()])
    return buf.getvalue().encode("utf-8-sig")


def pptx_bytes(text: str) -> bytes:
    from pptx import Presentation
    from pptx.util import Inches, Pt

    title, secs = sections(text)
    prs = Presentation()
    prs.core_properties.created = prs.core_properties.modified = FIXED
    first = prs.slides.add_slide(prs.slide_layouts[0])
    first.shapes.title.text = title
    first.placeholders[1].text = "示例市发展和改革委员会"
    for name, lines in secs:
        s = prs.slides.add_slide(prs.slide_layouts[5] if any(map(is_row, lines)) else prs.slide_layouts[1])
        s.shapes.title.text = name
        rows = [cells(x) for x in lines if is_row(x)]
        prose = [x for x in lines if not is_row(x)]
        if rows:
            shape = s.shapes.add_table(len(rows), len(rows[0]), Inches(0.5), Inches(1.8), Inches(9), Inches(3))
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    shape.table.cell(r, c).text = cell
                    shape.table.cell(r, c).text_frame.paragraphs[0].runs[0].font.size = Pt(14)
        else:
            body = s.placeholders[1].text_frame
            body.text = prose[0] if prose else ""
            for p in prose[1:]:
                body.add_paragraph().text = p
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def html_bytes(text: str) -> bytes:
    bs = blocks(text)
    title = str(bs[0])
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for b in bs[1:]:
        if isinstance(b, list):
            rows = "".join("<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c)}</{'th' if i == 0 else 'td'}>"
                                             for c in r) + "</tr>" for i, r in enumerate(b))
            parts.append(f"<table>{rows}</table>")
        elif b:
            parts.append(f"<p>{html.escape(b)}</p>")
    page = (f'<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            '</head><body><nav><a href="/">首页</a> &gt; <a href="/zwgk/">政务公开</a> &gt; 通知公告</nav>'
            f'<main><article>{"".join(parts)}</article></main>'
            "<footer>示例市应急管理局 主办 · 网站标识码 0000000000</footer></body></html>\n")
    return page.encode("utf-8")


def markdown_bytes(text: str) -> bytes:
    lines = text.splitlines()
    body = [f"## {ln}" if _heading(ln) else ln for ln in lines[1:]]
    return ("# " + lines[0] + "\n" + "\n".join(body) + "\n").encode("utf-8")


def soffice_convert(files: dict[str, bytes], target: str, timeout: float = 300) -> dict[str, bytes]:
    """Convert several files with one LibreOffice run; name -> converted bytes (suffix ``target``)."""
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    if exe is None:
        raise RuntimeError("LibreOffice is not installed: `make system-deps` (apt-get install libreoffice-writer)")
    with tempfile.TemporaryDirectory(prefix="corpus17-") as tmp:
        paths = []
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
            paths.append(str(Path(tmp) / name))
        out = Path(tmp) / "out"
        subprocess.run([exe, f"-env:UserInstallation=file://{tmp}/profile", "--headless", "--convert-to", target,
                        "--outdir", str(out), *paths], check=True, capture_output=True, timeout=timeout)
        ext = target.split(":")[0]
        return {name: (out / f"{Path(name).stem}.{ext}").read_bytes() for name in files}


RENDER: dict[str, Callable[[str], bytes]] = {
    ".docx": docx_bytes, ".xlsx": xlsx_bytes, ".csv": csv_bytes, ".pptx": pptx_bytes, ".html": html_bytes,
    ".md": markdown_bytes, ".txt": lambda t: t.replace("\n", "\r\n").encode("gbk"),
    ".ofd": lambda t: ofd.ofd_bytes(t), ".png": lambda t: scan.image_bytes(t, "PNG"),
    ".jpg": lambda t: scan.image_bytes(t, "JPEG"), ".tif": lambda t: scan.image_bytes(t, "TIFF"),
}


def render(out: Path) -> dict[str, Path]:
    """Every source in its target format under ``out``; returns stem -> file."""
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, Path] = {}
    office: dict[str, list[tuple[str, str]]] = {}  # LibreOffice target -> (stem, output name)
    for stem, name in TARGETS.items():
        text = (SRC / f"{stem}.txt").read_text(encoding="utf-8")
        suffix = Path(name).suffix
        if stem in SCANNED and suffix == ".pdf":
            data = scan.scanned_pdf(text)
        elif suffix in RENDER:
            data = RENDER[suffix](text)
        else:  # .doc .wps .pdf .xls: LibreOffice from the DOCX / XLSX
            kind = {".doc": "doc", ".wps": "doc", ".pdf": "pdf", ".xls": "xls"}[suffix]
            office.setdefault(kind, []).append((stem, name))
            continue
        (out / name).write_bytes(data)
        done[stem] = out / name
    for kind, items in office.items():
        src = {f"{stem}.{'xlsx' if kind == 'xls' else 'docx'}":
               (xlsx_bytes if kind == "xls" else docx_bytes)((SRC / f"{stem}.txt").read_text(encoding="utf-8"))
               for stem, _ in items}
        converted = soffice_convert(src, "xls" if kind == "xls" else "pdf:writer_pdf_Export" if kind == "pdf"
                                    else "doc:MS Word 97")
        for (stem, name), data in zip(items, converted.values()):
            # a .wps from WPS Office is an OLE Word-97 compatible file: the DOC bytes under the .wps name
            (out / name).write_bytes(data)
            done[stem] = out / name
    return {stem: done[stem] for stem in TARGETS}


def files(folder: Path | None = None) -> dict[str, Path]:
    """stem -> file of the rendered corpus (the committed copy under ``eval/corpus17/files`` by default)."""
    root = folder or FILES
    out = {stem: root / name for stem, name in TARGETS.items()}
    missing = [p.name for p in out.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{root}: {', '.join(missing)} missing: run `python -m eval.corpus17.build`")
    return out


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(prog="python -m eval.corpus17.build")
    ap.add_argument("--out", default=str(FILES), help=f"folder to write (default {FILES})")
    args = ap.parse_args()
    out = render(Path(args.out))
    for p in out.values():
        print(f"{p.stat().st_size:>9,}  {p}")
    print(f"{sum(p.stat().st_size for p in out.values()):>9,}  total")


if __name__ == "__main__":
    main()
