"""What a follow-up's rules read from the conversation (issue 16): the earlier turn, the tokens of a Chinese
question (jieba POS over the simplified text, spans in the original), its noun phrases, names and their kinds, and
the parts of the previous question a follow-up refers back to: its first named thing (``topic``), what it is about
without the attribute it asked for (``lead``), the question without its wh-part (``subject``), and what a pronoun
of it was rewritten to (``stood_for``). Pure, no index, no LLM.

The rules that use these: ``followup_zh`` (Chinese) and ``followup_en`` (English); ``conversation.rewrite`` picks
one by the question's script.

May import: ``rag.core`` (and jieba).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import jieba
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


def t2s(text: str) -> str:
    """The simplified text when it keeps the length (so spans map back), else the text as given."""
    n = normalize(text) if has_cjk(text) else text
    return n if len(n) == len(text) else text


def toks(text: str) -> list[Tok]:
    """jieba POS tokens of the simplified text, each with its span (and words) in the original; a year and its
    年 are one token (``2023年``, flag t); 那/那么 glued to a pronoun (jieba's ``那它``) are two tokens."""
    simp = t2s(text)
    out: list[Tok] = []
    pos = 0
    for w in pseg.cut(simp):
        end = pos + len(w.word)
        t = Tok(text[pos:end], w.flag, pos, end, w.word)
        if out and t.norm == "年" and re.fullmatch(r"(?:19|20)\d\d", out[-1].norm):
            p = out.pop()
            t = Tok(p.word + t.word, "t", p.start, end, p.norm + t.norm)
        m = re.fullmatch(r"(那么?)(.+)", t.norm)
        if m and m.group(2) in PERSON_PRON | THING_PRON:
            k = pos + len(m.group(1))
            out.append(Tok(text[pos:k], "c", pos, k, m.group(1)))
            t = Tok(text[k:end], "r", k, end, m.group(2))
        out.append(t)
        pos = end
    return out


PUNCT = "？?！!。.，,；;：: \t\n\"'“”「」"
PERSON_PRON = {"他", "她", "他们", "她们"}
THING_PRON = {"它", "它们", "其"}
DEMONSTRATIVE = {"该", "此", "这个", "那个", "这家", "这所", "那家", "那所", "这项", "这些", "那些", "这", "本", "这一",
                 "该项"}
WH = {"谁", "哪位", "什么", "哪些", "哪个", "哪", "多少", "几", "几个", "何时", "哪里", "怎样", "如何", "怎么",
      "是否", "为什么", "何", "哪年", "多久", "多大", "几家", "多少家", "哪家", "哪所", "哪两位", "第几"}
_NOMINAL = ("n", "nr", "ns", "nt", "nz", "nrt", "nrfg", "j", "l", "b", "vn", "eng", "an", "ng", "i")
NAME_FLAGS = {"ns": "place", "nt": "org", "nz": "org", "nr": "person", "nrfg": "person", "nrt": "person"}
_YEAR = re.compile(r"^(?:19|20)\d\d年?$")
PERSON_Q = re.compile(r"(?:是|为|叫|担任)?(?:谁|哪位|何人|什么人)[？?。.]*$|^(?:谁|哪位)")


def strip(text: str) -> str:
    return text.strip().strip(PUNCT)


def is_nominal(t: Tok) -> bool:
    return t.flag.startswith(_NOMINAL) or t.flag in ("v", "vn") and len(t.norm) > 1 and t.norm not in ("是", "有")


def is_noun(t: Tok) -> bool:
    return is_nominal(t) and t.flag != "v"


def is_inner(toks_: list[Tok], j: int) -> bool:
    """A one-character adjective or numeral between nouns is part of a name (内蒙古工业*大*学科创中心, 内蒙古*一*机
    集团): a numeral counting something has a measure word after it, not a noun."""
    return 0 < j < len(toks_) - 1 and len(toks_[j].norm) == 1 and (
        toks_[j].flag == "a" or toks_[j].flag == "m" and toks_[j].norm in "一二三四五六七八九十") \
        and is_noun(toks_[j - 1]) and is_noun(toks_[j + 1])


def is_unknown(t: Tok) -> bool:
    """A word of two or more Chinese characters that is not in jieba's dictionary: most often a name (简耘, 鑫环)."""
    return len(t.norm) > 1 and has_cjk(t.norm) and not jieba.dt.FREQ.get(t.norm)


def is_stop(t: Tok) -> bool:
    return t.norm in WH or t.norm in DEMONSTRATIVE or t.flag in ("q", "m", "u", "uj", "ul", "t")


def np_ending_at(toks_: list[Tok], i: int) -> tuple[int, int]:
    """(first, last) token index of the noun phrase ending with token ``i``: nominal words (and two-character
    verbs inside compounds such as 技术转移机构) back to a particle, measure or wh-word."""
    j = i
    while j - 1 >= 0:
        t = toks_[j - 1]
        if t.norm == "级" and j - 2 >= 0 and is_noun(toks_[j - 2]):  # 自治区 级 技术转移载体: one phrase
            j -= 1
            continue
        if is_stop(t) or not (is_nominal(t) or is_inner(toks_, j - 1)):
            break
        if t.flag in ("v", "b") and j - 2 >= 0 and name_kind(toks_[j - 2]) in ("place", "org", "person"):
            break  # a name then a verb: subject and predicate (呼和浩特市 现有 …), not one name
        j -= 1
    while j < i and toks_[j].flag == "v":  # a phrase does not start with a verb
        j += 1
    return j, i


def noun_phrases(toks_: list[Tok]) -> list[tuple[int, int]]:
    """The noun phrases of a question, in order: maximal nominal runs ending with a noun."""
    out: list[tuple[int, int]] = []
    i = len(toks_) - 1
    while i >= 0:
        t = toks_[i]
        verbal_head = t.flag == "v" and len(t.norm) == 2 and 0 < i < len(toks_) - 1 and is_noun(toks_[i - 1]) \
            and toks_[i + 1].flag == "d"
        if (is_noun(t) or verbal_head) and not is_stop(t):
            a, b = np_ending_at(toks_, i)
            out.append((a, b))
            i = a - 1
        else:
            i -= 1
    return out[::-1]


def text_of(toks_: list[Tok], a: int, b: int) -> str:
    return "".join(t.word for t in toks_[a:b + 1])


def name_kind(t: Tok) -> str:
    if _YEAR.match(t.norm):
        return "year"
    return NAME_FLAGS.get(t.flag, "")


def entities(toks_: list[Tok]) -> list[Tok]:
    return [t for t in toks_ if name_kind(t)]


def topic(prev: str) -> str:
    """The previous question's first named thing with the nouns after it (``鄂尔多斯实验室``,
    ``乌海市氢冶金研究孵化中心``) and the words jieba does not know right before it (a name it tags as a verb:
    ``简耘`` of ``简耘科技``), else its first noun phrase."""
    ts = toks(strip(prev))
    for i, t in enumerate(ts):
        if t.flag in NAME_FLAGS or t.flag in ("n", "j", "nz", "eng", "l"):
            while i > 0 and is_unknown(ts[i - 1]):
                i -= 1
            k = i
            while k + 1 < len(ts) and (is_inner(ts, k + 1) or not is_stop(ts[k + 1]) and is_nominal(ts[k + 1])) \
                    and not (ts[k + 1].flag in ("v", "b") and name_kind(ts[k]) in ("place", "org", "person")):
                k += 1
            while k > i and (ts[k].flag == "v" or (ts[k].flag == "vn" and k + 1 < len(ts) and ts[k + 1].norm == "的")):
                k -= 1
            return text_of(ts, i, k)
    return strip(prev)


def lead(prev: str) -> str:
    """What the previous question is about, without the attribute it asked for (its last noun phrase):
    ``简耘科技自研的马铃薯全生命周期决策模型可实现节肥多少？`` -> ``简耘科技自研的马铃薯全生命周期决策模型``."""
    ts = toks(strip(prev))
    phrases = noun_phrases(ts)
    if len(phrases) < 2:
        return topic(prev)
    k = phrases[-1][0] - 1
    while k >= 0 and not is_noun(ts[k]):
        k -= 1
    return text_of(ts, 0, k) if k >= 0 else topic(prev)


def subject(prev: str) -> str:
    """The previous question without its wh-part: ``鄂尔多斯实验室的主任是谁？`` -> ``鄂尔多斯实验室的主任``."""
    s = strip(prev)
    s2 = PERSON_Q.sub("", t2s(s))
    if s2 != t2s(s) and s2:
        return s[:len(s2)] if t2s(s).startswith(s2) else s[len(s) - len(s2):]
    ts = toks(s)
    for i, t in enumerate(ts):  # cut at the wh-word and the verb before it (是/有/为)
        if t.norm in WH and i > 0:
            j = i
            while j > 0 and ts[j - 1].norm in ("是", "有", "为", "共", "了", "的"):
                j -= 1
            return text_of(ts, 0, j - 1) or s
    return s


def stood_for(prev: Turn, pronouns: set[str]) -> str:
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
    removed, inserted = t2s(q[i:len(q) - j]).strip().lower(), r[i:len(r) - j].strip()
    return inserted if removed in pronouns and inserted else ""
