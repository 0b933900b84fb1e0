"""Exported readers on the same retrieved passages, their refusal threshold swept (issue 22, run C vs D).

``python -m bench.reader_threshold_sweep --readers C=/tmp/readerC D=.cache/models/reader-e5-small --out F.json``
(each dir written by ``python -m training.export install --artifact A --dest DIR``): seed gold, RGB noise and
rejection (100), CMRC2018 dev and DRCD dev (150 of a 300-question corpus), hybrid top 5, every reader's scored
spans kept; then short F1 / answered share / refusal per set at offsets -1.5..+2 from each fitted threshold.
A reader spec may add ``:passages=N`` (read the top N of the 5, default 5) and ``:int8`` (the int8 ONNX file),
e.g. ``C3q=/tmp/readerC:passages=3:int8``; the read time of each question is kept and printed (p50 / p95 ms).
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from embeddings.factory import create_embedder
from eval import metrics as M
from eval.data import ROOT, load_cmrc, load_drcd, load_rgb, load_seed_gold
from eval.run import make_pipeline, spread
from rag.answer.learned import _EDGE, ReaderGenerator, sentence_at
from rag.answer.model_reader import OnnxReader
from rag.core.config import Settings
from rag.core.types import Document
from rag.ingest.loaders import load_path

settings = Settings(reader="rules")
emb = create_embedder(settings.embedder, settings.models_dir, settings.model_name, settings.dtype, settings.batch_size)
ap = argparse.ArgumentParser()
ap.add_argument("--readers", nargs="+", required=True)
ap.add_argument("--out", default="/tmp/sweep_rows.json")
ap.add_argument("--sets", nargs="+", default=["seed", "rgb", "cmrc", "drcd"])
args = ap.parse_args()


def _reader(spec: str) -> ReaderGenerator:
    d, *opts = spec.split(":")
    kv = dict(o.split("=", 1) if "=" in o else (o, "1") for o in opts)
    return ReaderGenerator(OnnxReader(Path(d), int8=True if "int8" in kv else None),
                           passages=int(kv.get("passages", 5)))


readers = {n: _reader(d) for n, d in (x.split("=", 1) for x in args.readers)}
rows = []
def run(p, name, items, answerable):
    for it in items:
        hits, qvec = p.search(it.query, 5, "hybrid")
        for rn, g in readers.items():
            t = time.perf_counter()
            reads = g.read(it.query, hits)
            ms = (time.perf_counter() - t) * 1000
            reads.sort(key=lambda x: -(x[1].answer + x[1].relevance))
            cands = [(x[1].answer + x[1].relevance, x[1].text.strip(_EDGE) or x[1].text) for x in reads
                     if x[1].start >= 0 and x[1].text and sentence_at(x[2], x[1].start, x[1].end) is not None]
            rows.append({"set": name, "reader": rn, "qid": it.qid, "answerable": answerable and bool(it.answers),
                         "answers": it.answers, "cands": cands, "cal": g.min_score, "ms": ms})
with tempfile.TemporaryDirectory() as tmp:
    if "seed" in args.sets:
        seed_docs, _ = load_path(ROOT / "seeds")
        seed = load_seed_gold()
        p = make_pipeline(settings, emb, seed_docs, Path(tmp) / "seed")
        run(p, "seed", seed.items, True)
        print("seed done", flush=True)
    ds = load_rgb(100) if "rgb" in args.sets else None
    used, negs = set(), set()
    for it in ds.items if ds is not None else []:
        n = set(json.loads(it.tags["negatives"]))
        used |= ds.relevant[it.qid] | n
        negs |= n
    if ds is not None:
        p = make_pipeline(settings, emb, [Document(k, ds.corpus[k]) for k in sorted(used)], Path(tmp) / "rgb")
        run(p, "rgb_noise", ds.items, True)
        only_neg = [Document(k, ds.corpus[k]) for k in sorted(negs - set().union(*ds.relevant.values()))]
        p = make_pipeline(settings, emb, only_neg, Path(tmp) / "rgb_neg")
        run(p, "rgb_reject", ds.items, False)
        print("rgb done", flush=True)
    json.dump(rows, open(args.out, "w"), ensure_ascii=False)
    for name, loader in (("cmrc", load_cmrc), ("drcd", load_drcd)):
        if name not in args.sets:
            continue
        ds = loader(300)
        p = make_pipeline(settings, emb, [Document(k, v) for k, v in ds.corpus.items()], Path(tmp) / name)
        run(p, name, spread(ds.items, 150), True)
        print(name, "done", flush=True)
        json.dump(rows, open(args.out, "w"), ensure_ascii=False)

sets = sorted({r['set'] for r in rows})
def stats(rs, t):
    f1, ans, ref = [], [], []
    for r in rs:
        good = [c for c in r['cands'] if c[0] >= t]
        if r['answerable']:
            f1.append(M.char_f1(good[0][1], r['answers']) if good else 0.0)
            ans.append(bool(good))
        else:
            ref.append(not good)
    return (np.mean(f1) if f1 else None, np.mean(ans) if ans else None, np.mean(ref) if ref else None)
for rn in readers:
    cal = next(r['cal'] for r in rows if r['reader'] == rn)
    ms = [r['ms'] for r in rows if r['reader'] == rn]
    print(f'== reader {rn} calibrated min_score {cal:.3f}; read ms p50 {np.percentile(ms, 50):.0f} '
          f'p95 {np.percentile(ms, 95):.0f} over {len(ms)} questions')
    for off in (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0):
        out = []
        for s in sets:
            f1, ans, ref = stats([r for r in rows if r['reader'] == rn and r['set'] == s], cal + off)
            out.append(f"{s}: " + (f"F1 {f1:.3f} ans {ans:.2f}" if f1 is not None else f"ref {ref:.2f}"))
        print(f'{off:+.1f}', ' | '.join(out))
