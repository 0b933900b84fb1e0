"""Metrics as pure functions over one item; aggregate with ``mean``. Failures raise, never skip."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

from rag.core.text import normalize

_PUNCT = re.compile(r"[\s" + re.escape(string.punctuation) + r"，。！？；：、“”‘’（）《》【】「」『』…—·]+")


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Share of relevant ids in the top k (1.0/0.0 with one gold id: hit@k)."""
    if not relevant:
        raise ValueError("recall@k needs at least one relevant id")
    return len(set(ranked[:k]) & relevant) / len(relevant)


def hit_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return 1.0 if set(ranked[:k]) & relevant else 0.0


def mrr_at_k(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    for i, r in enumerate(ranked[:k], start=1):
        if r in relevant:
            return 1.0 / i
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    dcg = sum(1.0 / math.log2(i + 1) for i, r in enumerate(ranked[:k], start=1) if r in relevant)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(relevant), k) + 1))
    return dcg / ideal if ideal else 0.0


def norm_answer(text: str) -> str:
    """Whitespace, punctuation, full/half width and traditional/simplified folded away."""
    return _PUNCT.sub("", normalize(text))


def exact_match(pred: str, golds: Iterable[str]) -> float:
    p = norm_answer(pred)
    return 1.0 if any(p == norm_answer(g) for g in golds) else 0.0


def char_f1(pred: str, golds: Iterable[str]) -> float:
    """Character-level F1 (the CMRC2018 convention for Chinese), max over accepted answers."""
    p = list(norm_answer(pred))
    best = 0.0
    for g in golds:
        gl = list(norm_answer(g))
        common = sum((Counter(p) & Counter(gl)).values())
        if not p or not gl or not common:
            continue
        prec, rec = common / len(p), common / len(gl)
        best = max(best, 2 * prec * rec / (prec + rec))
    return best


def contains_all(pred: str, golds: Sequence[str]) -> float:
    """Share of required answer items found in the prediction (multi-fact questions need all)."""
    if not golds:
        raise ValueError("contains_all needs at least one answer")
    p = norm_answer(pred)
    return sum(1.0 for g in golds if norm_answer(g) in p) / len(golds)


def contains_any(pred: str, golds: Sequence[str]) -> float:
    p = norm_answer(pred)
    return 1.0 if any(norm_answer(g) in p for g in golds) else 0.0


def citation_scores(cited_texts: Sequence[str], evidence: Sequence[str]) -> tuple[float, float]:
    """(precision, recall): cited passages containing any evidence / evidence items covered."""
    if not cited_texts:
        return 0.0, 0.0
    cn = [norm_answer(t) for t in cited_texts]
    ev = [norm_answer(e) for e in evidence if e]
    good = sum(1 for t in cn if any(e in t for e in ev))
    covered = sum(1 for e in ev if any(e in t for t in cn))
    return good / len(cn), (covered / len(ev) if ev else 0.0)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    i = min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))
    return s[i]


def mean(values: Iterable[float]) -> float:
    v = list(values)
    return sum(v) / len(v) if v else float("nan")
