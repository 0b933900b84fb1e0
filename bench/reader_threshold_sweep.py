"""Exported readers on the same retrieved passages, their refusal threshold swept (issue 22, run C vs D).

``python -m bench.reader_threshold_sweep --readers C=/tmp/readerC D=.cache/models/reader-e5-small --out F.json``
(each dir written by ``python -m training.export install --artifact A --dest DIR``): seed gold, RGB noise and
rejection (100), CMRC2018 dev and DRCD dev (150 of a 300-question corpus), hybrid top 5, every reader's scored
spans kept; then short F1 / answered share / refusal per set at offsets -1.5..+2 from each fitted threshold.
A reader spec may add ``:passages=N`` (read the top N of the 5, default 5) and ``:int8`` (the int8 ONNX file),
e.g. ``C3q=/tmp/readerC:passages=3:int8``; the read time of each question is kept and printed (p50 / p95 ms).

Issue 22 speed options: ``:par`` reads through the parallel groups (``RAG_READER_PARALLEL``), ``:cascade=K``
records the early exit (``RAG_READER_CASCADE``): the first K passages in one call and the rest in a second, as the
served cascade does when it does not stop, each candidate tagged with its call and both call times kept. The stop
rule (the first call's best span at least ``margin`` over the threshold) is then replayed offline for every
``--margins`` value: F1 / answered / refused as served, the share stopped early and the read time (first call only
when stopped). ``--summary F.json`` writes those figures at the fitted threshold. Choose the margin on ``seed``
(the evaluation sets only report it).

``:t2s`` reads the question and passages converted to simplified characters (OpenCC ``t2s``, offsets kept:
``OnnxReader.view``), the span cut from the original text (``RAG_READER_T2S``); ``:t2s=mismatch`` converts only
where the question's script differs from the passage's.
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
from rag.answer.learned import _EDGE, ReaderGenerator, passage_of, sentence_at
from rag.answer.model_reader import OnnxReader
from rag.core.config import Settings
from rag.core.types import Document
from rag.ingest.loaders import load_path

settings = Settings(reader="rules")
emb = create_embedder(settings.embedder, settings.models_dir, settings.model_name, settings.dtype, settings.batch_size)
ap = argparse.ArgumentParser()
ap.add_argument("--readers", nargs="*", default=[],
                help="NAME=DIR[:int8][:par][:t2s[=mismatch]][:passages=N][:cascade=K]")
ap.add_argument("--out", default="/tmp/sweep_rows.json")
ap.add_argument("--sets", nargs="+", default=["seed", "rgb", "cmrc", "drcd"])
ap.add_argument("--margins", nargs="+", type=float, default=[0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0])
ap.add_argument("--summary", default="", help="JSON of every reader's figures at its fitted threshold")
ap.add_argument("--rows", default="", help="score these saved rows (an earlier --out) instead of reading again")
args = ap.parse_args()


_sessions: dict[tuple, OnnxReader] = {}


def _reader(spec: str) -> ReaderGenerator:
    d, *opts = spec.split(":")
    kv = dict(o.split("=", 1) if "=" in o else (o, "1") for o in opts)
    t2s = {"1": "always"}.get(kv.get("t2s", "off"), kv.get("t2s", "off"))
    key = (d, "int8" in kv, "par" in kv, t2s)  # differing only in passages / cascade: one model
    if key not in _sessions:
        _sessions[key] = OnnxReader(Path(d), int8=True if "int8" in kv else None, parallel="par" in kv, t2s=t2s)
    return ReaderGenerator(_sessions[key], passages=int(kv.get("passages", 5)), cascade=int(kv.get("cascade", 0)))


def _read(g: ReaderGenerator, query: str, hits: list) -> tuple[list, list[float]]:
    """(hit, read, spans, call) per passage and the time of each model call; the cascade's two calls always."""
    top = hits[: g.passages]
    texts = [passage_of(h) for h in top]
    k = g.cascade if 0 < g.cascade < len(top) else len(top)
    out, ms = [], []
    for call, (lo, hi) in enumerate(((0, k), (k, len(top)))):
        if lo >= hi:
            continue
        t = time.perf_counter()
        reads = g.reader.read(query, [x for x, _ in texts[lo:hi]])
        ms.append((time.perf_counter() - t) * 1000)
        out += [(h, r, spans, call) for h, r, (_, spans) in zip(top[lo:hi], reads, texts[lo:hi])]
    return out, ms


specs = dict(x.split("=", 1) for x in args.readers)
readers = {} if args.rows else {n: _reader(d) for n, d in specs.items()}
rows = json.load(open(args.rows)) if args.rows else []
def run(p, name, items, answerable):
    for it in items:
        hits, qvec = p.search(it.query, 5, "hybrid")
        for rn, g in readers.items():
            reads, calls = _read(g, it.query, hits)
            reads.sort(key=lambda x: -(x[1].answer + x[1].relevance))
            # [score, short answer, call]: call 0 = the first (the cascade's first K passages), 1 = the rest
            cands = [(x[1].answer + x[1].relevance, x[1].text.strip(_EDGE) or x[1].text, x[3]) for x in reads
                     if x[1].start >= 0 and x[1].text and sentence_at(x[2], x[1].start, x[1].end) is not None]
            rows.append({"set": name, "reader": rn, "qid": it.qid, "answerable": answerable and bool(it.answers),
                         "answers": it.answers, "cands": cands, "cal": g.min_score, "ms": sum(calls),
                         "calls_ms": calls, "cascade": g.cascade})
with tempfile.TemporaryDirectory() as tmp:
    if "seed" in args.sets and readers:
        seed_docs, _ = load_path(ROOT / "seeds")
        seed = load_seed_gold()
        p = make_pipeline(settings, emb, seed_docs, Path(tmp) / "seed")
        run(p, "seed", seed.items, True)
        print("seed done", flush=True)
    ds = load_rgb(100) if "rgb" in args.sets and readers else None
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
    if readers:
        json.dump(rows, open(args.out, "w"), ensure_ascii=False)
    for name, loader in (("cmrc", load_cmrc), ("drcd", load_drcd)):
        if name not in args.sets or not readers:
            continue
        ds = loader(300)
        p = make_pipeline(settings, emb, [Document(k, v) for k, v in ds.corpus.items()], Path(tmp) / name)
        run(p, name, spread(ds.items, 150), True)
        print(name, "done", flush=True)
        json.dump(rows, open(args.out, "w"), ensure_ascii=False)

sets = sorted({r['set'] for r in rows})
names = list(dict.fromkeys(r['reader'] for r in rows))


def used(r, t, margin):
    """The candidates the served decision sees at threshold ``t``: the first call's alone when the cascade stops."""
    if r.get('cascade') and margin is not None:
        first = [c for c in r['cands'] if c[2] == 0]
        if first and first[0][0] >= t + margin:  # cands are sorted by score: first[0] is the first call's best
            return first, r['calls_ms'][0], True
    return r['cands'], r['ms'], False


def stats(rs, t, margin=None):
    f1, ans, ref, ms, stop = [], [], [], [], []
    for r in rs:
        cands, m, s = used(r, t, margin)
        ms.append(m)
        stop.append(s)
        good = [c for c in cands if c[0] >= t]
        if r['answerable']:
            f1.append(M.char_f1(good[0][1], r['answers']) if good else 0.0)
            ans.append(bool(good))
        else:
            ref.append(not good)
    mean = lambda v: round(float(np.mean(v)), 4) if v else None  # noqa: E731
    pct = lambda q: round(float(np.percentile(ms, q)), 1)  # noqa: E731
    return {"f1": mean(f1), "answered": mean(ans), "refused": mean(ref), "n": len(rs), "stopped_early": mean(stop),
            "read_ms_p50": pct(50), "read_ms_p95": pct(95)}


def line(st):
    return f"F1 {st['f1']:.3f} ans {st['answered']:.2f}" if st['f1'] is not None else f"ref {st['refused']:.2f}"


summary = {}
for rn in names:
    cal = next(r['cal'] for r in rows if r['reader'] == rn)
    ms = [r['ms'] for r in rows if r['reader'] == rn]
    casc = next(r.get('cascade', 0) for r in rows if r['reader'] == rn)
    print(f'== reader {rn} calibrated min_score {cal:.3f}; read ms p50 {np.percentile(ms, 50):.0f} '
          f'p95 {np.percentile(ms, 95):.0f} over {len(ms)} questions'
          + (f' (both calls; cascade {casc})' if casc else ''))
    for off in (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0):
        out = [f"{s}: " + line(stats([r for r in rows if r['reader'] == rn and r['set'] == s], cal + off))
               for s in sets]
        print(f'{off:+.1f}', ' | '.join(out))
    summary[rn] = {"cal": cal, "full": {s: stats([r for r in rows if r['reader'] == rn and r['set'] == s], cal)
                                         for s in sets}}
    if casc:
        print(f'-- cascade {casc} at the fitted threshold, by margin: per set F1/answered or refused, stopped early, '
              'read ms p50/p95')
        summary[rn]["cascade"] = {}
        for m in args.margins:
            per = {s: stats([r for r in rows if r['reader'] == rn and r['set'] == s], cal, m) for s in sets}
            summary[rn]["cascade"][str(m)] = per
            print(f'm {m:.1f}', ' | '.join(f"{s}: {line(st)} stop {st['stopped_early']:.2f} "
                                            f"{st['read_ms_p50']:.0f}/{st['read_ms_p95']:.0f}"
                                            for s, st in per.items()))
if args.summary:
    Path(args.summary).write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
