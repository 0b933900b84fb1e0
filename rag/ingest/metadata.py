"""公文 metadata read from a document's text (issue 17, item 4): title, 发文机关 (issuer), 发文字号 (document
number), 成文日期, 发布日期, 施行日期, 有效期至 and 主题词. A pure function of the text: nothing is looked up,
nothing is guessed from another document; a field the text does not state is absent.

``extract_metadata(text)`` -> ``{"title", "issuer", "doc_number", "date_written", "date_published",
"date_effective", "date_expires", "subjects"}`` (dates ISO ``YYYY-MM-DD``). ``loaders.load_bytes`` puts them
in every document's ``meta`` (with ``validity.find_references`` under ``repeals``); ``PUT /v1/documents/{id}``
edits them and the search filters read them (``rag/core/types.Filters``).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

_CN_DIGITS = {"〇": 0, "○": 0, "零": 0, "Ｏ": 0, "O": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9}
_Y = r"(?P<y>\d{4}|[〇○零Ｏ一二三四五六七八九]{4})"
_M = r"(?P<m>\d{1,2}|[一二三四五六七八九十]{1,2})"
_D = r"(?P<d>\d{1,2}|[一二三四五六七八九十]{1,3})"
DATE = re.compile(rf"{_Y}\s*年\s*{_M}\s*月\s*{_D}\s*日")
ISO_DATE = re.compile(r"(?P<y>\d{4})[-./](?P<m>\d{1,2})[-./](?P<d>\d{1,2})")
DOC_NUMBER = re.compile(r"(?P<org>[\u4e00-\u9fff]{1,14}?)\s*[〔\[［(（【](?P<year>\d{4})[〕\]］)）】]"
                        r"\s*(?P<n>\d{1,5})\s*(?P<hao>[号號])")
DOC_TYPES = ("通知", "意见", "决定", "办法", "规定", "批复", "函", "报告", "通报", "公告", "通告", "方案",
             "规划", "细则", "条例", "规则", "决议", "命令", "纪要", "指引", "指南", "措施", "标准", "规范",
             "计划", "实施意见", "暂行办法", "辦法", "規定", "意見", "決定", "條例", "細則", "規劃", "報告",
             "規則", "決議", "紀要", "規範", "計劃")
_TYPES = "|".join(DOC_TYPES)
_TITLE = re.compile(rf"(?:关于|關於).{{2,80}}的(?:{_TYPES})$|^.{{0,40}}(?:{_TYPES})$")
# a numbered heading inside the text (二、支持方向和标准, （一）…, 1. …, 第三条 …) is never the document's title
_NUMBERED = re.compile(r"^(?:[一二三四五六七八九十]+[、.．]|[（(][一二三四五六七八九十\d]+[）)]|\d+[、.．)]"
                       r"|第[一二三四五六七八九十百\d]+[章节条款編编])")
ORGAN = re.compile(r"(?:人民政府|人民代表大会常务委员会|办公厅|办公室|委员会|政府|厅|局|部|委|院|署|中心"
                   r"|银行|总局|党委|党组|辦公廳|辦公室|委員會|廳)$")
_EFFECTIVE = re.compile(rf"自\s*(?:{DATE.pattern}|(?P<since>发布|印发|公布|下发|發布|印發)之日)\s*起\s*"
                        r"(?:施行|实施|执行|生效|實施|執行)")
_EXPIRES = re.compile(rf"有效期(?:至|截至|到)\s*{DATE.pattern}")
_VALID_YEARS = re.compile(r"有效期(?:为|限为)?\s*(?P<n>\d{1,2}|[一二三四五六七八九十]{1,2})\s*年")
# a validity period is the document's own only in a sentence about itself ("本通知…有效期至…"): a licence's or
# another measure's 有效期 quoted in the text must not expire the document
_SELF = re.compile(rf"本(?:{_TYPES}|文件|文)")
_PUBLISHED = re.compile(r"(?:发布日期|印发日期|发布时间|公布日期|发文日期|發布日期)\s*[：:]\s*(?P<rest>[^\n]{0,24})")
_SUBJECTS = re.compile(r"^\s*主题词\s*[：:]\s*(?P<w>.+)$", re.M)


def _cn_number(s: str) -> int:
    """``二〇二三`` -> 2023 (digit by digit); ``十二`` -> 12, ``二十一`` -> 21, ``三十`` -> 30."""
    if s.isdigit():
        return int(s)
    if "十" in s:
        tens, _, ones = s.partition("十")
        return (_CN_DIGITS.get(tens, 1) if tens else 1) * 10 + (_CN_DIGITS.get(ones, 0) if ones else 0)
    return int("".join(str(_CN_DIGITS[c]) for c in s if c in _CN_DIGITS) or 0)


def _date(m: re.Match[str]) -> str | None:
    try:
        return dt.date(_cn_number(m.group("y")), _cn_number(m.group("m")), _cn_number(m.group("d"))).isoformat()
    except (ValueError, KeyError, TypeError):
        return None


def _own(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The first match of ``pattern`` in a sentence that speaks of the document itself (``_SELF``)."""
    for sentence in re.split(r"[。；;\n]", text):
        if (m := pattern.search(sentence)) and _SELF.search(sentence[: m.start()]):
            return m
    return None


def _lines(text: str) -> list[str]:
    return [" ".join(ln.split()).lstrip("#").strip() for ln in text.splitlines() if ln.strip()]


def find_title(lines: list[str]) -> str:
    """The 公文 title among the first lines: ``…关于…的通知`` or a line ending in a document type, with a title
    wrapped over two or three lines joined back."""
    head = lines[:15]
    for i, ln in enumerate(head):
        if DOC_NUMBER.search(ln) and len(ln) < 30:
            continue
        for k in (1, 2, 3):  # a wrapped title: its lines joined
            cand = "".join(head[i : i + k]).replace(" ", "")
            if (len(cand) <= 90 and _TITLE.search(cand) and not re.search(r"[。；！？]", cand)
                    and not _NUMBERED.match(cand)):
                return cand
    return ""


def find_issuer(title: str, lines: list[str]) -> str:
    """发文机关: the organ before ``关于`` in the title, else the signature line above the closing date."""
    about = "关于" if "关于" in title else "關於"
    if about in title:
        org = title.split(about, 1)[0].strip()
        if org and ORGAN.search(org):
            return org
    tail = lines[-8:]
    for i, ln in enumerate(tail):
        if DATE.fullmatch(ln.replace(" ", "")) and i > 0:
            cand = tail[i - 1].replace(" ", "")
            if len(cand) <= 30 and ORGAN.search(cand):
                return cand
    return ""


def extract_metadata(text: str, title: str = "") -> dict[str, Any]:
    """The metadata a 公文 states about itself (see the module doc); ``title`` is the loader's title, used
    when the text has no recognisable 公文 title."""
    lines = _lines(text)
    out: dict[str, Any] = {}
    t = find_title(lines) or title.strip()
    if t:
        out["title"] = t
    m = DOC_NUMBER.search("\n".join(lines[:20])) or DOC_NUMBER.search(text)
    if m:
        out["doc_number"] = f"{m.group('org')}〔{m.group('year')}〕{int(m.group('n'))}{m.group('hao')}"
    issuer = find_issuer(t, lines)
    if issuer:
        out["issuer"] = issuer
    # 成文日期: a line that is only a date, last in the text (the signature), else right under the number
    dated = [d for ln in lines if (mm := DATE.fullmatch(ln.replace(" ", ""))) and (d := _date(mm))]
    if dated:
        out["date_written"] = dated[-1]
    pm = _PUBLISHED.search(text)
    if pm:
        dm = DATE.search(pm.group("rest")) or ISO_DATE.search(pm.group("rest"))
        if dm and (published := _date(dm)):
            out["date_published"] = published
    em = _EFFECTIVE.search(text)
    if em:
        if em.group("since"):
            since = out.get("date_published") or out.get("date_written")
            if since:
                out["date_effective"] = since
        elif eff := _date(em):
            out["date_effective"] = eff
    xm = _own(_EXPIRES, text)
    if xm and (exp := _date(xm)):
        out["date_expires"] = exp
    elif (vm := _own(_VALID_YEARS, text)) and out.get("date_effective"):
        start = dt.date.fromisoformat(out["date_effective"])
        years = _cn_number(vm.group("n"))
        try:
            end = start.replace(year=start.year + years)
        except ValueError:  # 29 February
            end = start.replace(year=start.year + years, day=28)
        out["date_expires"] = (end - dt.timedelta(days=1)).isoformat()
    sm = _SUBJECTS.search(text)
    if sm:
        out["subjects"] = [w for w in re.split(r"[\s、，,;；]+", sm.group("w")) if w]
    return out
