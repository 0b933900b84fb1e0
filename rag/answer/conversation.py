"""Follow-up questions made standalone before retrieval (issue 16): pure logic, no index, no HTTP.

``resolve(question, history)`` returns the query to search and answer. Rules first, no LLM needed (``rewrite``:
``followup_zh`` for Chinese, ``followup_en`` for English, both over ``followup_phrases``): a pronoun is replaced
by its antecedent, an elliptical follow-up re-asks the previous question with one slot replaced, a short question
with no subject of its own is asked of the previous subject, and a question that states its own subject (a topic
switch) is left alone.

A follow-up also carries the previous turn's cited documents (``Resolution.doc_ids``); ``prefer_documents``
moves their hits up a little. With ``condense`` (a callable sending chat messages to an LLM) the follow-up is
rewritten by a condense-question prompt instead, and that rewrite is used only when it keeps the new
question's own terms and looks like one question; on any error, timeout or failed check the rule result
stands (with a warning).

May import: ``rag.core`` and ``rag.answer.followup_*``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rag.answer.followup_en import en
from rag.answer.followup_phrases import DEMONSTRATIVE, PERSON_PRON, THING_PRON, WH, Turn, toks, topic
from rag.answer.followup_zh import zh
from rag.core.text import has_cjk, normalize, tokenize
from rag.core.types import Hit

logger = logging.getLogger(__name__)

Condense = Callable[[list[dict[str, Any]]], str]


@dataclass
class Resolution:
    question: str  # as asked
    query: str  # what is searched and answered
    method: str = "none"  # none | rules | llm
    kind: str = ""  # pronoun | ellipsis | measure | "" (self-contained or no history)
    doc_ids: list[str] = field(default_factory=list)  # the previous turn's cited documents (follow-ups only)
    warnings: list[str] = field(default_factory=list)
    previous_short: str = ""  # the previous turn's short answer (follow-ups only)

    @property
    def rewritten(self) -> bool:
        return self.query != self.question


# -- the entry point -------------------------------------------------------------------------------------------
def rewrite(question: str, prev: Turn) -> tuple[str, str] | None:
    """(standalone query, kind) for ``question`` after ``prev`` by the rules of its script, or None to leave it
    as asked."""
    return zh(question, prev) if has_cjk(question) else en(question, prev)


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
        got = rewrite(q, prev)
    except Exception:  # noqa: BLE001 - a rule that trips leaves the question as asked
        logger.exception("follow-up rules failed on %r", q)
        got = None
    if got is None:
        return Resolution(question, q)
    query, kind = got
    query = re.sub(r"\s+", " ", query).strip()
    if not query or query == q:
        return Resolution(question, q)
    return Resolution(question, query, "rules", kind, list(dict.fromkeys(prev.doc_ids)),
                      previous_short=prev.short_answer)


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
    return Resolution(question, text, "llm", res.kind or "llm", doc_ids, res.warnings,
                      res.previous_short or history[-1].short_answer)


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
            if toks(clause)[0].flag[:1] in ("v", "d", "p"):  # no subject of its own: the question's topic,
                about = topic(question)  # when the passage is about it
                if normalize(about) not in normalize(text):
                    continue
                q = about + q
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
