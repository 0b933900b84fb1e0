"""Text normalisation and Chinese-aware tokenisation for lexical matching (BM25, overlap scores).

Matching only: traditional -> simplified (OpenCC), NFKC (full-width -> half-width), lowercase; English
words are Snowball-stemmed for BM25 ("funding" and "funds" both match "fund").
Stored and displayed text is never changed.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache

import jieba

jieba.setLogLevel(logging.WARNING)

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?|[\u3400-\u9fff\uf900-\ufaff]+")
# Function words and question words that carry no topic: dropped from queries and documents.
STOPWORDS = frozenset(
    "的 了 和 与 及 或 在 是 为 有 对 从 以 于 将 等 也 都 而 被 把 这 那 其 之 个 中 上 下 "
    "吗 呢 吧 啊 么 什么 哪些 哪个 哪 多少 几 怎么 怎样 如何 是否 为什么 谁 何 请问 请 "
    "哪里 何时 多久 几个 一下 目前 已经 "
    "the a an of to in on for and or is are was were be by with what which who how many much "
    "does do did when where why it its this that these those as at from has have had not no but if "
    "than then so such into about can could will would should may might their there they them he she "
    "his her we our you your".split()
)
# Recorded in each index's manifest: an index whose BM25 was built by another tokenizer is re-tokenised.
TOKENIZER = "jieba-search+opencc-t2s+snowball-en"


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _t2s():  # type: ignore[no-untyped-def]
    import opencc

    return opencc.OpenCC("t2s")


def normalize(text: str) -> str:
    """NFKC + lowercase + traditional->simplified, same length-independent meaning for matching."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _t2s().convert(text) if _CJK.search(text) else text


def to_simplified(text: str) -> str:
    """OpenCC ``t2s`` alone (no NFKC, no lowercasing): what a model trained on simplified Chinese reads."""
    return _t2s().convert(text) if _CJK.search(text) else text  # type: ignore[no-any-return]


def simplified_aligned(text: str) -> str | None:
    """OpenCC ``t2s`` of ``text`` when it keeps every character at its own offset, else None.

    Plain ``t2s`` converts character by character (its phrase table maps a phrase to one of the same length), so
    an offset into the result is the same offset into ``text``: a span found in the simplified text is cut from the
    original. A conversion that changes the length cannot be mapped back: None, read the original."""
    out = to_simplified(text)
    return out if len(out) == len(text) else None


def is_traditional(text: str, simplified: str | None = None) -> bool:
    """More than 2% of the CJK characters change under ``t2s`` (simplified text holds a few variants it folds)."""
    simplified = to_simplified(text) if simplified is None else simplified
    cjk = len(_CJK.findall(text))
    changed = sum(a != b for a, b in zip(text, simplified))
    return cjk > 0 and changed > 0.02 * cjk


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def tokenize(text: str) -> list[str]:
    """jieba search-mode words (plus single CJK characters of unknown words) over normalised text."""
    out: list[str] = []
    for m in _WORD.finditer(normalize(text)):
        w = m.group()
        if not _CJK.match(w):
            if w not in STOPWORDS:
                out.append(_stemmer().stemWord(w) if w.isalpha() else w)
            continue
        for tok in jieba.cut_for_search(w, HMM=True):
            if tok not in STOPWORDS:
                out.append(tok)
    return out


def tokenize_many(texts: list[str]) -> list[list[str]]:
    return [tokenize(t) for t in texts]


def char_bigrams(text: str) -> set[str]:
    """Character bigrams of the normalised CJK/alnum text: a script-agnostic overlap unit."""
    t = "".join(m.group() for m in _WORD.finditer(normalize(text)))
    return {t[i : i + 2] for i in range(len(t) - 1)} if len(t) > 1 else {t} if t else set()
