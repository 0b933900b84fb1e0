"""The Chinese rule rewrite of a follow-up question (issue 16): pure, no index, no LLM.

``zh(question, prev)`` returns ``(standalone query, kind)`` or None when the question is left as asked:

* a pronoun (他/她/它/其/该…/这个…, also glued to 那: ``那它``) is replaced by its antecedent: for a person, the
  person the previous turn was about (the name its own pronoun stood for, a who-question's subject plus the short
  answer's name, or a name in it); for a thing, the previous question's first named thing, kept whole (adjacent
  name tokens and the nouns after them: ``乌海市氢冶金研究孵化中心``, not ``乌海市氢冶金``); 这家/这所 + a noun the
  previous question lacks is that named institution (``这家企业`` -> ``内蒙古一机集团``);
* an elliptical follow-up (``那新型研发机构呢？``, ``中级的呢？``, a bare noun phrase) re-asks the previous
  question with one slot replaced by X: the phrase of the same preposition (``在内蒙古各盟市中`` for ``在全国288个
  城市中``), the phrase with X's head noun, else the name of X's kind (all adjacent
  tokens of it: ``中科赤峰``), else the level (``初级`` / ``国家级``) when X is a level, else the attribute the
  previous question asked about (its last noun phrase: ``总投资`` -> ``占地面积``);
* a short question with no subject of its own (``产量能提升多少？``, ``多少家？``) is asked of the previous
  question's subject;
* anything else, any question that states its own subject and asks something of it (``那鄂尔多斯市新增了多少
  家企业？``), and ``X的Y呢`` naming its own subject X and an attribute Y the previous question did not ask about,
  is self-contained and left alone: a topic switch is never rewritten.

May import: ``rag.core`` and ``rag.answer.followup_phrases``.
"""

from __future__ import annotations

import re

from rag.answer.followup_phrases import (
    DEMONSTRATIVE,
    PERSON_PRON,
    PERSON_Q,
    PUNCT,
    THING_PRON,
    WH,
    Tok,
    Turn,
    entities,
    is_nominal,
    lead,
    name_kind,
    noun_phrases,
    np_ending_at,
    stood_for,
    strip,
    subject,
    t2s,
    text_of,
    toks,
    topic,
)
from rag.core.text import normalize

_ELLIPSIS = re.compile(r"^(?:那么?|还有|那要是|然后|而|另外)?\s*(?P<x>.+?)\s*"
                       r"(?:呢|怎么样|如何|情况如何|的情况呢?)[？?。.!！]*$")


def _person(prev: Turn) -> str:
    chained = stood_for(prev, PERSON_PRON)
    if chained:
        return chained
    q = prev.standalone
    if PERSON_Q.search(t2s(strip(q))):
        subj = subject(q)
        name = strip(prev.short_answer)
        if name and len(name) <= 8 and not re.search(r"\d", name) and name not in subj:
            return subj + name
        return subj
    for t in toks(prev.standalone + " " + prev.short_answer):
        if t.flag in ("nr", "nrfg", "nrt"):
            return t.word
    return subject(q)


def _institution(prev: str) -> str:
    """The organisation the previous question named (its first ``nt`` name, whole), else its topic."""
    pts = toks(strip(prev))
    k = next((k for k, t in enumerate(pts) if t.flag == "nt"), -1)
    return topic(text_of(pts, k, len(pts) - 1)) if k >= 0 else topic(prev)


def _self_contained(ts: list[Tok]) -> bool:
    """The question names its own subject (a name or a title in 《》) and asks something of it (a question word
    or 吗): a new question, not an ellipsis, whatever it opens with (那/那么)."""
    names = [t for t in ts if name_kind(t) in ("place", "org", "person") or t.norm in ("《", "〈")]
    asks = any(t.norm in WH or t.norm.startswith(("多少", "哪")) or t.norm == "吗" for t in ts)
    return bool(names) and asks and sum(len(t.norm) for t in ts if t.norm.strip(PUNCT)) >= 8


def _own_subject_and_attribute(x: str, prev: str) -> bool:
    """``X的Y呢`` with a name X and an attribute Y the previous question did not ask about (``那内蒙古的绿氢产能呢？``
    after a question on Gansu's potatoes) is a new question, not an ellipsis: nothing of the previous one is left
    to carry over (the English ``what about X's Y``)."""
    xts = toks(x)
    if not xts or xts[0].norm in _PREP:
        return False
    names = [k for k, t in enumerate(xts) if name_kind(t) in ("place", "org", "person") and t.flag != "nz"]
    de = [k for k, t in enumerate(xts) if t.norm == "的" and names and k > names[0]]
    attr = [t for t in xts[de[0] + 1:] if is_nominal(t) and not name_kind(t)] if de else []
    return bool(attr) and attr[-1].norm not in t2s(strip(prev))


def zh(question: str, prev: Turn) -> tuple[str, str] | None:
    q = question.strip()
    ts = toks(q)
    words = [t.norm for t in ts]
    pq = prev.standalone
    # pronouns and demonstratives
    for i, t in enumerate(ts):
        if t.flag != "r" and t.norm not in DEMONSTRATIVE:
            continue
        if t.norm in PERSON_PRON:
            return q[:t.start] + _person(prev) + q[t.end:], "pronoun"
        if t.norm in THING_PRON:
            rep = (stood_for(prev, THING_PRON) or topic(pq)) \
                + ("的" if t.norm == "其" and not q[t.end:].startswith("的") else "")
            return q[:t.start] + rep + q[t.end:], "pronoun"
        if t.norm in DEMONSTRATIVE and i + 1 < len(ts) and is_nominal(ts[i + 1]):
            noun = ts[i + 1]
            pts = toks(strip(pq))
            for k, pt in enumerate(pts):
                if pt.norm == noun.norm or (len(noun.norm) > 1 and pt.norm.endswith(noun.norm)):
                    a, b = np_ending_at(pts, k)
                    return q[:t.start] + text_of(pts, a, b) + q[noun.end:], "pronoun"
            if t.norm.endswith(("家", "所")):  # 这家企业, 那所大学: the measure word says an institution, so
                return q[:t.start] + _institution(pq) + q[noun.end:], "pronoun"  # the one the last one named
            return q[:t.start] + topic(pq) + "的" + q[noun.start:], "pronoun"
    if _self_contained(ts):
        return None
    # elliptical: 那X呢 / X呢 / a bare noun phrase
    m = _ELLIPSIS.match(q)
    x = m.group("x") if m else ""
    core = [t for t in ts if t.norm.strip(PUNCT)]
    if not x and core and len(strip(q)) <= 12 and all(is_nominal(t) for t in core) and not set(words) & WH:
        x = strip(q)
    if x and _own_subject_and_attribute(strip(x), pq):
        return None
    if x:
        return substitute(strip(x), pq), "ellipsis"
    # no subject of its own: 多少家？ 是谁？ 产量能提升多少？
    if core and len(strip(q)) <= 10 and not entities(core) and (set(words) & WH or all(
            t.flag in ("m", "q", "v", "r", "d", "u", "uj", "ul") for t in core)):
        if all(t.norm in WH or t.flag in ("m", "q", "v", "r", "d", "u", "uj", "ul") for t in core):
            return subject(pq) + strip(q) + "？", "measure"
        return lead(pq) + strip(q) + "？", "measure"
    return None


_PREP = ("在", "于", "从", "对", "向")  # prepositions opening a place or scope phrase
_LOCALIZER = "中内里裡裏上下间間"  # the localizer closing it
_RATE = ("率", "比")  # one-character heads jieba cuts off a rate or ratio (数位化|率)


def _level(ts: list[Tok]) -> tuple[int, int] | None:
    """The last level word of a question (``初级``, ``国家级``, ``自治区`` + ``级``) as a token span."""
    found = None
    for k, t in enumerate(ts):
        if t.flag == "b" or (len(t.norm) > 1 and t.norm.endswith("级")):
            found = (k, k)
        elif t.norm == "级" and k > 0:
            found = (k - 1, k)
    return found


def substitute(x: str, prev: str) -> str:
    """``prev`` re-asked about ``x`` (see the module doc for the slot that x replaces)."""
    p = strip(prev)
    pts, xts = toks(p), toks(x)
    if len(xts) > 1 and xts[0].norm in _PREP:  # 在内蒙古各盟市中 replaces 在全国288个城市中, the same preposition's
        for k, pt in enumerate(pts):  # phrase up to its localizer
            if pt.norm == xts[0].norm:
                tail = text_of(pts, k, len(pts))
                m = re.match(rf"{re.escape(pt.word)}[^，,；;]*?[{_LOCALIZER}]", tail)
                if m:
                    return text_of(pts, 0, k - 1) + x + tail[m.end():] + "？"
                break
    xnom = [t for t in xts if is_nominal(t)]
    if xnom:  # the phrase with x's head noun
        head = xnom[-1].norm
        for k in range(len(pts) - 1, -1, -1):
            if pts[k].norm == head or (len(head) > 1 and pts[k].norm.endswith(head)):
                a, b = np_ending_at(pts, k)
                if text_of(pts, a, b) == x:
                    break
                return text_of(pts, 0, a - 1) + x + text_of(pts, b + 1, len(pts)) + "？"
    kinds = {name_kind(t) for t in xts if t.flag != "nz"} - {""}  # nz: jieba's catch-all (力争, 联合体)
    if len(xts) <= 3 and kinds:  # a name of the same kind, all its adjacent tokens
        for k, pt in enumerate(pts):
            if name_kind(pt) in kinds and pt.flag != "nz":
                b = k
                while kinds - {"year"} and b + 1 < len(pts) and name_kind(pts[b + 1]) == name_kind(pt):
                    b += 1
                return text_of(pts, 0, k - 1) + x + text_of(pts, b + 1, len(pts)) + "？"
        if "year" in kinds:
            return x + p + "？"
    bare = x[:-1] if x.endswith("的") else x
    level = _level(pts)
    if level and (x.endswith("的") or _level(toks(bare))):  # 中级的呢 after 初级技术经纪人
        a, b = level
        return text_of(pts, 0, a - 1) + bare + text_of(pts, b + 1, len(pts)) + "？"
    phrases = noun_phrases(pts)
    if phrases and not kinds & {"place", "person", "year"}:  # the attribute asked about: 总投资 -> 占地面积
        a, b = phrases[-1]
        while a < b and name_kind(pts[a]) in ("place", "org", "person"):
            a += 1  # the name the attribute belongs to stays: 内蒙古 绿氢 -> 内蒙古 储能装机
        if a < b and b + 1 < len(pts) and pts[b + 1].norm in _RATE and xts[-1].norm[-1:] not in _RATE:
            b -= 1  # a rate (数位化 率) keeps its head and x replaces what it is the rate of: 关键工序 数位化率
        out = []
        for k, t in enumerate(pts):
            if k == a:
                out.append(x)
            elif not (a < k <= b or (t.flag == "q" and k > 0 and pts[k - 1].norm in WH)):
                out.append(t.word)  # the measure after the wh-word (多少*家*) belonged to the old attribute
        return "".join(out) + "？"
    names = [t.word for t in entities(pts) if t.norm not in normalize(x)]
    return "".join(names) + x + "？"
