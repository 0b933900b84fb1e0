"""Follow-up questions made standalone before retrieval (issue 16): pure logic, no index, no HTTP.

``resolve(question, history)`` returns the query to search and answer. Rules first, no LLM needed:

* a pronoun (他/她/它/其/该…/这个…, he/she/it/his/its/they) is replaced by its antecedent in the previous
  turn: a person question's subject (``鄂尔多斯实验室的主任``, plus the short answer's name when it gave one), or
  the previous question's first named thing; ``该实验室`` by the previous noun phrase ending in ``实验室``;
* an elliptical follow-up (``那新型研发机构呢？``, ``2023年呢？``, ``what about X?``, a bare noun phrase) re-asks
  the previous question about the new thing: the previous phrase with the same head noun (``技术转移机构``),
  else the same kind of name (place, organisation, person, year), is replaced by it; failing that the previous
  question's named things are put in front of it;
* a bare measure or wh-phrase (``多少家？``) is asked of the previous question's subject;
* anything else is a self-contained question and is left alone (a topic switch is never rewritten).

A follow-up also carries the previous turn's cited documents (``Resolution.doc_ids``); ``prefer_documents``
moves their hits up a little. With ``condense`` (a callable sending chat messages to an LLM) the follow-up is
rewritten by a condense-question prompt instead, and that rewrite is used only when it keeps the new
question's own terms and looks like one question; on any error, timeout or failed check the rule result
stands (with a warning).

May import: ``rag.core`` (and jieba, which it already uses).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import jieba.posseg as pseg

from rag.core.text import has_cjk, normalize, tokenize
from rag.core.types import Hit

logger = logging.getLogger(__name__)

Condense = Callable[[list[dict[str, Any]]], str]


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


@dataclass
class Resolution:
    question: str  # as asked
    query: str  # what is searched and answered
    method: str = "none"  # none | rules | llm
    kind: str = ""  # pronoun | ellipsis | measure | "" (self-contained or no history)
    doc_ids: list[str] = field(default_factory=list)  # the previous turn's cited documents (follow-ups only)
    warnings: list[str] = field(default_factory=list)

    @property
    def rewritten(self) -> bool:
        return self.query != self.question


# -- tokens ----------------------------------------------------------------------------------------------------
@dataclass
class _Tok:
    word: str  # as in the original text
    flag: str
    start: int
    end: int
    norm: str  # simplified


def _t2s(text: str) -> str:
    n = normalize(text) if has_cjk(text) else text
    return n if len(n) == len(text) else text


def _toks(text: str) -> list[_Tok]:
    """jieba POS tokens of the simplified text, each with its span (and words) in the original."""
    simp = _t2s(text)
    out, pos = [], 0
    for w in pseg.cut(simp):
        end = pos + len(w.word)
        out.append(_Tok(text[pos:end], w.flag, pos, end, w.word))
        pos = end
    return out


_PUNCT = "？?！!。.，,；;：: \t\n\"'“”「」"
PERSON_PRON = {"他", "她", "他们", "她们"}
THING_PRON = {"它", "它们", "其"}
DEMONSTRATIVE = {"该", "此", "这个", "那个", "这家", "这所", "这项", "这些", "那些", "这", "本", "这一", "该项"}
WH = {"谁", "哪位", "什么", "哪些", "哪个", "哪", "多少", "几", "几个", "何时", "哪里", "怎样", "如何", "怎么",
      "是否", "为什么", "何", "哪年", "多久", "多大", "几家", "多少家"}
_NOMINAL = ("n", "nr", "ns", "nt", "nz", "nrt", "nrfg", "j", "l", "b", "vn", "eng", "an", "ng", "i")
_NAME_FLAGS = {"ns": "place", "nt": "org", "nz": "org", "nr": "person", "nrfg": "person", "nrt": "person"}
_YEAR = re.compile(r"^(?:19|20)\d\d年?$")
_ELLIPSIS = re.compile(r"^(?:那么?|还有|那要是|然后|而|另外)?\s*(?P<x>.+?)\s*"
                       r"(?:呢|怎么样|如何|情况如何|的情况呢?)[？?。.!！]*$")
_PERSON_Q = re.compile(r"(?:是|为|叫|担任)?(?:谁|哪位|何人|什么人)[？?。.]*$|^(?:谁|哪位)")


def _strip(text: str) -> str:
    return text.strip().strip(_PUNCT)


def _nominal(t: _Tok) -> bool:
    return t.flag.startswith(_NOMINAL) or t.flag in ("v", "vn") and len(t.norm) > 1 and t.norm not in ("是", "有")


def _np_ending_at(toks: list[_Tok], i: int) -> tuple[int, int]:
    """(first, last) token index of the noun phrase ending with token ``i``: nominal words (and
    two-character verbs inside compounds such as 技术转移机构) back to a particle, measure or wh-word."""
    j = i
    while j - 1 >= 0:
        t = toks[j - 1]
        if t.norm in WH or t.norm in DEMONSTRATIVE or not _nominal(t) or t.flag in ("q", "m", "u", "uj", "ul"):
            break
        j -= 1
    return j, i


def _entities(toks: list[_Tok]) -> list[_Tok]:
    return [t for t in toks if t.flag in _NAME_FLAGS or _YEAR.match(t.norm)]


def _kind(t: _Tok) -> str:
    if _YEAR.match(t.norm):
        return "year"
    return _NAME_FLAGS.get(t.flag, "")


def _topic(prev: str) -> str:
    """The previous question's first named thing with the nouns around it (``鄂尔多斯实验室``), else its
    first noun phrase."""
    toks = _toks(_strip(prev))
    for i, t in enumerate(toks):
        if t.flag in _NAME_FLAGS or t.flag in ("n", "j", "nz", "eng"):
            k = i
            while k + 1 < len(toks) and toks[k + 1].flag in ("n", "j", "nz", "ns", "nt", "l", "eng"):
                k += 1
            return prev_text(toks, i, k)
    return _strip(prev)


def prev_text(toks: list[_Tok], a: int, b: int) -> str:
    return "".join(t.word for t in toks[a:b + 1])


def _subject(prev: str) -> str:
    """The previous question without its wh-part: ``鄂尔多斯实验室的主任是谁？`` -> ``鄂尔多斯实验室的主任``."""
    s = _strip(prev)
    s2 = _PERSON_Q.sub("", _t2s(s))
    if s2 != _t2s(s) and s2:
        return s[:len(s2)] if _t2s(s).startswith(s2) else s[len(s) - len(s2):]
    toks = _toks(s)
    for i, t in enumerate(toks):  # cut at the wh-word and the verb before it (是/有/为)
        if t.norm in WH and i > 0:
            j = i
            while j > 0 and toks[j - 1].norm in ("是", "有", "为", "共", "了", "的"):
                j -= 1
            return prev_text(toks, 0, j - 1) or s
    return s


def _person(prev: Turn) -> str:
    q = prev.standalone
    if _PERSON_Q.search(_t2s(_strip(q))):
        subj = _subject(q)
        name = _strip(prev.short_answer)
        if name and len(name) <= 8 and not re.search(r"\d", name) and name not in subj:
            return subj + name
        return subj
    for t in _toks(prev.standalone + " " + prev.short_answer):
        if t.flag in ("nr", "nrfg", "nrt"):
            return t.word
    return _subject(q)


# -- Chinese rules ---------------------------------------------------------------------------------------------
def _zh(question: str, prev: Turn) -> tuple[str, str] | None:
    q = question.strip()
    toks = _toks(q)
    words = [t.norm for t in toks]
    pq = prev.standalone
    # pronouns and demonstratives
    for i, t in enumerate(toks):
        if t.flag != "r" and t.norm not in DEMONSTRATIVE:
            continue
        if t.norm in PERSON_PRON:
            return q[:t.start] + _person(prev) + q[t.end:], "pronoun"
        if t.norm in THING_PRON:
            rep = _topic(pq) + ("的" if t.norm == "其" and not q[t.end:].startswith("的") else "")
            return q[:t.start] + rep + q[t.end:], "pronoun"
        if t.norm in DEMONSTRATIVE and i + 1 < len(toks) and _nominal(toks[i + 1]):
            noun = toks[i + 1]
            ptoks = _toks(_strip(pq))
            for k, pt in enumerate(ptoks):
                if pt.norm == noun.norm or (len(noun.norm) > 1 and pt.norm.endswith(noun.norm)):
                    a, b = _np_ending_at(ptoks, k)
                    return q[:t.start] + prev_text(ptoks, a, b) + q[noun.end:], "pronoun"
            return q[:t.start] + _topic(pq) + "的" + q[noun.start:], "pronoun"
    # elliptical: 那X呢 / X呢 / a bare noun phrase
    m = _ELLIPSIS.match(q)
    x = m.group("x") if m else ""
    core = [t for t in toks if t.norm.strip(_PUNCT)]
    if not x and core and len(_strip(q)) <= 12 and all(_nominal(t) for t in core) and not set(words) & WH:
        x = _strip(q)
    if x:
        return _substitute(_strip(x), pq), "ellipsis"
    # a bare measure or wh-phrase: 多少家？ 是谁？ 什么时候？
    if core and len(_strip(q)) <= 8 and all(t.norm in WH or t.flag in ("m", "q", "v", "r", "d", "u", "uj", "ul")
                                            for t in core):
        return _subject(pq) + _strip(q) + "？", "measure"
    return None


def _substitute(x: str, prev: str) -> str:
    """``prev`` re-asked about ``x``: the phrase of ``prev`` with x's head noun, else the name of x's kind, is
    replaced by x; else prev's names are put before x."""
    p = _strip(prev)
    ptoks, xtoks = _toks(p), _toks(x)
    xnom = [t for t in xtoks if _nominal(t)]
    if xnom:
        head = xnom[-1].norm
        for k in range(len(ptoks) - 1, -1, -1):
            if ptoks[k].norm == head or (len(head) > 1 and ptoks[k].norm.endswith(head)):
                a, b = _np_ending_at(ptoks, k)
                if prev_text(ptoks, a, b) == x:
                    break
                return prev_text(ptoks, 0, a - 1) + x + prev_text(ptoks, b + 1, len(ptoks)) + "？"
    kinds = {_kind(t) for t in xtoks} - {""}
    if len(xtoks) <= 3 and kinds:
        for k, pt in enumerate(ptoks):
            if _kind(pt) in kinds:
                return prev_text(ptoks, 0, k - 1) + x + prev_text(ptoks, k + 1, len(ptoks)) + "？"
        if "year" in kinds:
            return x + p + "？"
    names = [t.word for t in _entities(ptoks) if t.norm not in normalize(x)]
    return "".join(names) + x + "？" if names else x + "（" + p + "）"


# -- English rules ---------------------------------------------------------------------------------------------
_EN_ABOUT = re.compile(r"^(?:and\s+)?(?:what|how)\s+about\s+(?P<x>.+?)[?.!]*$|^and\s+(?P<y>[^?]+?)\?*$", re.I)
_EN_PERSON = re.compile(r"\b(he|she|him|his|her|hers)\b", re.I)
_EN_THING = re.compile(r"\b(it|its|they|them|their)\b", re.I)
_EN_WH_PERSON = re.compile(r"^\s*who(?:'s|\s+is|\s+was|\s+are|\s+were)?\s+", re.I)
_EN_STOP = {"how", "many", "much", "what", "which", "who", "the", "a", "an", "of", "has", "have", "did", "does",
            "do", "is", "are", "was", "were", "in", "for", "to", "by", "on", "at", "when", "where", "and"}


def _en_topic(prev: str) -> str:
    m = re.search(r"(?<!^)\b((?:the\s+)?[A-Z][\w-]*(?:\s+(?:of\s+)?[A-Z][\w-]*)*)", prev.strip())
    return m.group(1) if m else _en_subject(prev)


def _en_subject(prev: str) -> str:
    s = prev.strip().rstrip("?.! ")
    s2 = _EN_WH_PERSON.sub("", s)
    if s2 != s:
        return s2
    words = [w for w in s.split() if w.lower() not in _EN_STOP]
    return " ".join(words)


def _en(question: str, prev: Turn) -> tuple[str, str] | None:
    q = question.strip()
    pq = prev.standalone.strip()
    m = _EN_ABOUT.match(q)
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
            topic = _en_topic(pq)
            if topic and topic in pq and topic != _en_subject(pq):
                return pq.replace(topic, x, 1), "ellipsis"
        return f"{x} ({_en_subject(pq)})?", "ellipsis"
    if _EN_PERSON.search(q):
        person = _en_subject(pq) if _EN_WH_PERSON.match(pq) else _en_topic(pq)
        if prev.short_answer and _EN_WH_PERSON.match(pq) and len(prev.short_answer) <= 40:
            person = f"{person} {prev.short_answer}"

        def rep(mm: re.Match[str]) -> str:
            return person + ("'s" if mm.group(1).lower() in ("his", "hers") else "")
        return _EN_PERSON.sub(rep, q, count=1), "pronoun"
    if _EN_THING.search(q):
        topic = _en_topic(pq)

        def rep2(mm: re.Match[str]) -> str:
            return topic + ("'s" if mm.group(1).lower() in ("its", "their") else "")
        return _EN_THING.sub(rep2, q, count=1), "pronoun"
    return None


# -- the entry point -------------------------------------------------------------------------------------------
def trim(history: Sequence[Turn], max_turns: int) -> tuple[list[Turn], list[str]]:
    """The last ``max_turns`` turns, and a warning when older ones were dropped."""
    h = list(history)
    if max_turns >= 0 and len(h) > max_turns:
        dropped = len(h) - max_turns
        return h[dropped:], [f"the history had {len(h)} turns; the oldest {dropped} were dropped "
                             f"(limit {max_turns})"]
    return h, []


def rule_rewrite(question: str, history: Sequence[Turn]) -> Resolution:
    q = question.strip()
    if not history or not q:
        return Resolution(question, q)
    prev = history[-1]
    try:
        got = _zh(q, prev) if has_cjk(q) else _en(q, prev)
    except Exception:  # noqa: BLE001 - a rule that trips leaves the question as asked
        logger.exception("follow-up rules failed on %r", q)
        got = None
    if got is None:
        return Resolution(question, q)
    query, kind = got
    query = re.sub(r"\s+", " ", query).strip()
    if not query or query == q:
        return Resolution(question, q)
    return Resolution(question, query, "rules", kind, list(dict.fromkeys(prev.doc_ids)))


def own_terms(question: str) -> list[str]:
    """The new question's content terms (pronouns, demonstratives, 那/呢 and question words left out)."""
    drop = PERSON_PRON | THING_PRON | DEMONSTRATIVE | WH | {"呢", "那", "那么", "还有", "about", "he", "she",
                                                             "it", "they", "him", "her", "his", "its"}
    return [t for t in dict.fromkeys(tokenize(question)) if t not in drop and len(t) > 0]


CONDENSE_SYSTEM = ("You rewrite the user's last question as one standalone question that can be understood "
                   "without the conversation: replace pronouns and fill in what an elliptical question leaves "
                   "out from the earlier turns. Keep every word of the last question that names something, keep "
                   "its language and script, and do not answer it. If it is already standalone, return it "
                   "unchanged. Reply with the question only.")


def condense_messages(question: str, history: Sequence[Turn], max_turns: int = 3) -> list[dict[str, Any]]:
    lines = []
    for t in list(history)[-max_turns:]:
        lines.append(f"Q: {t.standalone}")
        if t.answer:
            lines.append(f"A: {t.answer[:300]}")
    convo = "\n".join(lines)
    return [{"role": "system", "content": CONDENSE_SYSTEM},
            {"role": "user", "content": f"Conversation:\n{convo}\n\nLast question: {question.strip()}\n\n"
                                        "Standalone question:"}]


def check_condensed(question: str, reply: str) -> tuple[str, str]:
    """(the cleaned rewrite, "") or ("", why it is not used)."""
    text = (reply or "").strip()
    text = re.sub(r"^(?:standalone question|question|独立问题|问题)\s*[:：]\s*", "", text, flags=re.I)
    text = text.strip().strip("\"'“”「」`").strip()
    if not text:
        return "", "empty"
    if "\n" in text or len(text) > max(200, 4 * len(question)):
        return "", "not a single question"
    if any(ord(c) < 32 for c in text):
        return "", "control characters"
    have = normalize(text)
    have_toks = set(tokenize(text))
    missing = [t for t in own_terms(question) if t not in have and t not in have_toks]
    if missing:
        return "", "it dropped the question's own terms " + ", ".join(missing[:5])
    return text, ""


def resolve(question: str, history: Sequence[Turn], condense: Condense | None = None,
            always_condense: bool = False) -> Resolution:
    """The standalone query for ``question`` after ``history`` (oldest first). See the module doc."""
    res = rule_rewrite(question, history)
    if condense is None or not history or not (res.method == "rules" or always_condense):
        return res
    try:
        reply = condense(condense_messages(question, history))
    except Exception as e:  # noqa: BLE001 - timeout, busy, refused: the rule result stands
        why = getattr(e, "message", "") or type(e).__name__
        res.warnings.append(f"the LLM rewrite of the follow-up failed ({why}); used the rule-based rewrite")
        return res
    text, why = check_condensed(question, reply)
    if not text:
        res.warnings.append(f"the LLM rewrite of the follow-up was not used ({why}); used the rule-based rewrite")
        return res
    if text == question.strip():
        return res if res.method == "rules" else Resolution(question, res.query)
    doc_ids = res.doc_ids or list(dict.fromkeys(history[-1].doc_ids))
    return Resolution(question, text, "llm", res.kind or "llm", doc_ids, res.warnings)


def prefer_documents(hits: list[Hit], doc_ids: Sequence[str], top_k: int, lift: float = 2.5) -> list[Hit]:
    """The first ``top_k`` of ``hits`` after moving hits from ``doc_ids`` up by ``lift`` places (stable), ranks
    renumbered from 1."""
    if not doc_ids:
        return hits[:top_k]
    pref = set(doc_ids)
    order = sorted(range(len(hits)), key=lambda i: i - (lift if hits[i].chunk.doc_id in pref else 0))
    return [replace(hits[i], rank=r + 1) for r, i in enumerate(order[:top_k])]


# -- suggested follow-ups ---------------------------------------------------------------------------------------
_COUNT = re.compile(r"(?P<num>\d+(?:\.\d+)?)(?P<approx>余|多)?"
                    r"(?P<unit>家|个|项|名|人|所|座|条|批|支|件|户|万人|亿元|万元|元|吨|万吨|亩|公里|平方米|倍|%)")
_LEAD = re.compile(r"^(?:截至目前|目前|同时|其中|此外|另外|近年来|并且)+")


def suggest(question: str, passages: Sequence[str], asked: Sequence[str] = (), n: int = 3,
            answer: str = "") -> list[str]:
    """Up to ``n`` follow-up questions the passages answer (no LLM): a clause stating a count or amount becomes
    the question asking for it (``组建了17家产业技术创新联合体`` -> ``组建了多少家产业技术创新联合体？``). Clauses
    holding ``answer`` or repeating a question already asked are skipped."""
    seen = {_key(q) for q in [question, *asked]}
    out: list[str] = []
    for text in passages:
        for clause in re.split(r"[，,；;。！？!?\n]", text):
            clause = _LEAD.sub("", clause.strip())
            if clause.count("“") != clause.count("”"):
                clause = clause.replace("“", "").replace("”", "")
            clause = clause.strip("\"（）() ")
            if not 8 <= len(clause) <= 40 or (answer and answer in clause):
                continue
            m = _COUNT.search(clause)
            if m is None or re.search(r"\d", clause[m.end():]) or m.start() < 3:
                continue
            unit = m.group("unit")
            wh = "多少" if unit in ("%", "倍") else "多少" + unit
            q = clause[:m.start()] + wh + clause[m.end():] + "？"
            if _toks(clause)[0].flag[:1] in ("v", "d", "p"):  # no subject of its own: the question's topic,
                topic = _topic(question)  # when the passage is about it
                if normalize(topic) not in normalize(text):
                    continue
                q = topic + q
            k = _key(q)
            if k in seen:
                continue
            seen.add(k)
            out.append(q)
            if len(out) >= n:
                return out
    return out


def _key(q: str) -> str:
    return normalize(q).strip().rstrip("?？。.!！ ")


__all__ = ["Resolution", "Turn", "check_condensed", "condense_messages", "own_terms", "prefer_documents",
           "resolve", "rule_rewrite", "suggest", "trim"]
