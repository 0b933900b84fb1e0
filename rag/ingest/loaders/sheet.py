"""Spreadsheets: ``.xlsx`` (openpyxl, read from the capped inflation), ``.xls`` (xlrd), ``.csv`` (encoding
detected, delimiter sniffed). Each sheet is a ``## 名称`` heading and each row a line kept with its header:
``列名：值，列名：值。``"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from rag.core.errors import EncryptedFileError, UnreadableFileError
from rag.ingest.loaders.base import Parsed, TextBudget, check_deadline, decode, inflate_capped, stored_zip, table_rows

MAX_ROWS = 200_000  # rows of all sheets together
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _rows(it: Iterable[Iterable[object]], name: str) -> list[list[object]]:
    rows: list[list[object]] = []
    for i, r in enumerate(it):
        if i % 256 == 0:
            check_deadline()
        if i >= MAX_ROWS:
            raise UnreadableFileError(f"{name}: more than {MAX_ROWS:,} rows; split the workbook")
        rows.append(list(r))
    return rows


def _render(sheets: list[tuple[str, list[list[object]]]], name: str, kind: str) -> Parsed:
    budget = TextBudget(name, kind)
    parts: list[str] = []
    for title, rows in sheets:
        lines = table_rows(rows)
        if not lines:
            continue
        if len(sheets) > 1 or kind != "CSV":
            parts.append(f"## {title}")
        parts.extend(budget.add(x) for x in lines)
    return "\n\n".join(parts), {"sheets": [t for t, _ in sheets]}


def load_xlsx(data: bytes, name: str) -> Parsed:
    import openpyxl

    if data.startswith(OLE_MAGIC):  # an encrypted OOXML workbook is an OLE container
        raise EncryptedFileError(f"{name}: the workbook is encrypted (password-protected); send a decrypted copy")
    wb = openpyxl.load_workbook(stored_zip(inflate_capped(data, name, "XLSX")), read_only=True, data_only=True)
    try:
        sheets = [(ws.title, _rows(ws.iter_rows(values_only=True), name)) for ws in wb.worksheets]
    finally:
        wb.close()
    return _render(sheets, name, "XLSX")


def load_xls(data: bytes, name: str) -> Parsed:
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True)
    except xlrd.biffh.XLRDError as e:
        if "encrypt" in str(e).lower():
            raise EncryptedFileError(f"{name}: the workbook is encrypted; send a decrypted copy") from e
        raise
    sheets = []
    for sh in book.sheets():
        sheets.append((sh.name, _rows((sh.row_values(i) for i in range(sh.nrows)), name)))
    return _render(sheets, name, "XLS")


def load_csv(data: bytes, name: str) -> Parsed:
    text = decode(data, name)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|，")
    except csv.Error:
        dialect = csv.excel
    rows = _rows(csv.reader(io.StringIO(text), dialect), name)
    return _render([(name, rows)], name, "CSV")
