"""The rule rewrite of a follow-up question (issue 16), Chinese and English: pure, no index, no LLM.

``rewrite(question, prev)`` returns ``(standalone query, kind)`` or None when the question is left as asked:

* a pronoun (他/她/它/其/该…/这个…, he/she/it/his/its/they) is replaced by its antecedent: for a person, the
  person the previous turn was about (the name its own pronoun stood for, a who-question's subject plus the
  short answer's name, or a name in it); for a thing, the previous question's first named thing, kept whole
  (adjacent name tokens and the nouns after them: ``乌海市氢冶金研究孵化中心``, not ``乌海市氢冶金``);
* an elliptical follow-up (``那新型研发机构呢？``, ``中级的呢？``, ``what about X?``, a bare noun phrase) re-asks
  the previous question with one slot replaced by X: the phrase with X's head noun, else the name of X's kind
  (all adjacent tokens of it: ``中科赤峰``), else the level (``初级`` / ``国家级``) when X is a level, else the
  attribute the previous question asked about (its last noun phrase: ``总投资`` -> ``占地面积``);
* a short question with no subject of its own (``产量能提升多少？``, ``多少家？``) is asked of the previous
  question's subject;
* anything else, and any question that states its own subject and asks something of it (``那鄂尔多斯市新增了多少
  家企业？``, ``And how many key laboratories …?``), is self-contained and left alone: a topic switch is never
  rewritten.

May import: ``rag.core`` (and jieba, which it already uses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import jieba.posseg as pseg

from rag.core.text import has_cjk, normalize


@dataclass
class Turn:
    """One earlier exchange: the question as asked, the standalone query it was answered with (when known),
    the answer, its short answer and the documents it cited."""

    question: str
    answer: str = ""
    query: str = ""
    short_answer: str = ""
    doc_ids: list[str] = field(default_factory=list)

    @property
    def standalone(self) -> str:
        return self.query or self.question


# -- tokens ----------------------------------------------------------------------------------------------------
@dataclass
class Tok:
    word: str  # as in the original text
    flag: str
    start: int
    end: int
    norm: str  # simplified


def _t2s(text: str) -> str:
    n = normalize(text) if has_cjk(text) else text
    return n if len(n) == len(text) else text


def toks(text: str) -> list[Tok]:
    """jieba POS tokens of the simplified text, each with its span (and words) in the original; a year and its
    年 are one token (``2023年``, flag t)."""
    simp = _t2s(text)
    out: list[Tok] = []
    pos = 0
    for w in pseg.cut(simp):
        end = pos + len(w.word)
        t = Tok(text[pos:end], w.flag, pos, end, w.word)
        if out and t.norm == "年" and re.fullmatch(r"(?:19|20)\d\d", out[-1].norm):
            p = out.pop()
            t = Tok(p.word + t.word, "t", p.start, end, p.norm + t.norm)
        out.append(t)
        pos = end
    return out


_PUNCT = "？?！!。.，,；;：: \t\n\"'“”「」"
PERSON_PRON = {"他", "她", "他们", "她们"}
THING_PRON = {"它", "它们", "其"}
DEMONSTRATIVE = {"该", "此", "这个", "那个", "这家", "这所", "这项", "这些", "那些", "这", "本", "这一", "该项"}
WH = {"谁", "哪位", "什么", "哪些", "哪个", "哪", "多少", "几", "几个", "何时", "哪里", "怎样", "如何", "怎么",
      "是否", "为什么", "何", "哪年", "多久", "多大", "几家", "多少家", "哪家", "哪所", "哪两位", "第几"}
_NOMINAL = ("n", "nr", "ns", "nt", "nz", "nrt", "nrfg", "j", "l", "b", "vn", "eng", "an", "ng", "i")
_NAME_FLAGS = {"ns": "place", "nt": "org", "nz": "org", "nr": "person", "nrfg": "person", "nrt": "person"}
_YEAR = re.compile(r"^(?:19|20)\d\d年?$")
_ELLIPSIS = re.compile(r"^(?:那么?|还有|那要是|然后|而|另外)?\s*(?P<x>.+?)\s*"
                       r"(?:呢|怎么样|如何|情况如何|的情况呢?)[？?。.!！]*$")
_PERSON_Q = re.compile(r"(?:是|为|叫|担任)?(?:谁|哪位|何人|什么人)[？?。.]*$|^(?:谁|哪位)")


def strip(text: str) -> str:
    return text.strip().strip(_PUNCT)


def _nominal(t: Tok) -> bool:
    return t.flag.startswith(_NOMINAL) or t.flag in ("v", "vn") and len(t.norm) > 1 and t.norm not in ("是", "有")


def _noun(t: Tok) -> bool:
    return _nominal(t) and t.flag != "v"


def _inner(toks_: list[Tok], j: int) -> bool:
    """A one-character adjective between nouns is part of a name (内蒙古工业*大*学科创中心)."""
    return 0 < j < len(toks_) - 1 and len(toks_[j].norm) == 1 and toks_[j].flag == "a" \
        and _noun(toks_[j - 1]) and _noun(toks_[j + 1])


def _stop(t: Tok) -> bool:
    return t.norm in WH or t.norm in DEMONSTRATIVE or t.flag in ("q", "m", "u", "uj", "ul", "t")


def np_ending_at(toks_: list[Tok], i: int) -> tuple[int, int]:
    """(first, last) token index of the noun phrase ending with token ``i``: nominal words (and two-character
    verbs inside compounds such as 技术转移机构) back to a particle, measure or wh-word."""
    j = i
    while j - 1 >= 0:
        t = toks_[j - 1]
        if t.norm == "级" and j - 2 >= 0 and _noun(toks_[j - 2]):  # 自治区 级 技术转移载体: one phrase
            j -= 1
            continue
        if _stop(t) or not (_nominal(t) or _inner(toks_, j - 1)):
            break
        if t.flag in ("v", "b") and j - 2 >= 0 and _kind(toks_[j - 2]) in ("place", "org", "person"):
            break  # a name then a verb: subject and predicate (呼和浩特市 现有 …), not one name
        j -= 1
    while j < i and toks_[j].flag == "v":  # a phrase does not start with a verb
        j += 1
    return j, i


def _phrases(toks_: list[Tok]) -> list[tuple[int, int]]:
    """The noun phrases of a question, in order: maximal nominal runs ending with a noun."""
    out: list[tuple[int, int]] = []
    i = len(toks_) - 1
    while i >= 0:
        t = toks_[i]
        verbal_head = t.flag == "v" and len(t.norm) == 2 and 0 < i < len(toks_) - 1 and _noun(toks_[i - 1]) \
            and toks_[i + 1].flag == "d"
        if (_noun(t) or verbal_head) and not _stop(t):
            a, b = np_ending_at(toks_, i)
            out.append((a, b))
            i = a - 1
        else:
            i -= 1
    return out[::-1]


def text_of(toks_: list[Tok], a: int, b: int) -> str:
    return "".join(t.word for t in toks_[a:b + 1])


def _kind(t: Tok) -> str:
    if _YEAR.match(t.norm):
        return "year"
    return _NAME_FLAGS.get(t.flag, "")


def _entities(toks_: list[Tok]) -> list[Tok]:
    return [t for t in toks_ if _kind(t)]


def topic(prev: str) -> str:
    """The previous question's first named thing with the nouns after it (``鄂尔多斯实验室``,
    ``乌海市氢冶金研究孵化中心``), else its first noun phrase."""
    ts = toks(strip(prev))
    for i, t in enumerate(ts):
        if t.flag in _NAME_FLAGS or t.flag in ("n", "j", "nz", "eng", "l"):
            k = i
            while k + 1 < len(ts) and not _stop(ts[k + 1]) and (_nominal(ts[k + 1]) or _inner(ts, k + 1)) \
                    and not (ts[k + 1].flag in ("v", "b") and _kind(ts[k]) in ("place", "org", "person")):
                k += 1
            while k > i and (ts[k].flag == "v" or (ts[k].flag == "vn" and k + 1 < len(ts) and ts[k + 1].norm == "的")):
                k -= 1
            return text_of(ts, i, k)
    return strip(prev)


def lead(prev: str) -> str:
    """What the previous question is about, without the attribute it asked for (its last noun phrase):
    ``简耘科技自研的马铃薯全生命周期决策模型可实现节肥多少？`` -> ``简耘科技自研的马铃薯全生命周期决策模型``."""
    ts = toks(strip(prev))
    phrases = _phrases(ts)
    if len(phrases) < 2:
        return topic(prev)
    k = phrases[-1][0] - 1
    while k >= 0 and not _noun(ts[k]):
        k -= 1
    return text_of(ts, 0, k) if k >= 0 else topic(prev)


def subject(prev: str) -> str:
    """The previous question without its wh-part: ``鄂尔多斯实验室的主任是谁？`` -> ``鄂尔多斯实验室的主任``."""
    s = strip(prev)
    s2 = _PERSON_Q.sub("", _t2s(s))
    if s2 != _t2s(s) and s2:
        return s[:len(s2)] if _t2s(s).startswith(s2) else s[len(s) - len(s2):]
    ts = toks(s)
    for i, t in enumerate(ts):  # cut at the wh-word and the verb before it (是/有/为)
        if t.norm in WH and i > 0:
            j = i
            while j > 0 and ts[j - 1].norm in ("是", "有", "为", "共", "了", "的"):
                j -= 1
            return text_of(ts, 0, j - 1) or s
    return s


def _stood_for(prev: Turn, pronouns: set[str]) -> str:
    """What a pronoun of ``pronouns`` in the previous question was rewritten to (a chain: 他 -> 他 -> 他)."""
    q, r = prev.question.strip(), prev.query.strip()
    if not r or r == q:
        return ""
    i = 0
    while i < min(len(q), len(r)) and q[i] == r[i]:
        i += 1
    j = 0
    while j < min(len(q), len(r)) - i and q[-1 - j] == r[-1 - j]:
        j += 1
    removed, inserted = _t2s(q[i:len(q) - j]).strip().lower(), r[i:len(r) - j].strip()
    return inserted if removed in pronouns and inserted else ""


def _person(prev: Turn) -> str:
    chained = _stood_for(prev, PERSON_PRON)
    if chained:
        return chained
    q = prev.standalone
    if _PERSON_Q.search(_t2s(strip(q))):
        subj = subject(q)
        name = strip(prev.short_answer)
        if name and len(name) <= 8 and not re.search(r"\d", name) and name not in subj:
            return subj + name
        return subj
    for t in toks(prev.standalone + " " + prev.short_answer):
        if t.flag in ("nr", "nrfg", "nrt"):
            return t.word
    return subject(q)


def _self_contained(ts: list[Tok]) -> bool:
    """The question names its own subject (a name or a title in 《》) and asks something of it (a question word
    or 吗): a new question, not an ellipsis, whatever it opens with (那/那么)."""
    names = [t for t in ts if _kind(t) in ("place", "org", "person") or t.norm in ("《", "〈")]
    asks = any(t.norm in WH or t.norm.startswith(("多少", "哪")) or t.norm == "吗" for t in ts)
    return bool(names) and asks and sum(len(t.norm) for t in ts if t.norm.strip(_PUNCT)) >= 8


# -- Chinese ---------------------------------------------------------------------------------------------------
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
            rep = (_stood_for(prev, THING_PRON) or topic(pq)) \
                + ("的" if t.norm == "其" and not q[t.end:].startswith("的") else "")
            return q[:t.start] + rep + q[t.end:], "pronoun"
        if t.norm in DEMONSTRATIVE and i + 1 < len(ts) and _nominal(ts[i + 1]):
            noun = ts[i + 1]
            pts = toks(strip(pq))
            for k, pt in enumerate(pts):
                if pt.norm == noun.norm or (len(noun.norm) > 1 and pt.norm.endswith(noun.norm)):
                    a, b = np_ending_at(pts, k)
                    return q[:t.start] + text_of(pts, a, b) + q[noun.end:], "pronoun"
            return q[:t.start] + topic(pq) + "的" + q[noun.start:], "pronoun"
    if _self_contained(ts):
        return None
    # elliptical: 那X呢 / X呢 / a bare noun phrase
    m = _ELLIPSIS.match(q)
    x = m.group("x") if m else ""
    core = [t for t in ts if t.norm.strip(_PUNCT)]
    if not x and core and len(strip(q)) <= 12 and all(_nominal(t) for t in core) and not set(words) & WH:
        x = strip(q)
    if x:
        return substitute(strip(x), pq), "ellipsis"
    # no subject of its own: 多少家？ 是谁？ 产量能提升多少？
    if core and len(strip(q)) <= 10 and not _entities(core) and (set(words) & WH or all(
            t.flag in ("m", "q", "v", "r", "d", "u", "uj", "ul") for t in core)):
        if all(t.norm in WH or t.flag in ("m", "q", "v", "r", "d", "u", "uj", "ul") for t in core):
            return subject(pq) + strip(q) + "？", "measure"
        return lead(pq) + strip(q) + "？", "measure"
    return None


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
    xnom = [t for t in xts if _nominal(t)]
    if xnom:  # the phrase with x's head noun
        head = xnom[-1].norm
        for k in range(len(pts) - 1, -1, -1):
            if pts[k].norm == head or (len(head) > 1 and pts[k].norm.endswith(head)):
                a, b = np_ending_at(pts, k)
                if text_of(pts, a, b) == x:
                    break
                return text_of(pts, 0, a - 1) + x + text_of(pts, b + 1, len(pts)) + "？"
    kinds = {_kind(t) for t in xts if t.flag != "nz"} - {""}  # nz: jieba's catch-all (力争, 联合体)
    if len(xts) <= 3 and kinds:  # a name of the same kind, all its adjacent tokens
        for k, pt in enumerate(pts):
            if _kind(pt) in kinds and pt.flag != "nz":
                b = k
                while kinds - {"year"} and b + 1 < len(pts) and _kind(pts[b + 1]) == _kind(pt):
                    b += 1
                return text_of(pts, 0, k - 1) + x + text_of(pts, b + 1, len(pts)) + "？"
        if "year" in kinds:
            return x + p + "？"
    bare = x[:-1] if x.endswith("的") else x
    level = _level(pts)
    if level and (x.endswith("的") or _level(toks(bare))):  # 中级的呢 after 初级技术经纪人
        a, b = level
        return text_of(pts, 0, a - 1) + bare + text_of(pts, b + 1, len(pts)) + "？"
    phrases = _phrases(pts)
    if phrases and not kinds & {"place", "person", "year"}:  # the attribute asked about: 总投资 -> 占地面积
        a, b = phrases[-1]
        while a < b and _kind(pts[a]) in ("place", "org", "person"):
            a += 1  # the name the attribute belongs to stays: 内蒙古 绿氢 -> 内蒙古 储能装机
        out = []
        for k, t in enumerate(pts):
            if k == a:
                out.append(x)
            elif not (a < k <= b or (t.flag == "q" and k > 0 and pts[k - 1].norm in WH)):
                out.append(t.word)  # the measure after the wh-word (多少*家*) belonged to the old attribute
        return "".join(out) + "？"
    names = [t.word for t in _entities(pts) if t.norm not in normalize(x)]
    return "".join(names) + x + "？"


# -- English ---------------------------------------------------------------------------------------------------
_EN_ABOUT = re.compile(r"^(?:and\s+)?(?:what|how)\s+about\s+(?P<x>.+?)[?.!]*$|^and\s+(?P<y>[^?]+?)\?*$", re.I)
_EN_QUESTION = re.compile(r"^(?:how|what|which|who|whom|whose|when|where|why|is|are|was|were|do|does|did|has|"
                          r"have|had|can|could|will|would|should)\b", re.I)
_EN_PERSON = re.compile(r"\b(he|she|him|his|her|hers)\b", re.I)
_EN_THING = re.compile(r"\b(it|its|they|them|their)\b", re.I)
_EN_WH_PERSON = re.compile(r"^\s*who(?:'s|\s+is|\s+was|\s+are|\s+were)?\s+", re.I)
_EN_NAME = re.compile(r"(?<!^)\b((?:the\s+)?[A-Z][\w&.-]*(?:\s+(?:(?:of|and|for)\s+(?:the\s+)?)?[A-Z][\w&.-]*)*)")
_EN_STOP = {"how", "many", "much", "what", "which", "who", "the", "a", "an", "of", "has", "have", "did", "does",
            "do", "is", "are", "was", "were", "in", "for", "to", "by", "on", "at", "when", "where", "and"}


def en_topic(prev: str) -> str:
    """The previous question's first capitalised name, whole (``the Hohhot Innovation Center of the
    Beijing-Tianjin-Hebei National Technology Innovation Center``)."""
    m = _EN_NAME.search(prev.strip())
    return m.group(1).rstrip(".") if m else en_subject(prev)


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


def en(question: str, prev: Turn) -> tuple[str, str] | None:
    q = question.strip()
    pq = prev.standalone.strip()
    m = _EN_ABOUT.match(q)
    if m and m.group("y") and _EN_QUESTION.match(m.group("y").strip()):
        m = None  # "And how many key laboratories …?": a question of its own, not "and X?"
    if m:
        x = (m.group("x") or m.group("y") or "").strip()
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
        person = _stood_for(prev, {"he", "she", "him", "his", "her", "hers"}).removesuffix("'s")
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
    return None


def rewrite(question: str, prev: Turn) -> tuple[str, str] | None:
    """(standalone query, kind) for ``question`` after ``prev``, or None to leave it as asked."""
    return zh(question, prev) if has_cjk(question) else en(question, prev)
