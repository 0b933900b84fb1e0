"""Dify's ``metadata_condition`` (external knowledge API) as search filters (``rag.core.types.Filters``).

``{"logical_operator": "and", "conditions": [{"name": "发文机关", "comparison_operator": "contains", "value":
"人民政府"}, {"name": "施行日期", "comparison_operator": "before", "value": "2024-01-01"}]}``

Names: ``title``/``document_name``/``标题``, ``issuer``/``发文机关``, ``doc_number``/``发文字号``, ``collection``,
``subjects``/``主题词``, ``tags``, ``doc_id``, ``type``, ``date``/``发布日期``/``成文日期``,
``date_effective``/``施行日期``, ``date_expires``/``有效期至``, ``as_of``, ``include_superseded``. Operators:
``is``/``=``/``contains`` (text; a 发文字号 is compared whole), ``in`` (``doc_id``, ``type``), ``before``/``<``/``≤``
and ``after``/``>``/``≥``/``is`` (dates: ``YYYY-MM-DD`` or a Unix timestamp, as Dify sends time metadata).
Dify's own metadata this service does not hold (uploader, source, …) is ignored, logged; a known name with an
operator it cannot apply, or ``or`` over several conditions, is a 422 naming what is supported.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from typing import Any

from rag.core.errors import InvalidInputError
from rag.core.types import Filters

logger = logging.getLogger("api")

TEXT = {"title": "title", "document_name": "title", "标题": "title", "issuer": "issuer", "发文机关": "issuer",
        "doc_number": "doc_number", "发文字号": "doc_number", "collection": "collection"}
LISTS = {"subjects": "subjects", "主题词": "subjects", "tags": "tags", "doc_id": "doc_ids", "type": "types"}
DATES = {"date": "date", "发布日期": "date", "成文日期": "date", "date_published": "date", "date_written": "date",
         "date_effective": "effective", "施行日期": "effective", "date_expires": "expires", "有效期至": "expires"}
UPPER = ("before", "<", "≤")
LOWER = ("after", ">", "≥")
EQUAL = ("is", "=", "contains")


def _day(value: Any, name: str) -> dt.date:
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return dt.datetime.fromtimestamp(float(value), dt.timezone.utc).date()
        return dt.date.fromisoformat(str(value)[:10])
    except (ValueError, OverflowError, OSError):
        raise InvalidInputError(f"metadata_condition {name}: {str(value)[:40]!r} is not a date (YYYY-MM-DD or "
                                "a Unix timestamp)") from None


def _unsupported(name: str, op: str) -> InvalidInputError:
    return InvalidInputError(f"metadata_condition {name}: operator {op!r} is not supported here; text fields "
                             "take is/contains, doc_id and type also in, dates before/after/is/</>/≤/≥")


def _date(f: Filters, field: str, op: str, value: Any, name: str) -> Filters:
    day = _day(value, name)
    lo_key, hi_key = ("date_from", "date_to") if field == "date" else (f"{field}_from", f"{field}_to")
    changes: dict[str, Any] = {}
    if op in UPPER or op in ("is", "="):
        changes[hi_key] = (day - dt.timedelta(days=1) if op in ("before", "<") else day).isoformat()
    if op in LOWER or op in ("is", "="):
        changes[lo_key] = (day + dt.timedelta(days=1) if op in ("after", ">") else day).isoformat()
    if not changes:
        raise _unsupported(name, op)
    return replace(f, **changes)


def _one(f: Filters, cond: dict[str, Any]) -> Filters:
    raw = cond.get("name")
    name = str(raw[0] if isinstance(raw, list) and raw else raw or "")
    op, value = str(cond.get("comparison_operator") or ""), cond.get("value")
    if name in TEXT:
        if op not in EQUAL or not isinstance(value, str):
            raise _unsupported(name, op)
        text: dict[str, Any] = {TEXT[name]: value}
        return replace(f, **text)
    if name in LISTS:
        values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        if op not in (*EQUAL, "in") or (op == "in" and LISTS[name] not in ("doc_ids", "types")) or value is None:
            raise _unsupported(name, op)
        listed: dict[str, Any] = {LISTS[name]: values}
        return replace(f, **listed)
    if name in DATES:
        return _date(f, DATES[name], op, value, name)
    if name == "as_of" and op in ("is", "="):
        return replace(f, as_of=_day(value, name).isoformat())
    if name == "include_superseded" and op in ("is", "="):
        return replace(f, include_superseded=str(value).lower() in ("true", "1", "yes"))
    logger.info("dify metadata_condition on %r (%s) ignored: not metadata of this service", name, op)
    return f


def apply_condition(f: Filters, condition: Any) -> Filters:
    """``f`` narrowed by a Dify ``metadata_condition`` (see the module doc)."""
    if not isinstance(condition, dict):
        return f
    conds = [c for c in condition.get("conditions") or [] if isinstance(c, dict)]
    if str(condition.get("logical_operator") or "and").lower() == "or" and len(conds) > 1:
        raise InvalidInputError("metadata_condition: logical_operator 'or' over several conditions is not "
                                "supported; send 'and'")
    for c in conds:
        f = _one(f, c)
    return f
