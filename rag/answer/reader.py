"""Short answers: the bare span that answers a question (``"45.8亿元"``, ``"乌兰察布职业学院"``), read from the
sentences the extractive generator ranked, so a chatbot can show it next to the cited explanation.

No reader model exists on any registry here, so this is the classical rule-based reader, in two parts:

1. **Answer type** from the question: number (多少/几/how many…, with the unit the question asks for),
   date (何时/哪年/when…), person (谁/who), else open.
2. **Candidates** in the top sentences: typed spans (number+unit, dates, person names), and the
   *alignment gap*: the question's words left and right of its wh-word are found in the sentence, and
   what stands between them is the answer (``以[哪些领域]为主要科研方向`` → ``可再生能源与现代煤化工``).
   A typed candidate inside the gap wins; else the one nearest the question's words.

Batch-free and cheap (no model call for Chinese questions; cross-lingual ones reuse the cached clause
vectors). Returns ``None`` when nothing fits: the caller then shows no short answer rather than a guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rag.core.text import has_cjk, normalize
from rag.core.types import Hit, Sentence

UNITS = ("万平方公里 平方公里 平方米 立方米 万千瓦时 千瓦时 万千瓦 千瓦 兆瓦 吉瓦 "
         "万吨 公斤 千克 吨 公里 千米 厘米 毫米 米 亩 "
         "万元 亿元 元 美元 万人次 人次 万人 个百分点 百分点 "
         "个 项 家 名 人 位 份 条 所 座 台 套 件 次 篇 种 批 "
         "支 类 户 头 只 辆 架 部 本 张 对 页 届 集 期 场 首 "
         "章 层 栋 级 段 艘 颗 枚 株 棵 匹 根 片 块 幅 册 卷 "
         "周年 周 年 个月 月 天 日 小时 分钟 秒 岁 倍 万度 度 克 % ％ 余 多").split()
_SAME_UNIT = {"名": "人", "位": "人", "人": "人", "万元": "元", "亿元": "元", "元": "元"}
_UNIT_RE = "|".join(sorted(map(re.escape, UNITS), key=len, reverse=True))
_CN_NUM = "零〇一二三四五六七八九十百千万亿两"
NUMBER = re.compile(
    rf"第?(?:\d+(?:[.,]\d+)*(?:(?:至|到|-|~)\d+(?:\.\d+)?)?|[{_CN_NUM}]{{2,}}|[一二三四五六七八九十两])"
    rf"(?:多|余)?"
    rf"(?:[万亿千百]*(?:多|余)?(?:{_UNIT_RE})|[万亿千百]*)?(?:人民币)?(?:以上|左右|多)?(?:大[^\s，。；、,]{{1,5}})?")
DATE = re.compile(r"(?:\d{4}|[一二〇零][〇零一二三四五六七八九]{3})年"
                  r"(?:\d{1,2}月(?:\d{1,2}日)?(?:上旬|中旬|下旬|底|初)?)?"
                  r"|\d{1,2}月\d{1,2}日|\d{1,2}月(?:上旬|中旬|下旬|底|初|份)")
WH = re.compile(r"什么时候|何时|哪一年|哪年|哪一天|哪天|多少|多大比例|多大|多长时间|多长|多高|多久|"
                 r"哪[两几二三四五]?[位个家所项种类条座名]|几|什么|甚么|哪些|哪一个|哪一|哪个|哪家|哪所|哪位|哪项|哪种|哪类|哪条|哪座|"
                 r"哪里|哪儿|哪|谁|何人|何种|何处|何地|为何|为什么|为甚么|如何|怎样|怎么")
# Questions with no wh-word that end on the copula: "…成立的目的是?", "…称之为?"
_OPEN_END = re.compile(r"(?:是|为|叫|叫做|称为|称之为|名为|在于)$")
_DATE_Q = re.compile(r"什么时候|何时|哪一?年|哪一?天|几月|几号|日期|[西公]元几年|民国几年|几几年|"
                     r"(?<!多长)(?<!多少)时间$|when|what year|which year|what date", re.I)  # 多长时间: a duration
_NUM_Q = re.compile(r"多少|(?<!哪)几|多大|多长|多高|多久|比例|比重|百分之|how (many|much|long|large|big)|"
                    r"what percentage|what (?:\w+ ){0,6}(?:value|amount|capacity|number|total|rate|price|cost)\b|"
                    r"reach", re.I)
# A question with no wh-word that names a quantity ("2022年特斯拉交付量") asks for a number.
_QTY_END = re.compile(r"(?:量|人数|数量|总数|次数|票房|营收|收入|金额|总额|产值|规模|增速|增长率|价格|售价|gdp)$")
# The unit an amount must carry (single-answer number questions): a rate needs a % ("增长率" -> "6.4%"), a head
# count a unit of people ("人数" -> "152万"); an amount of things or money is no percentage ("销量" -> not "34%"),
# money has a currency or magnitude ("营收" -> not "1"), and only a duration question is answered by a span of
# time or an ordinal ("收益" -> not "7天", "多少支队伍" -> not "第九届").
_RATE_Q = re.compile(r"增长率|增速|增幅|涨幅|降幅|比例|比重|占比|百分之|百分比|percentage|\brate\b", re.I)
_RATE_A = re.compile(r"%|％|百分点|百分之|成|倍|‰")
_PEOPLE_Q = re.compile(r"人数|人次|多少人|几人|多少名|多少位")
_PEOPLE_A = re.compile(r"人|名|位|万|亿|\d{3,}")
_RATE_WORD = re.compile(r"增长|增速|增幅|下降|涨|降|率|比例|比重|占比|百分|percent|rate|growth", re.I)
_AMOUNT_Q = re.compile(r"销量|产量|交付量|吞吐量|出口量|进口量|保有量|发送量|人数|人次|票房|营收|收入|利润|金额|总额|"
                       r"产值|规模|价格|售价|总量|数量|多少钱|多少元|多少美元|多少辆|多少人")
_PERCENT = re.compile(r"^[^%％]*\d(?:\.\d+)?\s*[%％]$|百分点$")
_MONEY_A = re.compile(r"元|美元|欧元|英镑|日元|港元|港币|万|亿|千|\d{3,}")
_OTHER_UNIT = re.compile(rf"(?:{'|'.join(u for u in UNITS if not u.endswith('元') and u not in '万亿千百余多')})$")
_DURATION_Q = re.compile(r"多久|多长时间|几年|几个月|几天|多少年|多少天|多少个月|多少小时|几小时|多少届|几届|第几|"
                         r"哪一?届|年龄|多大|岁|how long|\bage\b", re.I)
_TIME_AMOUNT = re.compile(r"^第|(?:个月|周年|小时|分钟|年|月|天|日|周|秒|届|期)$")
_PERSON_Q = re.compile(r"谁|哪[两几二三四五]?位|什么人|何人|\bwho\b", re.I)
# Wh-words that stand for a place or thing on their own: what follows them is no head noun ("在哪里[下线]").
_PRONOUN_WH = re.compile(r"哪里|哪儿|何处|何地|谁|何人|如何|怎样|怎么|为何|为什么|为甚么|何时|什么时候")
# The head nouns of questions about a person's post: the post is written before the name ("常务副主席黄志强").
_POST = ("职务", "职位", "职称", "身份", "头衔", "官职")
_TITLE = re.compile(r"(?:主任|主席|书记|厅长|局长|处长|科长|经理|院长|部长|教授|董事长|总监|委员|常委|市长|省长|"
                    r"县长|旗长|盟长|校长|所长|主编|研究员|工程师|负责人|总裁|秘书长|会长|理事长|总经理|总工程师|首席科学家)")
_MULTI_Q = re.compile(r"分别|各(?:是|有|为|达)|以及|、.*多少|多少.*多少|多少[^，,？?]{1,12}[和与及、]")
_MONEY_Q = re.compile(r"投资|资金|经费|金额|产值|收入|营收|收益|利润|票房|合同|奖金|补贴|资助|罚|售价|价格|成本|"
                      r"融资|估值|多少钱|元|investment|fund|value|worth|cost|contract|yuan|money|budget|price|"
                      r"revenue", re.I)
_EN_UNITS = [(re.compile(r"\bton", re.I), "吨"), (re.compile(r"\bmonth", re.I), "月"), (re.compile(r"percent|%"), "%"),
             (re.compile(r"\bkilogram|\bkg\b", re.I), "公斤"), (re.compile(r"\bmu\b", re.I), "亩")]
_COUNT_UNITS = {"个", "项", "家", "名", "人", "位", "份", "条", "所", "座", "台", "套", "件", "次", "篇", "种", "批"}
_FILLER = "的了是为在有与和及"
_EDGE = "，,。；;：:、“”\"'（）()《》 "


@dataclass
class ShortAnswer:
    text: str
    hit: Hit
    sentence: Sentence
    kind: str  # number, date, person, span
    score: float


@dataclass
class _Question:
    text: str  # normalised, no trailing punctuation
    kind: str  # number, date, person, open
    units: list[str]  # units the question asks for, in order ("多少个…多少项" -> [个, 项])
    money: bool
    slots: int  # answers asked for (multi-fact questions: 2)
    left: str  # the question left of its wh-word, trailing aspect particle dropped ("打造了" -> "打造")
    bare: str  # ``left`` without a trailing light verb ("亩产达到" -> "亩产")
    right: str  # right of it, a leading function word dropped ("的高新技术企业" -> "高新技术企业")
    head: int  # length of the wh-phrase's head noun starting ``right`` ("哪个[实验室]"), 0 if none
    asked_numbers: set[str]


@lru_cache(maxsize=4096)
def analyse(query: str) -> _Question:
    q = normalize(query).strip().rstrip("?？。.!！ ")
    kind = ("date" if _DATE_Q.search(q) else "number" if _NUM_Q.search(q) or (_QTY_END.search(q) and not WH.search(q))
            else "person" if _PERSON_Q.search(q) else "open")
    units = [m.group(1) for m in re.finditer(rf"(?:多少|几)({_UNIT_RE})", q)]
    if not has_cjk(q):
        units += [u for rx, u in _EN_UNITS if rx.search(q)]
    m = WH.search(q) if has_cjk(q) else None
    left, right = (q[: m.start()], q[m.end():]) if m else (q, "") if _OPEN_END.search(q) else ("", "")
    slots = 2 if _MULTI_Q.search(q) or len(units) > 1 or re.search(r"哪[两几二三四五]|哪些", q) else 1
    stripped = right.lstrip(_FILLER) if right[:1] in _FILLER and len(right) > 1 else right
    head = _head_noun(right) if stripped == right and not (m and _PRONOUN_WH.fullmatch(m.group())) else 0
    left = left.rstrip("了着过") or left
    # "亩产[达到]多少": passages often drop the light verb; the anchor is tried with and without it
    bare = re.sub(r"(?<=..)(?:达到|达|约为|约|共有|共|为|是|有|担任|现任|出任|成为)$", "", left)
    return _Question(q, kind, units, bool(_MONEY_Q.search(q)), slots, left, bare, stripped,
                     head, set(re.findall(r"\d+(?:\.\d+)?", q)))


def _align(q: _Question, s: str) -> tuple[int, int, int, bool] | None:
    """The gap between the question's left context (a suffix of it) and right context (a prefix of it, after
    up to 4 skipped chars: the wh-phrase's own noun) in ``s``: (start, end, anchor chars matched, whether the
    end is the right context rather than the clause end). Fewer than 2 anchor chars is no alignment.
    When the right context matched from its first char, its first word is the wh-phrase's head noun
    ("哪个[实验室]") and belongs to the answer ("大青山实验室")."""
    if not q.left and not q.right:
        return None
    best: tuple[int, int, int, bool] | None = None
    left, right, head = q.left, q.right, q.head
    lefts = [(k, m.end()) for k in range(min(len(left), 12), 0, -1)
             for m in re.finditer(re.escape(left[-k:]), s)]
    if q.bare != left and not any(k >= 2 for k, _ in lefts):
        lefts += [(k, m.end()) for k in range(min(len(q.bare), 12), 0, -1)
                  for m in re.finditer(re.escape(q.bare[-k:]), s)]
    lefts = lefts or [(0, 0)]
    for kl, lend in lefts:
        if kl == 1 and s[lend - 1] not in "以与和在向由从对给将把被为":
            continue  # one stray character is no anchor, bar the prepositions that frame an answer
        stop = _clause_end(s, lend)
        cand = (lend, stop, kl, False) if kl >= 2 else None
        for skip in range(0, min(5, len(right))):
            found = None
            for kr in range(min(len(right) - skip, 12), 0, -1):
                i = s.find(right[skip: skip + kr], lend)
                if i >= 0 and (kr >= 2 or right[skip] in "为是在于"):
                    found = (i, kr)
                    break
            if found:
                i, kr = found
                if i <= stop:
                    end = i + head if skip == 0 and head and kr >= head else i
                    # no left context: the gap starts at the clause that holds the right context
                    start = lend if kl else max(s.rfind(p, 0, i) for p in ",;。!?，；！？") + 1
                    cand = (start, end, kl + kr, True)
                break
        if cand and cand[2] >= 2 and 0 < cand[1] - cand[0] <= 40 and (best is None or cand[2] > best[2]):
            best = cand
    return best


_COPULA = re.compile(r"(?:是|为|位于|在|称为|称作|叫做|叫|名为|被称为|属于|有)")


def _after_terms(q: _Question, s: str, terms: Sequence[str]) -> tuple[int, int] | None:
    """Open question, no alignment: in the clause holding most of the question's words, the answer is what
    follows the last of them (wh-word last: "谢尔吉耶夫镇[位于]莫斯科东北偏北71公里") or precedes the first
    (wh-word first: "…为国务院等重要机关的办公处")."""
    if not terms:
        return None
    clauses = [m.span() for m in re.finditer(r"[^,;。!?，；！？]+", s)]
    best, n = None, 0
    for a, b in clauses:
        k = sum(1 for t in terms if t in s[a:b])
        if k > n:
            best, n = (a, b), k
    if best is None or n < 1:
        return None
    a, b = best
    spans = [(m.start(), m.end()) for t in terms for m in re.finditer(re.escape(t), s[a:b])]
    if q.left or not q.right:  # wh-word at the end: what follows the last question word
        end = max(e for _, e in spans) + a
        m = _COPULA.match(s, end)
        start = m.end() if m else end
        return (start, b) if 0 < b - start <= 30 else None
    start = min(x for x, _ in spans) + a
    return (a, start) if 0 < start - a <= 30 else None


def _uncovered(s: str, terms: Sequence[str]) -> tuple[int, int] | None:
    """Open question whose words come in another order ("A与[哪个机构]联合研发B" / "A联合[X],研发出B"): in the
    clause holding most of the question's words, the longest run of text between them that is none of them."""
    covered = [False] * len(s)
    for t in terms:
        for m in re.finditer(re.escape(t), s):
            covered[m.start():m.end()] = [True] * len(t)
    best: tuple[int, int] | None = None
    key: tuple[int, bool, int] = (0, False, 0)
    for c in re.finditer(r"[^,;。!?，；！？]+", s):
        a, b = c.span()
        n = sum(covered[a:b])
        if n < 4:
            continue
        i = a
        while i < b:
            if covered[i]:
                i += 1
                continue
            j = i
            while j < b and not covered[j]:
                j += 1
            run = s[i:j].strip(_FILLER + _EDGE)
            inner = i > a and j < b  # framed by question words on both sides
            if 2 <= len(run) <= 25 and re.search(r"[\u3400-\u9fff0-9a-z]", run) and (n, inner, len(run)) > key:
                best, key = (i, j), (n, inner, len(run))
            i = j
    return best


def _head_noun(right: str) -> int:
    """Length of the first word of ``right`` when it is a noun (jieba POS n*), else 0."""
    if not right:
        return 0
    import jieba.posseg as pseg

    w = next(iter(pseg.cut(right[:8])), None)
    return len(w.word) if w is not None and w.flag.startswith("n") else 0


_CLAUSE_STOP = re.compile(r"[，,。；;！!？?]")


def _clause_end(s: str, i: int) -> int:
    m = _CLAUSE_STOP.search(s, i)
    return m.start() if m else len(s)


def _typed(q: _Question, s: str) -> list[tuple[int, int]]:
    if q.kind == "date":
        return [m.span() for m in DATE.finditer(s)]
    if q.kind == "number":
        out = []
        ordinal = "第几" in q.text  # "排第几": the answer is an ordinal
        for m in NUMBER.finditer(s):
            t = m.group()
            if ordinal and not t.startswith("第"):
                continue
            if DATE.fullmatch(t) or (re.fullmatch(r"\d{4}年", t) and q.units != ["年"]):
                continue  # a year is not an amount
            if not re.search(r"\d|[" + _CN_NUM + "]{2,}", t) and not re.search(_UNIT_RE, t):
                continue
            out.append(m.span())
        return out
    if q.kind == "person":
        return _names(s)
    return []


def _names(s: str) -> list[tuple[int, int]]:
    import jieba.posseg as pseg

    out, i = [], 0
    for w in pseg.cut(s):
        if w.flag == "nr" and len(w.word) >= 2:
            out.append((i, i + len(w.word)))
        i += len(w.word)
    return out


def _unit_score(q: _Question, t: str) -> float:
    sc = 0.0
    if q.units:
        fam = {_SAME_UNIT.get(u, u) for u in q.units}
        same = any(u in t for u in q.units) or any(_SAME_UNIT[u] in fam for u in _SAME_UNIT if u in t)
        sc += 1.0 if same else -0.5
    if q.money:
        sc += 0.8 if "元" in t else -0.8
    elif not has_cjk(q.text) and not q.units:
        sc += 0.3 if any(u in t for u in _COUNT_UNITS) else 0.0
    if not re.search(r"\d|[" + _CN_NUM + "]", t):
        sc -= 1.0
    if re.fullmatch(r"\d+(?:\.\d+)?", t):
        sc -= 0.3  # a bare number: most answers carry a unit
    if re.match(r"[一两][^" + _CN_NUM + "]", t) or t in ("一", "两"):
        sc -= 1.0  # "一项", "一个": an article, rarely the amount asked for
    return sc


def _terms_near(terms: Sequence[str], s: str, a: int, b: int) -> float:
    """How close the nearest of the question's words stands to the span [a, b): 1 / (1 + distance/5)."""
    best = 0.0
    for t in terms:
        for m in re.finditer(re.escape(t), s):
            i = m.start()
            d = a - (i + len(t)) if i + len(t) <= a else i - b if i >= b else 0
            best = max(best, 1.0 / (1.0 + max(d, 0) / 5))
    return best


def _clean(t: str, head: str = "") -> str:
    t = t.strip(_EDGE)
    for f in ("达到", "达", "为", "是", "共", "约", "了", "的"):
        if t.startswith(f) and len(t) > len(f) + 1:
            t = t[len(f):]
    for o, c in ("()", "（）", "《》", "“”"):  # an unclosed bracket opens an aside: "PET(常用食品饮料包装材料"
        i = t.find(o)
        if i > 0 and c not in t[i:]:
            t = t[:i]
    if head and t.endswith(head):  # "简耘科技、神州共享、亚信科技[3家科技型]": the count and the noun asked for
        t = re.sub(rf"(?:等|共)?(?:\d+|[{_CN_NUM}]+)(?:{_UNIT_RE}){re.escape(head)}$", "", t) or t
    if head and t.endswith(head) and "的" in t[:-len(head)]:
        t = t[t.rfind("的", 0, len(t) - len(head)) + 1:]  # "排名第二的[康奈尔大学]": the noun phrase asked for
    t = t.strip(_EDGE)
    return t if re.search(r"[0-9a-zA-Z\u3400-\u9fff]", t) else ""


def _post(q: _Question, s: str) -> tuple[int, int] | None:
    """"张三担任什么职务": Chinese news writes the post right before the name ("自治区常务副主席黄志强"), so the
    answer is the 、-separated title ending in a post word and followed by a name the question holds."""
    if not q.right.startswith(_POST):
        return None
    for m in _TITLE.finditer(s):
        e = m.end()
        if any(len(s) >= e + k and s[e:e + k] in q.left for k in (3, 2, 4)):
            start = max(s.rfind(p, 0, e) for p in "，,。；;：:、（(") + 1
            if 1 < e - start <= 25:
                return start, e
    return None


def _sentences(ranked: Sequence[tuple[float, Hit, Sentence, float]], n: int,
               neighbours: bool) -> list[tuple[float, Hit, Sentence]]:
    """The top ``n`` sentences; for typed questions also each one's neighbours in its chunk, one rank lower
    (news writes "亩产715.3公斤！这是袁隆平院士团队…": the answer stands next to the matching sentence)."""
    out: list[tuple[float, Hit, Sentence]] = []
    seen: set[tuple[int, int]] = set()
    for rank, (_sc, hit, sent, _c) in enumerate(ranked[:n]):
        group: list[tuple[float, Sentence]] = [(rank, sent)]
        if neighbours:
            sents = hit.chunk.sentences
            i = next((j for j, x in enumerate(sents) if x.start == sent.start), -1)
            group += [(rank + 0.5, sents[j]) for j in (i - 1, i + 1) if i >= 0 and 0 <= j < len(sents)]
        for r, x in group:
            if (hit.chunk.chunk_id, x.start) not in seen:
                seen.add((hit.chunk.chunk_id, x.start))
                out.append((r, hit, x))
    return out


def read(query: str, ranked: Sequence[tuple[float, Hit, Sentence, float]], terms: Sequence[str],
         clause_vectors: Callable[[list[str]], np.ndarray] | None = None, qvec: np.ndarray | None = None,
         sentences: int = 3) -> ShortAnswer | None:
    """The short answer to ``query`` from the ``ranked`` sentences (ExtractiveGenerator.score order)."""
    q = analyse(query)
    cjk = has_cjk(q.text)
    best: tuple[float, list[str], Hit, Sentence] | None = None
    for rank, hit, sent in _sentences(ranked, sentences, q.kind != "open"):
        raw = sent.text
        if not has_cjk(raw):
            continue  # the rules below read Chinese; an English sentence is cited whole instead
        s = normalize(raw)
        src = raw if len(raw) == len(s) else s  # spans are cut from the original text when lengths agree
        gap = _align(q, s) if cjk else None
        near = [t for t in terms if t in s]
        cands: list[tuple[float, int, int]] = []
        for a, b in _typed(q, s):
            t = s[a:b]
            if q.kind == "number" and set(re.findall(r"\d+(?:\.\d+)?", t)) & q.asked_numbers:
                continue  # the question's own number is not its answer
            if q.kind != "number" and t in q.text:
                continue
            sc = _unit_score(q, t) if q.kind == "number" else 0.0
            if gap:
                if a >= gap[0] - 2 and b <= gap[1] + 2:
                    sc += 1.0
                # the answer stands next to an anchor: the right one when it matched (modifiers precede their
                # head: "50%的科研机构、[57.4%]的高新技术企业"), else the left one ("亩产[715.3公斤]")
                edge = min(abs(b - gap[1]), abs(a - gap[1])) if gap[3] else abs(a - gap[0])
                sc += 1.2 / (1.0 + edge / 3)
            sc += 0.5 * _terms_near(near, s, a, b)
            cands.append((sc, a, b))
        post = _post(q, s) if cjk else None
        if post:
            cands.append((2.5, *post))
        if gap and _clean(s[gap[0]:gap[1]]) in q.text:
            gap = None  # the "gap" is the question's own words (its subject, met in another order)
        if not cands and not gap and q.kind == "open" and cjk:
            tail = _after_terms(q, s, near)
            if tail and _clean(s[tail[0]:tail[1]]) not in q.text:
                cands.append((0.5, *tail))
            else:
                run = _uncovered(s, near)
                if run:
                    cands.append((0.3, *run))
        if not cands and gap and (q.kind != "number" or re.search(r"\d|[" + _CN_NUM + "]", s[gap[0]:gap[1]])):
            cands.append((1.0 + 0.2 * gap[2], gap[0], gap[1]))
        if not cands:
            continue
        if not cjk and clause_vectors is not None and qvec is not None and len(cands) > 1:
            cands = _by_clause(s, cands, clause_vectors, qvec)
        cands.sort(key=lambda x: -x[0])
        picked = _pick_slots(q, s, cands)
        total = picked[0][0] - 1.5 * rank
        if best is None or total > best[0]:
            best = (total, [_clean(src[a:b], q.right[: q.head]) for _, a, b in picked], hit, sent)
    if best is None:
        return None
    score, texts, hit, sent = best
    text = "；".join(t for t in texts if t)
    if not text:
        return None
    return ShortAnswer(text, hit, sent, "span" if q.kind == "open" else q.kind, round(score, 3))


def fits_type(query: str, text: str) -> bool:
    """``text`` is of the kind ``query`` asks for: a date for a date question, an amount (a number that is
    not a bare year) for a number question, in a unit that fits what is counted (see ``_unit_fits``); any
    text otherwise."""
    q = analyse(query)
    t = normalize(text)
    if q.kind == "date":
        return bool(DATE.search(t))
    if q.kind == "number":
        amounts = [n for n in (m.group() for m in NUMBER.finditer(t))
                   if re.search(r"\d|[" + _CN_NUM + "]", n) and not re.fullmatch(r"(?:19|20)\d\d年?", n)]
        return bool(amounts) and (q.slots > 1 or _unit_fits(q, t.strip(), amounts))
    return True


def _unit_fits(q: _Question, t: str, amounts: list[str]) -> bool:
    if (_RATE_Q.search(q.text) and not _RATE_A.search(t)) or (_PEOPLE_Q.search(q.text) and not _PEOPLE_A.search(t)):
        return False
    if not _RATE_WORD.search(q.text) and ((_AMOUNT_Q.search(q.text) and _PERCENT.search(t))
                                          or (q.money and not any(_MONEY_A.search(n) and not _OTHER_UNIT.search(n)
                                                                  for n in amounts))):
        return False
    return bool(_DURATION_Q.search(q.text)) or not all(_TIME_AMOUNT.search(n) for n in amounts)


def _pick_slots(q: _Question, s: str, cands: list[tuple[float, int, int]]) -> list[tuple[float, int, int]]:
    if q.slots < 2 or q.kind not in ("number", "date", "person"):
        return cands[:1]
    if q.kind == "person":  # "哪两位院士": the names listed in the best one's clause
        a, b = cands[0][1], cands[0][2]
        lo, hi = max(s.rfind(p, 0, a) for p in "，,。；;") + 1, _clause_end(s, b)
        return sorted((c for c in cands if lo <= c[1] and c[2] <= hi), key=lambda c: c[1])[:5]
    out: list[tuple[float, int, int]] = []
    wanted: list[str | None] = list(q.units) or [None, None]  # each asked unit, else any two
    for u in wanted:
        for c in cands:
            if any(c[1] < o[2] and o[1] < c[2] for o in out):
                continue
            if u is None or u in s[c[1]: c[2]]:
                out.append(c)
                break
    out = out or cands[:1]
    return sorted(out, key=lambda c: c[1])[: max(2, len(q.units))]


def _by_clause(s: str, cands: list[tuple[float, int, int]], clause_vectors: Callable[[list[str]], np.ndarray],
               qvec: np.ndarray) -> list[tuple[float, int, int]]:
    """Cross-lingual: no shared words, so the clause nearest the question (by cosine) carries the answer."""
    bounds = [m.span() for m in re.finditer(r"[^，,；;。]+", s)]
    if len(bounds) < 2:
        return cands
    cos = (clause_vectors([s[a:b] for a, b in bounds]) @ qvec.reshape(-1)).tolist()
    out = []
    for sc, a, b in cands:
        c = next((cos[i] for i, (x, y) in enumerate(bounds) if x <= a < y), min(cos))
        out.append((sc + 5.0 * c, a, b))
    return out
