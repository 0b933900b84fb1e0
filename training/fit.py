"""Score the exported reader on the held-out split and fit its refusal thresholds (``training.export fit``)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from eval.metrics import char_f1, exact_match
from training import data

logger = logging.getLogger("training")


def _best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The cut maximising balanced accuracy of ``score > cut`` == label (the mean of the answered share of the
    answerable and the refused share of the rest: the split has far more answerable windows than a policy
    office's unanswerable questions would tolerate being answered)."""
    s = np.sort(np.unique(scores))
    cuts = np.concatenate([[s[0] - 1], (s[1:] + s[:-1]) / 2, [s[-1] + 1]])
    pos, neg = labels, ~labels
    acc = [0.5 * (float(np.mean(scores[pos] > c)) + float(np.mean(scores[neg] <= c))) for c in cuts]
    i = int(np.argmax(acc))
    return float(cuts[i]), acc[i]


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return float("nan")
    return float(np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :]))


def score(reader, dev: list[data.Example], save: Path | None = None) -> dict:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    reads = [reader.read(e.question, [e.context])[0] for e in dev]
    secs = time.perf_counter() - t0
    if save is not None:  # for offline checks of the span post-processing (rag/answer/span.py)
        with open(save, "w", encoding="utf-8") as f:
            for e, r in zip(dev, reads):
                f.write(json.dumps({"qid": e.qid, "lang": e.lang, "question": e.question, "gold": e.answer,
                                    "pred": r.text, "answer": r.answer, "relevance": r.relevance},
                                   ensure_ascii=False) + "\n")
    lab = np.array([e.start >= 0 for e in dev])
    ans = np.array([r.answer for r in reads])
    rel = np.array([r.relevance for r in reads])
    both = ans + rel
    cut, acc = _best_threshold(ans, lab)
    rcut, racc = _best_threshold(rel, lab)
    bcut, bacc = _best_threshold(both, lab)
    out: dict = {"examples": len(dev), "answerable": int(lab.sum()), "ms_per_example": round(1000 * secs / len(dev), 1),
                 "min_answer": round(cut, 4), "null_accuracy": round(acc, 4), "null_auc": round(_auc(ans, lab), 4),
                 "min_relevance": round(rcut, 4), "relevance_accuracy": round(racc, 4),
                 "relevance_auc": round(_auc(rel, lab), 4), "min_score": round(bcut, 4),
                 "score_accuracy": round(bacc, 4), "score_auc": round(_auc(both, lab), 4)}
    for lang in ("zh-Hans", "zh-Hant", "en", "all"):
        sel = [(e, r) for e, r in zip(dev, reads) if e.start >= 0 and (lang == "all" or e.lang == lang)]
        if sel:
            out[f"em_{lang}"] = round(float(np.mean([exact_match(r.text, [e.answer]) for e, r in sel])), 4)
            out[f"f1_{lang}"] = round(float(np.mean([char_f1(r.text, [e.answer]) for e, r in sel])), 4)
    return out


def fit(artifact: Path, dest: Path) -> dict:
    from rag.answer.model_reader import OnnxReader

    dev = data.build(split="dev")
    res = {}
    for int8 in (False, True):
        r = OnnxReader(dest, int8=int8)
        res["int8" if int8 else "fp32"] = score(r, dev, dest / f"heldout_{'int8' if int8 else 'fp32'}.jsonl")
        logger.info("%s: %s", "int8" if int8 else "fp32", res["int8" if int8 else "fp32"])
    use_int8 = res["int8"]["f1_all"] >= res["fp32"]["f1_all"] - 0.01
    chosen = res["int8" if use_int8 else "fp32"]
    cal = {"int8": use_int8, "min_answer": chosen["min_answer"], "min_relevance": chosen["min_relevance"],
           "min_score": chosen["min_score"]}
    (artifact / "calibration.json").write_text(json.dumps(cal, indent=1), encoding="utf-8")
    (artifact / "metrics.json").write_text(json.dumps({"heldout_split": res, "chosen": cal}, indent=1),
                                           encoding="utf-8")
    logger.info("calibration: %s", cal)
    return res
