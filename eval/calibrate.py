"""Fit the refusal thresholds (rag/answer/calibration.json) on the seed gold set.

For each question: best answer-sentence cosine and IDF-weighted query-term coverage of the top
passages. A grid search picks thresholds maximising balanced accuracy (answerable kept, refusals
right) separately for CJK queries and for cross-lingual (no CJK) ones. The file records the data
it was fitted on and the accuracies reached, so a reader can judge it.

``python -m eval.calibrate`` (uses the installed model; about a minute).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from eval.data import ROOT, load_seed_gold
from eval.run import make_pipeline
from rag.answer.extractive import CALIBRATION_FILE, Calibration
from rag.core.config import Settings
from rag.core.text import has_cjk
from rag.ingest.loaders import load_path


def features(p, items):  # type: ignore[no-untyped-def]
    g = p.generator
    out = []
    for it in items:
        hits, qvec = p.search(it.query, 5)
        best_cos, cov = g.features(it.query, qvec, hits)
        out.append((has_cjk(it.query), best_cos, cov, it.answerable))
    return out


def _balanced(pairs: list[tuple[bool, bool]]) -> tuple[float, float]:
    pos = [pred for pred, gold in pairs if gold]
    neg = [not pred for pred, gold in pairs if not gold]
    return (float(np.mean(pos)) if pos else 1.0, float(np.mean(neg)) if neg else 1.0)


def fit(feats: list[tuple[bool, float, float, bool]]) -> tuple[Calibration, dict]:
    cjk = [f for f in feats if f[0]]
    lat = [f for f in feats if not f[0]]
    best = (-1.0, 0.0, 0.0)
    for c in np.arange(0.80, 0.97, 0.005):
        for v in np.arange(0.3, 0.95, 0.01):
            a, r = _balanced([(fc >= c and fv >= v, gold) for _, fc, fv, gold in cjk])
            score = (a + r) / 2 - 0.001 * c  # ties: the lower (more permissive) threshold
            if score > best[0]:
                best = (score, float(c), float(v))
    best_x = (-1.0, 0.0)
    for c in np.arange(0.70, 0.95, 0.002):
        a, r = _balanced([(fc >= c, gold) for _, fc, _, gold in lat])
        if (a + r) / 2 - 0.001 * c > best_x[0]:
            best_x = ((a + r) / 2 - 0.001 * c, float(c))
    cal = Calibration(round(best[1], 3), round(best[2], 3), round(best_x[1], 3))
    ca, cr = _balanced([(fc >= cal.min_cos and fv >= cal.min_coverage, gold) for _, fc, fv, gold in cjk])
    la, lr = _balanced([(fc >= cal.min_cos_crosslingual, gold) for _, fc, _, gold in lat])
    report = {"cjk": {"n": len(cjk), "answerable_accuracy": ca, "refusal_accuracy": cr},
              "crosslingual": {"n": len(lat), "answerable_accuracy": la, "refusal_accuracy": lr}}
    return cal, report


def main() -> None:
    s = Settings()
    from embeddings.factory import create_embedder

    emb = create_embedder(s.embedder, s.models_dir, s.model_name, s.dtype, s.batch_size)
    docs, _ = load_path(ROOT / "seeds")
    with tempfile.TemporaryDirectory() as tmp:
        p = make_pipeline(s, emb, docs, Path(tmp))
        feats = features(p, load_seed_gold().items)
    cal, report = fit(feats)
    data = {**asdict(cal), "fitted_on": "eval/gold/seed_gold.jsonl", "model": emb.name, "fit": report}
    Path(CALIBRATION_FILE).write_text(json.dumps(data, indent=1))
    print(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
