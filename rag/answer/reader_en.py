"""Short answers from English sentences, for English questions: the number, date or name the question asks
for, taken next to the question's own words. The Chinese rules live in rag/answer/reader.py; open questions
("what does the policy aim at") get no span here, only their cited sentence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.answer.reader import ShortAnswer, analyse
from rag.core.text import tokenize
from rag.core.types import Hit, Sentence

_SMALL = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
          "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred dozen").split()
_SCALE = r"(?:hundred|thousand|million|billion|trillion)"
_UNIT = r"(?:%|percent|per cent|yuan|RMB|dollars?|euros?|pounds?|yen|km|kilometres?|kilometers?|metres?|meters?|" \
        r"tonnes?|tons?|hectares?|mu|square (?:kilo)?met(?:re|er)s?)"
_WORDNUM = r"(?:" + "|".join(_SMALL) + r")(?:[- ](?:" + "|".join(_SMALL) + r"))*"
NUMBER_EN = re.compile(
    rf"(?:[$¥€£]\s?)?(?:\d[\d,]*(?:\.\d+)?|\b{_WORDNUM}\b)(?:\s?{_SCALE})*(?:\s?{_UNIT}\b|%)?", re.I)
_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December|" \
         r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?"
DATE_EN = re.compile(
    rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?(?:\s+(?:to|-|until|through)\s+{_MONTH}?\s*\d{{1,2}}"
    rf"(?:,?\s+\d{{4}})?)?|\b\d{{1,2}}\s+{_MONTH}(?:\s+\d{{4}})?|\b{_MONTH}\s+\d{{4}}|\b(?:1[5-9]|20)\d\d\b")
_TITLE = r"(?:(?:Professor|Prof\.|Dr\.|Mr\.|Ms\.|Mrs\.|President|Premier|Minister|Director|Chairman|Secretary)\s+)?"
NAME_EN = re.compile(_TITLE + r"[A-Z][a-z]+(?:[-\s][A-Z][a-z]+){1,3}")


def _anchors(q_tokens: set[str], s: str) -> list[tuple[int, int]]:
    """Spans of the sentence's words that are the question's words (tokenised once per sentence)."""
    out = []
    for m in re.finditer(r"[A-Za-z0-9]+", s):
        toks = tokenize(m.group())
        if toks and toks[0] in q_tokens:
            out.append(m.span())
    return out


def _near(anchors: list[tuple[int, int]], s: str, a: int, b: int) -> float:
    """How close the span is to the question's words in the sentence: 1 / (1 + words between)."""
    gaps = [len(re.findall(r"\S+", s[e:a] if e <= a else s[b:st])) for st, e in anchors if not (st >= a and e <= b)]
    return 1.0 / (1.0 + min(gaps)) if gaps else 0.0


def read_english(query: str, ranked: Sequence[tuple[float, Hit, Sentence, float]],
                 sentences: int = 2) -> ShortAnswer | None:
    """The span of the kind ``query`` asks for, from the best ``sentences`` English sentences."""
    q = analyse(query)
    pattern = {"number": NUMBER_EN, "date": DATE_EN, "person": NAME_EN}.get(q.kind)
    if pattern is None:
        return None
    q_tokens = set(tokenize(query))
    q_numbers = set(re.findall(r"\d[\d,.]*", query))
    best: tuple[float, str, Hit, Sentence] | None = None
    for rank, (_sc, hit, sent, _c) in enumerate(ranked[:sentences]):
        s = sent.text
        anchors = _anchors(q_tokens, s)
        for m in pattern.finditer(s):
            text = m.group().strip(" ,.")
            if not text or set(re.findall(r"\d[\d,.]*", text)) & q_numbers:
                continue  # the question's own number or year is not its answer
            if q.kind == "person" and set(tokenize(text)) <= q_tokens:
                continue  # a name the question already holds
            if q.kind == "number" and re.fullmatch(r"(?:1[5-9]|20)\d\d", text):
                continue  # a bare year is no amount
            score = _near(anchors, s, m.start(), m.end()) - 0.25 * rank
            if best is None or score > best[0]:
                best = (score, text, hit, sent)
    if best is None or best[0] <= 0:
        return None
    return ShortAnswer(best[1], best[2], best[3], q.kind, round(best[0], 3))
