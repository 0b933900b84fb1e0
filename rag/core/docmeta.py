"""A document's 公文 metadata and its validity on a given day (issue 17, items 4 and 5), as pure functions over
``Document.meta``.

The metadata fields (``FIELDS``) are read from the text at ingest (``rag/ingest/metadata.py``) and edited with
``PUT /v1/documents/{id}``; ``superseded_by`` is set when another document of the index repeals, replaces or
amends this one (``rag/ingest/validity.py``): ``{"doc_id", "title", "doc_number", "date", "how"}``, ``date``
being the day the other document took effect.

``status(meta, as_of)``: ``superseded`` once that day is reached, else ``expired`` after ``date_expires``, else
``not_yet_effective`` before its own effective (or issue) date, else ``in_force``. Dates are ISO strings, so
they compare as strings.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

FIELDS = ("title", "issuer", "doc_number", "date_written", "date_published", "date_effective", "date_expires",
          "subjects")
DATE_FIELDS = ("date_written", "date_published", "date_effective", "date_expires")
STATUSES = ("in_force", "superseded", "expired", "not_yet_effective")
_OPEN = re.compile(r"[\[［(（【〔]")
_CLOSE = re.compile(r"[\]］)）】〕]")


def today() -> str:
    return dt.date.today().isoformat()


def normalise_number(number: str) -> str:
    """``内政发[2023]12号``, ``内政发（2023）12 号`` and ``内政发〔2023〕12號`` -> ``内政发〔2023〕12号`` (how 发文字号
    are compared)."""
    return _CLOSE.sub("〕", _OPEN.sub("〔", "".join(number.split()))).replace("號", "号")


def issued(meta: Mapping[str, Any]) -> str:
    """The document's date: the one given at upload (``date``), else its 发布日期, else its 成文日期."""
    return str(meta.get("date") or meta.get("date_published") or meta.get("date_written") or "")


def starts(meta: Mapping[str, Any]) -> str:
    """The day it takes effect: 施行日期, else its issue date ("" when the text states neither)."""
    return str(meta.get("date_effective") or issued(meta))


def status(meta: Mapping[str, Any], as_of: str | None = None) -> str:
    day = as_of or today()
    by = meta.get("superseded_by")
    if isinstance(by, Mapping) and str(by.get("date") or "") <= day:
        return "superseded"
    expires = str(meta.get("date_expires") or "")
    if expires and expires < day:
        return "expired"
    start = starts(meta)
    if start and start > day:
        return "not_yet_effective"
    return "in_force"


def usable(meta: Mapping[str, Any], as_of: str | None, include_superseded: bool) -> bool:
    """Whether answers may come from this document: in force (on ``as_of``, default today); superseded and
    expired ones too with ``include_superseded``. A document not yet in effect counts today (an announced
    policy), but not on an ``as_of`` day before it took effect."""
    s = status(meta, as_of)
    if s == "not_yet_effective":
        return as_of is None
    return s == "in_force" or include_superseded


def cn_date(iso: str) -> str:
    """``2024-01-01`` -> ``2024年1月1日`` (anything else unchanged)."""
    try:
        d = dt.date.fromisoformat(iso)
    except ValueError:
        return iso
    return f"{d.year}年{d.month}月{d.day}日"


_TRANSMITS = re.compile(r"(?:印发|转发|发布|公布)《?(?P<t>[^《》]{2,80}?)》?的(?:通知|决定|公告)$")


def measure(title: str) -> str:
    """The measure a 印发 notice transmits (``…关于印发X办法的通知`` -> ``X办法``), else the title itself."""
    t = "".join(title.split())
    m = _TRANSMITS.search(t)
    return m.group("t") if m else t


def _book(title: str) -> str:
    t = measure(title.strip().strip("《》"))
    return f"《{t}》"


def validity_note(title: str, meta: Mapping[str, Any], as_of: str | None = None) -> str:
    """The warning an answer citing this document carries ("" when it is in force): ``《A》：该文件已于2024年1月1日
    被《B》废止``, ``…有效期至…，已失效``, ``…自…起施行，尚未生效``."""
    s = status(meta, as_of)
    name = _book(title or str(meta.get("title") or ""))
    if s == "superseded":
        by = meta["superseded_by"]
        when = f"已于{cn_date(str(by['date']))}" if by.get("date") else "已"
        number = f"（{by['doc_number']}）" if by.get("doc_number") else ""
        other = _book(str(by.get("title") or by.get("doc_id")))
        return f"{name}：该文件{when}被{other}{number}{by.get('how') or '废止'}"
    if s == "expired":
        return f"{name}：该文件有效期至{cn_date(str(meta['date_expires']))}，已失效"
    if s == "not_yet_effective":
        return f"{name}：该文件自{cn_date(starts(meta))}起施行，尚未生效"
    return ""


def contains(value: Any, wanted: str) -> bool:
    """Case-insensitive substring test (``wanted`` in ``value``), ignoring spaces."""
    return "".join(wanted.split()).casefold() in "".join(str(value or "").split()).casefold()


def in_range(value: Any, lo: str | None, hi: str | None) -> bool:
    """An ISO date within [lo, hi] (bounds optional); a missing date is outside any range."""
    v = str(value or "")
    if lo and (not v or v < lo):
        return False
    return not (hi and (not v or v > hi))
