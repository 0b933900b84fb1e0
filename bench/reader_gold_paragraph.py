"""The trained reader on gold paragraphs: does reading through OpenCC ``t2s`` help, would a span-length prior?

``python -m bench.reader_gold_paragraph --out F.json [--drcd N]`` (issue 22, DRCD dev). Sets:

- ``heldout_hans``: the held-out split of CMRC2018 train (``training.data.heldout``, never trained on), as given;
- ``heldout_hant``: the same questions converted with OpenCC ``s2twp`` (as the training data's traditional share
  was made; ``training.data._to_traditional``);
- ``drcd``: DRCD dev gold paragraphs (an evaluation set: reported only, nothing is chosen on it).

Each question's gold paragraph is read once per view (``orig``: as given; ``t2s``: ``OnnxReader.view``, the span cut
from the original), keeping every window's start/end logits, null score and relevance. The best span is then chosen
offline under a length prior, ``s_i + e_j - lam * (j - i)`` over tokens, for each ``--lams`` value (0 = as served).
Per set, view and lam: span F1 and EM over every question (the best span whatever its score), the answered share
at the fitted threshold (answer + relevance >= ``min_score``) and F1 counting a refusal as 0, and the mean span
length in characters against the gold's. A prior is chosen on ``heldout_hant`` alone.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from eval import metrics as M
from eval.data import load_drcd
from rag.answer.model_reader import MAX_ANSWER_TOKENS, OnnxReader
from training import data as D


def sets(n_drcd: int) -> dict[str, list[tuple[str, str, list[str]]]]:
    import opencc

    cmrc = D.load_squad(D.TRAIN_DIR / "cmrc2018_train" / "cmrc2018_train.filtered.json", "zh-Hans", "cmrc")
    held = [e for e in cmrc if D.heldout(e.qid)]
    conv = opencc.OpenCC("s2twp")
    hant = [t for t in (D._to_traditional(e, conv) for e in held) if t is not None]
    ds = load_drcd()
    ctx = {it.qid: ds.corpus[next(iter(ds.relevant[it.qid]))] for it in ds.items}
    items = random.Random(0).sample(ds.items, min(n_drcd, len(ds.items)))
    return {"heldout_hans": [(e.question, e.context, [e.answer]) for e in held],
            "heldout_hant": [(e.question, e.context, [e.answer]) for e in hant],
            "drcd": [(it.query, ctx[it.qid], it.answers) for it in items]}


def logits(r: OnnxReader, q: str, p: str) -> list[tuple[np.ndarray, np.ndarray, float, float, list]]:
    ids, meta = r._windows(*r.view(q, [p]))
    start, end, rel = r._run(ids)
    out = []
    for w, (_, c0, offs) in enumerate(meta):
        if offs:
            out.append((start[w, c0:c0 + len(offs)], end[w, c0:c0 + len(offs)], float(start[w, 0] + end[w, 0]),
                        float(rel[w]), offs))
    return out


def best(p: str, wins: list, lam: float) -> tuple[str, float]:
    """The served choice (``OnnxReader.read``) with ``lam`` per token of span length subtracted."""
    top: tuple[float, str, float] | None = None
    rel = max((w[3] for w in wins), default=-1e9)
    for s, e, null, _, offs in wins:
        n = len(offs)
        idx = np.arange(n)
        width = idx[None, :] - idx[:, None]
        scores = s[:, None] + e[None, :]
        band = (width >= 0) & (width < MAX_ANSWER_TOKENS)
        pen = np.where(band, scores - lam * width, -np.inf)
        i, j = np.unravel_index(int(np.argmax(pen)), pen.shape)
        raw = float(scores[i, j]) - null
        if top is None or float(pen[i, j]) - null > top[0]:
            top = (float(pen[i, j]) - null, p[offs[int(i)][0]:offs[int(j)][1]].strip(), raw)
    return ("", -1e9) if top is None else (top[1], top[2] + rel)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=".cache/models/reader-e5-small")
    ap.add_argument("--drcd", type=int, default=300)
    ap.add_argument("--lams", nargs="+", type=float, default=[0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0])
    ap.add_argument("--out", default="/tmp/gold_paragraph.json")
    args = ap.parse_args()
    r = OnnxReader(Path(args.model), int8=True)
    cal = r.calibration.min_score
    assert cal is not None
    res: dict = {}
    for name, items in sets(args.drcd).items():
        for view in ("orig", "t2s"):
            r.t2s = "always" if view == "t2s" else "off"
            reads = [logits(r, q, p) for q, p, _ in items]
            for lam in args.lams:
                f1, em, ok, f1t, ln, gl = [], [], [], [], [], []
                for (_, p, gold), wins in zip(items, reads):
                    text, score = best(p, wins, lam)
                    f = M.char_f1(text, gold)
                    f1.append(f)
                    em.append(float(text in gold))
                    ok.append(score >= cal)
                    f1t.append(f if score >= cal else 0.0)
                    ln.append(len(text))
                    gl.append(min(len(g) for g in gold))
                st = {"n": len(items), "f1": np.mean(f1), "em": np.mean(em), "answered": np.mean(ok),
                      "f1_at_threshold": np.mean(f1t), "span_chars": np.mean(ln), "gold_chars": np.mean(gl)}
                res.setdefault(name, {}).setdefault(view, {})[str(lam)] = {k: round(float(v), 4) for k, v in st.items()}
                print(name, view, f"lam {lam}", res[name][view][str(lam)], flush=True)
    Path(args.out).write_text(json.dumps(res, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
