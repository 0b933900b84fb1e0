"""Every new format through the real parsers and the real LibreOffice, on files made here (tests/ingest/docmaker.py):
tables keep their headers, .doc/.wps convert, spreadsheets keep a header per row, slides and OFD pages keep their
page numbers, a bad file is a typed error naming the cause and the rest of a batch goes in."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from rag.core.errors import (
    ConverterError,
    EncryptedFileError,
    InvalidInputError,
    UnreadableFileError,
    UnsupportedFileError,
)
from rag.ingest.loaders import SUPPORTED, load_bytes, load_path, table_rows
from rag.ingest.loaders.base import tables_as_rows
from rag.ingest.loaders.word import soffice
from tests.ingest import docmaker as dm

TABLE = [["项目", "补贴标准", "期限"], ["社会保险补贴", "每人每月500元", "3年"], ["岗位补贴", "每人每月1000元", "1年"]]
BLOCKS: list = [("Heading 1", "第一章 总则"), "第一条 为了规范就业补贴管理，制定本办法。", TABLE,
                "第二条 本办法适用于全区各级人力资源和社会保障部门。"]
needs_soffice = pytest.mark.skipif(soffice() is None, reason="LibreOffice not installed: make install")


@pytest.fixture(scope="module")
def docx_data() -> bytes:
    return dm.docx_bytes(BLOCKS)


@pytest.fixture(scope="module")
def doc_data(docx_data: bytes) -> bytes:
    if soffice() is None:
        pytest.skip("LibreOffice not installed: make install")
    return dm.soffice_convert(docx_data, ".docx", "doc")


def test_supported_lists_every_format():
    for ext in (".doc", ".wps", ".ofd", ".xlsx", ".xls", ".csv", ".pptx", ".png", ".jpg", ".tif", ".pdf", ".docx"):
        assert ext in SUPPORTED


def test_table_rows_keep_their_header():
    assert table_rows(TABLE) == ["项目：社会保险补贴，补贴标准：每人每月500元，期限：3年。",
                                 "项目：岗位补贴，补贴标准：每人每月1000元，期限：1年。"]
    # a caption row above the header, an empty cell, a one-row table
    assert table_rows([["附表"], ["地区", "金额"], ["呼和浩特", None], [None, None]]) == ["附表", "地区：呼和浩特。"]
    assert table_rows([["甲", "乙"]]) == ["甲 | 乙"]


def test_docx_table_stays_in_place_with_headers(docx_data: bytes):
    text = load_bytes(docx_data, "a.docx").text
    parts = text.split("\n\n")
    assert parts[0] == "# 第一章 总则"
    i = parts.index("项目：社会保险补贴，补贴标准：每人每月500元，期限：3年。")
    assert parts[i - 1].startswith("第一条") and parts[i + 2].startswith("第二条")  # between the articles


@needs_soffice
def test_doc_and_wps_convert_through_libreoffice(doc_data: bytes):
    assert doc_data.startswith(b"\xd0\xcf\x11\xe0")  # a real Word 97 binary, not a renamed DOCX
    for name in ("a.doc", "b.wps"):
        d = load_bytes(doc_data, name)
        assert d.meta["converted_by"] == "libreoffice" and d.meta["type"] == name[-3:]
        assert "# 第一章 总则" in d.text
        assert "项目：岗位补贴，补贴标准：每人每月1000元，期限：1年。" in d.text
        assert "第二条 本办法适用于全区" in d.text


@needs_soffice
def test_pdf_table_in_the_text_layer_keeps_its_headers(docx_data: bytes):
    pdf = dm.soffice_convert(docx_data, ".docx", "pdf")  # LibreOffice writes a real CJK text layer
    d = load_bytes(pdf, "t.pdf")
    lines = [ln for ln in d.text.splitlines() if ln.strip()]
    i = lines.index("项目：社会保险补贴，补贴标准：每人每月500元，期限：3年。")
    assert lines[i + 1] == "项目：岗位补贴，补贴标准：每人每月1000元，期限：1年。"
    assert lines[i - 1].startswith("第一条") and lines[i + 2].startswith("第二条")
    assert d.meta["tables"] == 1 and "ocr_pages" not in d.meta


def test_tables_in_layout_text():
    laid = ("第一条 补贴标准如下：\n\n项目        标准          期限\n\n社保补贴    每人每月  500元   3年\n"
            "岗位补贴    每人每月  1000元   1年\n\n第二条 本办法自发布之日起施行。")
    text, n = tables_as_rows(laid)
    assert n == 1
    assert text.split("\n") == ["第一条补贴标准如下：", "", "项目：社保补贴，标准：每人每月500元，期限：3年。",
                                 "项目：岗位补贴，标准：每人每月1000元，期限：1年。", "",
                                 "第二条本办法自发布之日起施行。"]
    two_columns = ("第一条为了规范管理，制定本办法。   第五条申请人应当提交材料。\n"
                   "第二条本办法适用于全区。      第六条审核部门应当审核。")
    assert tables_as_rows(two_columns)[1] == 0  # text in two columns is not a table


@needs_soffice
def test_corrupt_doc_names_the_converter_and_cause(doc_data: bytes):
    # a real .doc with its body scrambled: LibreOffice cannot load it (never imported as plain-text noise)
    scrambled = doc_data[:512] + bytes((i * 7919 + 13) % 256 for i in range(len(doc_data) - 512))
    with pytest.raises(ConverterError, match=r"scrambled\.doc: LibreOffice could not read it as \.doc"):
        load_bytes(scrambled, "scrambled.doc")
    with pytest.raises(ConverterError, match=r"bad\.doc: corrupt \.doc file \(broken compound-file header\)"):
        load_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00garbage" * 200, "bad.doc")
    with pytest.raises(ConverterError, match="not a Word/WPS document"):
        load_bytes(b"MZ" + b"\x00" * 2000, "x.wps")
    # RTF saved as .doc (common on government sites) goes through the RTF filter
    assert load_bytes(b"{\\rtf1\\ansi Article one of the measures.}", "r.doc").text == "Article one of the measures."


def test_xlsx_rows_with_headers_and_sheet_headings():
    data = dm.xlsx_bytes({"补贴标准": [["项目", "标准（元）", "期限"], ["社保补贴", 500, "3年"],
                                       ["岗位补贴", 1000.0, None]],
                          "联系方式": [["单位", "电话"], ["市人社局", "0471-1234567"]]})
    d = load_bytes(data, "a.xlsx")
    assert d.text.split("\n\n") == ["## 补贴标准", "项目：社保补贴，标准（元）：500，期限：3年。",
                                    "项目：岗位补贴，标准（元）：1000。", "## 联系方式",
                                    "单位：市人社局，电话：0471-1234567。"]
    assert d.meta["sheets"] == ["补贴标准", "联系方式"]


@needs_soffice
def test_xls_from_libreoffice():
    xl = dm.xlsx_bytes({"名单": [["姓名", "金额"], ["张三", 1500], ["李四", 800]]})
    xls = dm.soffice_convert(xl, ".xlsx", "xls")
    assert xls.startswith(b"\xd0\xcf\x11\xe0")
    assert load_bytes(xls, "a.xls").text.split("\n\n") == ["## 名单", "姓名：张三，金额：1500。",
                                                          "姓名：李四，金额：800。"]


def test_csv_in_gbk_and_with_semicolons():
    d = load_bytes("项目,标准\n社保补贴,500元\n岗位补贴,1000元\n".encode("gbk"), "a.csv")
    assert d.text.split("\n\n") == ["项目：社保补贴，标准：500元。", "项目：岗位补贴，标准：1000元。"]
    d = load_bytes("地区;人数\n呼和浩特;12\n".encode(), "b.csv")
    assert d.text == "地区：呼和浩特，人数：12。"


def test_pptx_slides_titles_tables_and_pages():
    data = dm.pptx_bytes([("就业补贴政策", ["补贴对象为高校毕业生。", "申请时间为每年3月。"],
                           [["项目", "标准"], ["社保补贴", "500元"]]),
                          ("办理流程", ["网上提交申请。"], None)])
    d = load_bytes(data, "a.pptx")
    parts = d.text.split("\n\n")
    assert parts[:4] == ["## 就业补贴政策", "补贴对象为高校毕业生。", "申请时间为每年3月。",
                         "项目：社保补贴，标准：500元。"]
    assert d.meta["pages"] == 2 and d.text[d.meta["page_starts"][1]:].startswith("## 办理流程")


def test_ofd_text_pages_in_reading_order():
    data = dm.ofd_bytes([["关于印发就业补贴办法的通知", "", "第一章 总则", "第一条 为了规范管理，制定本办法。"],
                         ["第二章 申请", "第五条 申请人应当提交材料。"]], title="就业补贴办法")
    d = load_bytes(data, "a.ofd")
    assert d.title == "就业补贴办法"
    assert d.text.startswith("关于印发就业补贴办法的通知\n\n第一章 总则\n第一条 为了规范管理，制定本办法。")
    assert d.meta["pages"] == 2 and d.text[d.meta["page_starts"][1]:].startswith("第二章 申请\n第五条")
    assert "ocr_pages" not in d.meta


def test_ofd_bad_packages_are_typed_errors():
    with pytest.raises(UnreadableFileError, match="no OFD.xml"):
        load_bytes(_zip({"a.xml": b"<a/>"}), "x.ofd")
    with pytest.raises(EncryptedFileError, match="encrypted"):
        load_bytes(_zip({"OFD.xml": b"<OFD/>", "Encryptions.xml": b"<E/>"}), "enc.ofd")
    with pytest.raises(UnreadableFileError, match="DTD"):
        load_bytes(_zip({"OFD.xml": b'<!DOCTYPE x [<!ENTITY a "aaaa">]><OFD>&a;</OFD>'}), "dtd.ofd")
    with pytest.raises(UnreadableFileError, match="not a zip"):
        load_bytes(b"not a zip at all", "plain.ofd")


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)
    return buf.getvalue()


def test_xlsx_and_pptx_bombs_are_refused():
    big = _zip({"[Content_Types].xml": b"<x/>", "xl/worksheets/sheet1.xml": b"<a>" + b" " * (70 << 20) + b"</a>"})
    for name in ("bomb.xlsx", "bomb.pptx"):
        with pytest.raises(UnreadableFileError, match="inflates past 64 MB"):
            load_bytes(big, name)


def test_unsupported_and_corrupt_files_in_a_batch(tmp_path: Path, docx_data: bytes):
    (tmp_path / "good.docx").write_bytes(docx_data)
    (tmp_path / "table.csv").write_text("项目,标准\n社保补贴,500元\n", encoding="utf-8")
    (tmp_path / "bad.xlsx").write_bytes(b"PK\x03\x04broken")
    (tmp_path / "bad.pptx").write_bytes(b"nonsense")
    (tmp_path / "x.exe").write_bytes(b"MZ")
    docs, failures = load_path(tmp_path)
    assert sorted(d.doc_id for d in docs) == ["good.docx", "table.csv"]
    why = {Path(f.path).name: f.error for f in failures}
    assert set(why) == {"bad.xlsx", "bad.pptx", "x.exe"}
    assert why["bad.xlsx"].startswith("bad.xlsx: unreadable XLSX")
    assert why["bad.pptx"].startswith("bad.pptx: unreadable PPTX")
    assert "unsupported file type '.exe'" in why["x.exe"]
    with pytest.raises(UnsupportedFileError):
        load_bytes(b"MZ", "x.exe")
    assert issubclass(UnsupportedFileError, InvalidInputError)  # 422 at the API
