"""Training examples for the reader/cross-encoder, from ``../shared/data/train`` only.

Sources (licenses in the model card): CMRC2018 train (filtered against the evaluation sets, zh-Hans; a share
converted to zh-Hant with OpenCC ``s2twp``) and PolicyQA dev+test (English). Every evaluation set (CMRC2018
dev/trial, DRCD, RGB, DuReader, CJRC) stays out. A question is in the held-out split by a hash of its id, so the
split is the same on every run.

Each example is (question, passage, answer_start or -1). Unanswerable examples are built from the same question
and a passage that does not hold its answer: a BM25 hard negative from the same corpus (the best-scoring other
paragraph) or the gold paragraph with the answer sentence cut out (a neighbouring fact on the same subject).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

TRAIN_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "train"
_SENT_END = re.compile(r"(?<=[。！？!?；;])|(?<=\. )")


@dataclass
class Example:
    qid: str
    question: str
    context: str
    answer: str  # "" when the passage does not answer
    start: int  # char offset of ``answer`` in ``context``; -1 when unanswerable
    lang: str  # zh-Hans | zh-Hant | en
    source: str


def heldout(qid: str, share: float = 0.06) -> bool:
    """Deterministic dev split: about ``share`` of the questions, by the hash of their id."""
    return int(hashlib.sha256(qid.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


def _fix_start(context: str, text: str, start: int) -> int:
    """The answer's real offset: the given one when it matches, else the occurrence nearest to it."""
    if start >= 0 and context[start:start + len(text)] == text:
        return start
    found = [m.start() for m in re.finditer(re.escape(text), context)]
    return min(found, key=lambda i: abs(i - start)) if found else -1


def load_squad(path: Path, lang: str, source: str) -> list[Example]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    out: list[Example] = []
    for art in data:
        for p in art["paragraphs"]:
            ctx = p["context"]
            for qa in p["qas"]:
                if not qa.get("answers"):
                    continue
                a = qa["answers"][0]
                start = _fix_start(ctx, a["text"], int(a.get("answer_start", -1)))
                if start < 0 or not a["text"].strip():
                    continue
                out.append(Example(str(qa["id"]), qa["question"], ctx, a["text"], start, lang, source))
    return out


def _to_traditional(ex: Example, conv) -> Example | None:  # type: ignore[no-untyped-def]
    """s2twp keeps lengths for almost every character; examples whose answer moved are dropped."""
    ctx, ans, q = conv.convert(ex.context), conv.convert(ex.answer), conv.convert(ex.question)
    start = _fix_start(ctx, ans, ex.start)
    if start < 0:
        return None
    return Example(ex.qid + "-hant", q, ctx, ans, start, "zh-Hant", ex.source + "+opencc-s2twp")


def _cut_answer_sentence(ex: Example) -> str:
    """The gold paragraph without the sentence that holds the answer (nor any other copy of the answer)."""
    parts = [s for s in _SENT_END.split(ex.context) if s]
    pos, keep = 0, []
    for s in parts:
        if not (pos <= ex.start < pos + len(s)):
            keep.append(s)
        pos += len(s)
    text = "".join(keep)
    return "" if ex.answer in text or len(text) < 40 else text


def _bm25_negatives(examples: list[Example], lang: str) -> dict[str, str]:
    """Best BM25 paragraph that is not the question's own and does not contain its answer."""
    import bm25s
    import jieba

    jieba.setLogLevel(logging.WARNING)
    contexts = sorted({e.context for e in examples})
    tok = (lambda t: [w for w in jieba.lcut(t) if w.strip()]) if lang != "en" else (lambda t: t.lower().split())
    retriever = bm25s.BM25()
    retriever.index([tok(c) for c in contexts], show_progress=False)
    out: dict[str, str] = {}
    qs = [tok(e.question) for e in examples]
    docs, _ = retriever.retrieve(qs, k=min(5, len(contexts)), show_progress=False, n_threads=1)
    for e, row in zip(examples, docs):
        for i in row:
            c = contexts[int(i)]
            if c != e.context and e.answer not in c:
                out[e.qid] = c
                break
    return out


def _concise_mix(cmrc: list[Example], max_chars: int, share: float, n: int, rng: random.Random) -> list[Example]:
    """``n`` questions (fewer if the pool runs out), ``share`` of them with an answer of at most ``max_chars``."""
    short = [e for e in cmrc if len(e.answer) <= max_chars]
    long = [e for e in cmrc if len(e.answer) > max_chars]
    n_short = min(len(short), round(n * share))
    out = short[:n_short] + long[: n - n_short]
    rng.shuffle(out)
    return out


def build(n_hans: int = 3600, n_hant: int = 1100, n_en: int = 800, neg_share: float = 0.22, seed: int = 0,
          split: str = "train", train_dir: Path = TRAIN_DIR, max_answer_chars: int = 0,
          concise_share: float = 1.0) -> list[Example]:
    """A shuffled mix of answerable and unanswerable examples for ``split`` (train | dev).

    ``max_answer_chars`` (training only; 0 = no limit) keeps the Chinese questions whose gold answer is at most that
    long: the service's short answer is a concise span (the cited sentence carries the explanation), while CMRC2018
    train's gold answers run to whole clauses (mean 19 characters, median 12). ``concise_share`` below 1 mixes: that
    share of the Chinese questions is concise, the rest are drawn from the longer answers (about 0.5 is CMRC2018
    train's own mix)."""
    import opencc

    rng = random.Random(seed)
    cmrc = load_squad(train_dir / "cmrc2018_train" / "cmrc2018_train.filtered.json", "zh-Hans", "cmrc2018-train")
    policy = [e for f in ("dev.json", "test.json")
              for e in load_squad(train_dir / "policyqa_en" / f, "en", "policyqa")]
    want_dev = split == "dev"
    cmrc = [e for e in cmrc if heldout(e.qid) == want_dev]
    if max_answer_chars and not want_dev and concise_share >= 1.0:
        cmrc = [e for e in cmrc if len(e.answer) <= max_answer_chars]
    policy = [e for e in policy if heldout(e.qid) == want_dev]
    rng.shuffle(cmrc)
    if max_answer_chars and not want_dev and concise_share < 1.0:
        cmrc = _concise_mix(cmrc, max_answer_chars, concise_share, n_hans + n_hant, rng)
    rng.shuffle(policy)
    if want_dev:
        n_hans, n_hant, n_en = min(n_hans, 400), min(n_hant, 150), min(n_en, 150)
    hans, hant_src, en = cmrc[:n_hans], cmrc[n_hans:n_hans + n_hant], policy[:n_en]
    conv = opencc.OpenCC("s2twp")
    hant = [t for t in (_to_traditional(e, conv) for e in hant_src) if t is not None]
    pos = hans + hant + en
    neg_zh = _bm25_negatives(cmrc[:n_hans + n_hant], "zh")
    neg_en = _bm25_negatives(policy[: max(n_en, 1)], "en")
    negs: list[Example] = []
    for e in pos:
        if rng.random() >= neg_share:
            continue
        base_id = e.qid.removesuffix("-hant")
        if rng.random() < 0.5:
            ctx = _cut_answer_sentence(e)
            kind = "gold-minus-answer"
        else:
            ctx = (neg_en if e.lang == "en" else neg_zh).get(base_id, "")
            if ctx and e.lang == "zh-Hant":
                ctx = conv.convert(ctx)
            kind = "bm25"
        if ctx:
            negs.append(Example(e.qid + "-neg", e.question, ctx, "", -1, e.lang, e.source + "/" + kind))
    out = pos + negs
    rng.shuffle(out)
    logger.info("%s split: %d answerable (%d hans, %d hant, %d en), %d unanswerable", split, len(pos),
                len(hans), len(hant), len(en), len(negs))
    return out
