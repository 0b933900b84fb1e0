"""OCR with the real engine (RapidOCR's ONNX models from its wheel; tesseract when installed) on pages rendered
here with a CJK font: images, scanned and mixed PDFs (page numbers kept), a sideways scan, a multi-page TIFF, an
OFD image page, and the page, pixel and time limits."""

from __future__ import annotations

import re
import shutil

import pytest

from rag.core.errors import OcrLimitError, ParseTimeoutError, UnreadableFileError
from rag.ingest import ocr
from rag.ingest.loaders import load_bytes
from rag.ingest.loaders.pdf import garbage
from tests.ingest import docmaker as dm

pytestmark = pytest.mark.skipif(dm.font_path() is None, reason="no CJK font: make install")

SIMP = "第十二条 申请人应当在规定期限内向所在地人力资源和社会保障部门提交申请材料。"
TRAD = "內蒙古自治區人民政府關於印發促進就業若干措施的通知"
TABLE = [["项目", "补贴标准", "期限"], ["社会保险补贴", "每人每月500元", "3年"]]


def squash(s: str) -> str:
    return "".join(s.split())


def cer(ref: str, hyp: str) -> float:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.ocr import cer as bench_cer

    return bench_cer(ref, hyp)


def test_image_page_simplified_traditional_and_table():
    img = dm.render_page([SIMP, TRAD], table=TABLE)
    d = load_bytes(dm.png_bytes(img), "scan.png")
    assert d.meta["ocr_engine"] == "rapidocr" and d.meta["ocr_pages"] == [1]
    text = squash(d.text)
    ref = squash(SIMP + TRAD)
    assert cer(ref, text[: len(ref)]) < 0.03, d.text
    assert TRAD in text  # traditional characters read as such, not converted
    # the scanned table comes out as a row with its headers
    assert "项目：社会保险补贴，补贴标准：每人每月500元，期限：3年。" in d.text.splitlines(), d.text


def test_sideways_scan_is_turned_upright():
    img = dm.render_page(["第一条 为了规范就业补贴管理，制定本办法。", "第二条 本办法适用于全区。"], rotate=90)
    text = squash(load_bytes(dm.png_bytes(img, "JPEG"), "side.jpg").text)
    assert "第一条为了规范就业补贴管理" in text and text.index("第一条") < text.index("第二条"), text


def test_mixed_pdf_ocrs_only_scanned_pages_and_keeps_page_numbers():
    pdf = dm.merge_pdfs([dm.text_pdf(["Policy text on page one."]),
                         dm.scanned_pdf([dm.render_page([SIMP]), dm.render_page(["第三页 附件说明。"])])])
    d = load_bytes(pdf, "mixed.pdf")
    assert d.meta["pages"] == 3 and d.meta["ocr_pages"] == [2, 3]
    starts = d.meta["page_starts"]
    assert d.text[: starts[1]].strip() == "Policy text on page one."
    assert squash(d.text[starts[1] : starts[2]]).startswith("第十二条申请人应当")
    assert squash(d.text[starts[2] :]) == "第三页附件说明。"


def test_page_and_pixel_limits_and_time_budget(monkeypatch):
    pdf = dm.scanned_pdf([dm.render_page(["第一页。"]), dm.render_page(["第二页。"])])
    monkeypatch.setenv("RAG_OCR_MAX_PAGES", "1")
    with pytest.raises(OcrLimitError, match=r"two\.pdf: 2 pages need OCR, more than the limit of 1 \(RAG_OCR_"):
        load_bytes(pdf, "two.pdf")
    monkeypatch.delenv("RAG_OCR_MAX_PAGES")
    monkeypatch.setenv("RAG_OCR_MAX_PIXELS", "1000000")
    with pytest.raises(OcrLimitError, match=r"big\.png: the image is 1240x1754 = 2 MP, over the OCR limit of 1 MP"):
        load_bytes(dm.png_bytes(dm.render_page(["大图。"])), "big.png")
    monkeypatch.delenv("RAG_OCR_MAX_PIXELS")
    with pytest.raises(ParseTimeoutError, match=r"slow\.pdf: .* \(RAG_PARSE_TIMEOUT\)"):
        load_bytes(pdf, "slow.pdf", timeout=0.5)


def test_a_scan_too_long_for_the_budget_stops_after_its_first_pages():
    import time

    page = dm.render_page([SIMP, TRAD, SIMP, TRAD, SIMP])
    pdf = dm.scanned_pdf([page] * 8)
    t = time.monotonic()
    # the pace message: raised after a page, when the pages left cannot fit in what is left of the budget
    with pytest.raises(ParseTimeoutError, match=r"long\.pdf: OCR of 8 pages takes about .* s a page here") as e:
        load_bytes(pdf, "long.pdf", timeout=6)
    per = float(re.search(r"about ([\d.]+) s a page", e.value.message).group(1))  # type: ignore[union-attr]
    assert time.monotonic() - t < 4 * per + 6  # stopped after a few of the 8 pages, not after all of them


def test_blank_scan_is_an_error_naming_the_cause():
    blank = dm.render_page([])
    with pytest.raises(UnreadableFileError, match=r"blank\.pdf: the PDF has no extractable text: OCR found no text"):
        load_bytes(dm.scanned_pdf([blank]), "blank.pdf")
    with pytest.raises(UnreadableFileError, match=r"blank\.tif: OCR found no text in the image"):
        load_bytes(dm.png_bytes(blank, "TIFF"), "blank.tif")


def test_multipage_tiff_and_ofd_image_page():
    pages = [dm.render_page(["第一条 总则。"], size=(900, 500)), dm.render_page(["第二条 附则。"], size=(900, 500))]
    import io

    buf = io.BytesIO()
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    d = load_bytes(buf.getvalue(), "two.tiff")
    assert d.meta["pages"] == 2 and squash(d.text[d.meta["page_starts"][1] :]) == "第二条附则。"
    o = load_bytes(dm.ofd_bytes([["第一章 总则", "第一条 文字页。"], dm.render_page(["第二条 扫描页。"])]), "mix.ofd")
    assert o.meta["ocr_pages"] == [2]
    assert squash(o.text[o.meta["page_starts"][1] :]) == "第二条扫描页。"


def test_garbage_text_layer_detection():
    assert garbage("\ue000\ue001\ue002\ue003 \ue004")
    assert garbage("(cid:12)(cid:34)(cid:56)(cid:78)")
    assert not garbage("第一条 为了规范管理，制定本办法。")
    assert not garbage("Policy text on page one.")


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed: make install")
def test_tesseract_engine_reads_the_same_page(monkeypatch):
    monkeypatch.setenv("RAG_OCR_ENGINE", "tesseract")
    d = load_bytes(dm.png_bytes(dm.render_page([SIMP])), "t.png")
    assert d.meta["ocr_engine"] == "tesseract"
    assert cer(squash(SIMP), squash(d.text)) < 0.15, d.text
    assert ocr.engine_name() == "tesseract"
