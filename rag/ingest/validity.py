"""Which documents a 公文 repeals, replaces or amends (issue 17, item 5), and the links that makes between the
documents of one index. Regular expressions over the text: this is metadata, not the answer reader.

``find_references(text, own_title, own_number)`` -> ``[{"title"?, "doc_number"?, "how"}]``, read from the
sentences that say so:

* ``《X》（呼政发〔2019〕7号）同时废止`` / ``…不再执行`` / ``…停止执行`` / ``…自行失效`` -> how ``废止``;
* ``《X》与本办法不一致的，以本办法为准`` -> ``取代``;
* ``关于修订《X》的通知``, ``对《X》进行了修订``, ``修订后的《X》`` (修正/修改 alike) -> ``修订``.

A title followed by an article (``《X》第五条同时废止``) repeals that article only: not a reference.

``link(documents)`` resolves every document's ``meta["repeals"]`` against the others (the 发文字号 when the
reference has one, else the title: the document's own, or the measure a ``关于印发《X》的通知`` transmits) and sets
``meta["superseded_by"]`` on the older document (``rag/core/docmeta.py`` reads it) and ``meta["supersedes"]``
on the newer one. A document never supersedes itself or one that took effect after it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rag.core.docmeta import measure, normalise_number, starts
from rag.core.types import Document
from rag.ingest.metadata import DOC_NUMBER

_SENTENCE = re.compile(r"[^。；;！？\n]+")
_BOOK = re.compile(r"《(?P<t>[^《》\n]{2,80})》")
_PART = re.compile(r"\s*(?:[（(][^（）()]{0,40}[）)])?\s*第[一二三四五六七八九十百零〇\d]+条")
_REPEAL = re.compile(r"(?:同时|一并|予以|自行|即行)?(?:废止|失效)|不再(?:执行|施行|适用)|停止(?:执行|施行)")
_PREVAIL = re.compile(r"以本(?:办法|规定|通知|意见|细则|决定|条例|方案|措施|规则|文件|公告|通告)为准")
_AMEND = re.compile(r"(?:修订|修正|修改)(?:后的)?《(?P<t>[^《》\n]{2,80})》"
                    r"|对《(?P<t2>[^《》\n]{2,80})》[^。；\n]{0,40}?(?:进行了?|作了?|予以)?(?:修订|修正|修改)")
HOW = ("废止", "取代", "修订")


def _name(title: str) -> str:
    return "".join(title.split()).strip("《》")


def _numbers(sentence: str, own: str) -> list[str]:
    out = []
    for m in DOC_NUMBER.finditer(sentence):
        n = f"{m.group('org')}〔{m.group('year')}〕{int(m.group('n'))}号"
        if normalise_number(n) != own:
            out.append(n)
    return out


def _titles(sentence: str, own: str) -> list[str]:
    return [_name(m.group("t")) for m in _BOOK.finditer(sentence)
            if not _PART.match(sentence, m.end()) and _name(m.group("t")) != own]


def find_references(text: str, own_title: str = "", own_number: str = "") -> list[dict[str, Any]]:
    """The documents this text says it repeals, replaces or amends (see the module doc), in text order."""
    own_t, own_n = _name(own_title), normalise_number(own_number)
    refs: list[dict[str, Any]] = []
    for m in _BOOK.finditer(own_title):  # 关于修订《X》的通知: the title names the amended measure
        if re.search(r"(?:修订|修正|修改)$", own_title[: m.start()]):
            refs.append({"title": _name(m.group("t")), "how": "修订"})
    for s in _SENTENCE.finditer(text):
        sent = s.group()
        verb = _REPEAL.search(sent) or _PREVAIL.search(sent)
        if verb is not None:
            how = "取代" if _PREVAIL.match(verb.group()) else "废止"
            head = sent[: verb.start()]  # what is repealed is named before the verb
            titles, numbers = _titles(head, own_t), _numbers(head, own_n)
            if len(titles) == len(numbers):  # 《X》（number）pairs
                refs += [{"title": t, "doc_number": n, "how": how} for t, n in zip(titles, numbers)]
            else:
                refs += [{"title": t, "how": how} for t in titles] + [{"doc_number": n, "how": how} for n in numbers]
        for am in _AMEND.finditer(sent):
            t = _name(am.group("t") or am.group("t2"))
            refs.append({"title": t, "how": "修订"})
    seen: set[tuple[str, str]] = set()
    unique = []
    for r in refs:
        key = (r.get("title", ""), r.get("doc_number", ""))
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return unique


def names(doc: Document) -> set[str]:
    """The titles a reference may call this document by: its own, and the measure a 印发 notice transmits."""
    out = {_name(t) for t in (doc.title, str(doc.meta.get("title") or "")) if t.strip()}
    return out | {_name(measure(t)) for t in out}


def _targets(ref: Mapping[str, Any], by_number: Mapping[str, list[Document]],
             by_name: Mapping[str, list[Document]]) -> list[Document]:
    """The documents a reference names: by 发文字号 when both sides have one, else by title."""
    number = normalise_number(str(ref.get("doc_number") or ""))
    found = list(by_number.get(number, [])) if number else []
    title = _name(str(ref.get("title") or ""))
    found += [d for d in by_name.get(title, []) if not (number and d.meta.get("doc_number"))] if title else []
    return list({d.doc_id: d for d in found}.values())


def link(documents: Mapping[str, Document]) -> None:
    """Set ``superseded_by`` / ``supersedes`` on every document from the others' ``repeals`` (recomputed from
    scratch: an edit or a deleted document takes its links with it). Linear in documents and references."""
    by_number: dict[str, list[Document]] = {}
    by_name: dict[str, list[Document]] = {}
    for d in documents.values():
        d.meta.pop("superseded_by", None)
        d.meta.pop("supersedes", None)
        if d.meta.get("doc_number"):
            by_number.setdefault(normalise_number(str(d.meta["doc_number"])), []).append(d)
        for n in names(d):
            by_name.setdefault(n, []).append(d)
    for new in documents.values():
        since = starts(new.meta)
        for ref in new.meta.get("repeals") or []:
            if not isinstance(ref, Mapping):
                continue
            for old in _targets(ref, by_number, by_name):
                if old.doc_id == new.doc_id:
                    continue
                if since and starts(old.meta) and starts(old.meta) > since:
                    continue  # a document cannot repeal one that took effect after it
                prior = old.meta.get("superseded_by")
                if prior is not None and str(prior.get("date") or "") <= since:
                    continue  # the first to take effect supersedes it
                if prior is not None and prior.get("doc_id") in documents:
                    earlier = documents[prior["doc_id"]].meta.get("supersedes") or []
                    documents[prior["doc_id"]].meta["supersedes"] = [x for x in earlier if x != old.doc_id]
                old.meta["superseded_by"] = {"doc_id": new.doc_id, "title": new.title,
                                             "doc_number": new.meta.get("doc_number", ""), "date": since,
                                             "how": ref.get("how") if ref.get("how") in HOW else "废止"}
                sup = new.meta.setdefault("supersedes", [])
                if old.doc_id not in sup:
                    sup.append(old.doc_id)
