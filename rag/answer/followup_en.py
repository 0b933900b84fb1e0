"""The English rule rewrite of a follow-up question (issue 16): pure, no index, no LLM.

``en(question, prev)`` returns ``(standalone query, kind)`` or None when the question is left as asked:
``what about X?`` / ``and X?`` re-asks the previous question with the words ending in X's head noun, the first
capitalised name, its level word or the attribute it asked about replaced by X; he/she/his/her is the person the
previous turn was about (who-question subject plus its short answer), it/its/they/their its first capitalised
name that is not an acronym (``Ordos``, not ``R&D``), a closing ``that``/``this`` the previous question's
matter. ``And how many …?``, ``what about <Name>'s <attribute>`` with an attribute the previous question did not
ask about, and other questions of their own are left alone.

May import: ``rag.core`` and ``rag.answer.followup_phrases``.
"""

from __future__ import annotations

import re

from rag.answer.followup_phrases import Turn, stood_for

_EN_ABOUT = re.compile(r"^(?:and\s+)?(?:what|how)\s+about\s+(?P<x>.+?)[?.!]*$|^and\s+(?P<y>[^?]+?)\?*$", re.I)
_EN_QUESTION = re.compile(r"^(?:how|what|which|who|whom|whose|when|where|why|is|are|was|were|do|does|did|has|"
                          r"have|had|can|could|will|would|should)\b", re.I)
_EN_PERSON = re.compile(r"\b(he|she|him|his|her|hers)\b", re.I)
_EN_THING = re.compile(r"\b(it|its|they|them|their)\b", re.I)
_EN_WH_PERSON = re.compile(r"^\s*who(?:'s|\s+is|\s+was|\s+are|\s+were)?\s+", re.I)
_EN_NAME = re.compile(r"(?<!^)\b((?:the\s+)?[A-Z][\w&.-]*(?:\s+(?:(?:of|and|for)\s+(?:the\s+)?)?[A-Z][\w&.-]*)*)")
_ACRONYM = re.compile(r"(?:the\s+)?[A-Z0-9&.-]+")
_EN_THAT = re.compile(r"\b(that|this)(?=\s*[?.!]*$)", re.I)  # "What share is that?": the last question's matter
_EN_OWNED = re.compile(r"^(?:the\s+)?[A-Z][\w&.-]*(?:\s+[A-Z][\w&.-]*)*['’]s\s+(?P<np>.+)$")
_EN_QUALIFIER = {"by", "in", "of", "for", "from", "at", "to", "since", "during", "on", "per", "between", "under"}
_EN_STOP = {"how", "many", "much", "what", "which", "who", "the", "a", "an", "of", "has", "have", "did", "does",
            "do", "is", "are", "was", "were", "in", "for", "to", "by", "on", "at", "when", "where", "and"}


def en_topic(prev: str) -> str:
    """The previous question's first capitalised name, whole (``the Hohhot Innovation Center of the
    Beijing-Tianjin-Hebei National Technology Innovation Center``)."""
    names = [m.group(1).rstrip(".") for m in _EN_NAME.finditer(prev.strip())]
    proper = [n for n in names if not _ACRONYM.fullmatch(n)]  # R&D, AI, PET: common nouns, not what "it" is
    return (proper or names or [en_subject(prev)])[0]


def en_subject(prev: str) -> str:
    s = prev.strip().rstrip("?.! ")
    s2 = _EN_WH_PERSON.sub("", s)
    if s2 != s:
        return s2
    words = [w for w in s.split() if w.lower() not in _EN_STOP]
    return " ".join(words)


_EN_ATTR = re.compile(r"^(?P<lead>(?:how\s+(?:many|much)|what(?:\s+is|\s+was|\s+are|'s)\s+the|which)\s+)"
                      r"(?P<attr>.+?)(?P<rest>\s+(?:is|are|was|were|has|have|had|did|does|do|will|can|of|in|for)\b.*"
                      r"|\s+\w+ed\b.*)$", re.I)


def _en_slot(x: str, prev: str) -> str:
    """``prev`` re-asked with its level word (``national-level`` for ``autonomous-region-level ones``) or the
    attribute it asked about (``How many *key projects* is Hohhot …``) replaced by ``x``; "" if neither."""
    p = prev.strip().rstrip("?.! ")
    xw = x.split()
    if len(xw) > 1 and xw[-1].lower() in ("one", "ones"):
        mod = " ".join(xw[:-1])
        suffix = mod.rsplit("-", 1)[-1].lower()
        words = p.split()
        for k, w in enumerate(words):
            if "-" in mod and w.lower().endswith("-" + suffix):
                return " ".join([*words[:k], mod, *words[k + 1:]]) + "?"
    m = _EN_ATTR.match(p)
    if m and xw[-1].lower() not in ("one", "ones"):
        body = re.sub(r"^the\s+", "", x, flags=re.I)
        return f"{m.group('lead')}{body}{m.group('rest')}?"
    return ""


def _owned_attribute_is_new(x: str, prev: str) -> bool:
    """``what about <Name>'s <attribute>`` whose attribute the previous question did not ask about (``What about
    Inner Mongolia's green hydrogen capacity by 2025?`` after a question on Gansu's potatoes) names a new subject
    and a new attribute: a question of its own, not an ellipsis."""
    m = _EN_OWNED.match(x)
    if not m:
        return False
    core = []
    for w in m.group("np").split():
        if w.lower() in _EN_QUALIFIER:
            break
        core.append(w)
    had = {w.lower().strip("?.!,").removesuffix("'s").rstrip("s") for w in prev.split()}
    return bool(core) and core[-1].lower().rstrip("s") not in had


def en(question: str, prev: Turn) -> tuple[str, str] | None:
    q = question.strip()
    pq = prev.standalone.strip()
    m = _EN_ABOUT.match(q)
    if m and m.group("y") and _EN_QUESTION.match(m.group("y").strip()):
        m = None  # "And how many key laboratories …?": a question of its own, not "and X?"
    if m:
        x = (m.group("x") or m.group("y") or "").strip()
        if _owned_attribute_is_new(x, pq):
            return None
        words = pq.rstrip("?.! ").split()
        xw = x.split()
        head = xw[-1].lower().rstrip("s") if xw else ""
        for k in range(len(words) - 1, -1, -1):
            if head and words[k].lower().rstrip("s,") == head:
                a = k
                while a - 1 >= 0 and words[a - 1].lower() not in _EN_STOP:
                    a -= 1
                return " ".join([*words[:a], x, *words[k + 1:]]) + "?", "ellipsis"
        if x[:1].isupper():  # a name: replaces the previous question's first name
            t = en_topic(pq)
            if t and t in pq and t != en_subject(pq):
                return pq.replace(t, x, 1), "ellipsis"
        got = _en_slot(re.sub(r"^(?:its|their)\s+", "the ", x, flags=re.I), pq)
        return (got or f"{x} ({en_subject(pq)})?"), "ellipsis"
    if _EN_PERSON.search(q):
        person = stood_for(prev, {"he", "she", "him", "his", "her", "hers"}).removesuffix("'s")
        if not person:
            person = en_subject(pq) if _EN_WH_PERSON.match(pq) else en_topic(pq)
            if prev.short_answer and _EN_WH_PERSON.match(pq) and len(prev.short_answer) <= 40:
                person = f"{person} {prev.short_answer}"

        def rep(mm: re.Match[str]) -> str:
            return person + ("'s" if mm.group(1).lower() in ("his", "hers") else "")
        return _EN_PERSON.sub(rep, q, count=1), "pronoun"
    if _EN_THING.search(q):
        t = en_topic(pq)

        def rep2(mm: re.Match[str]) -> str:
            return t + ("'s" if mm.group(1).lower() in ("its", "their") else "")
        return _EN_THING.sub(rep2, q, count=1), "pronoun"
    if _EN_THAT.search(q) and en_subject(pq):
        return _EN_THAT.sub(en_subject(pq), q, count=1), "pronoun"
    return None
