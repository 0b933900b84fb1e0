"""Evaluation harness: retrieval + answers on the seed gold set and external sets, with baselines.

``python -m eval.run [--limit N] [--full] [--out DIR] [--no-peer]`` writes DIR/metrics.json,
DIR/per_query.jsonl, DIR/summary.md and PNG plots. Every system runs the same corpus, chunks,
model and queries: BM25 only, dense only, hybrid (RRF), hybrid reranked by EmbeddingGemma-300m (when
`make gemma` installed it, or ``--rerank gemma``) and a peer (txtai, same model).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from eval import metrics as M
from eval.data import ROOT, SEED_HELDOUT, Dataset, QAItem, load_cjrc, load_cmrc, load_drcd, load_rgb, load_seed_gold
from eval.milvus_parity import Parity
from rag.answer import answering
from rag.core.config import Settings
from rag.core.types import Answer, Document
from rag.index.build import build_index
from rag.ingest.loaders import load_path
from rag.pipeline import Pipeline, judged

logger = logging.getLogger("eval")
KS = (1, 3, 5, 10, 20)
MODES = ("bm25", "dense", "hybrid")
_MARK = re.compile(r"\[\d+\]")


def ranked_docs(hits: list[Any], k: int) -> list[str]:
    out: list[str] = []
    for h in hits:
        if h.chunk.doc_id not in out:
            out.append(h.chunk.doc_id)
    return out[:k]


def make_pipeline(settings: Settings, embedder: Any, docs: list[Document], workdir: Path,
                  reranker: Any = None) -> Pipeline:
    build_index(workdir, docs, embedder, settings.chunk_size, settings.chunk_overlap, settings.batch_size)
    return Pipeline(settings.model_copy(update={"index_dir": workdir}), embedder=embedder, reranker=reranker).load()


def retrieval_rows(p: Pipeline, ds: Dataset, modes: tuple[str, ...] = MODES) -> list[dict[str, Any]]:
    """One row per query and system; a system ``MODE+rerank`` is MODE's hits through the reranker."""
    rows = []
    for it in ds.items:
        rel = ds.relevant.get(it.qid)
        if not rel:
            continue
        for system in modes:
            mode, rerank = system.removesuffix("+rerank"), system.endswith("+rerank")
            timings: dict[str, float] = {}
            t = time.perf_counter()
            hits, _ = p.search(it.query, 40, mode, timings, rerank=rerank)
            ms = (time.perf_counter() - t) * 1000
            ranked = ranked_docs(hits, 20)
            row = {"dataset": ds.name, "qid": it.qid, "lang": it.lang, "system": system, "ms": ms,
                   "type": it.tags.get("type", ""), "top": ranked[:5]}
            if "rerank_ms" in timings:
                row["rerank_ms"] = timings["rerank_ms"]
            for k in KS:
                row[f"recall@{k}"] = M.recall_at_k(ranked, rel, k)
                row[f"hit@{k}"] = M.hit_at_k(ranked, rel, k)
            row["mrr@10"] = M.mrr_at_k(ranked, rel, 10)
            row["ndcg@10"] = M.ndcg_at_k(ranked, rel, 10)
            if it.evidence:  # span level: the evidence itself inside a top-k passage
                ev = M.norm_answer(it.evidence)
                texts = [M.norm_answer(h.chunk.text) for h in hits]
                row["evidence@5"] = 1.0 if any(ev in t for t in texts[:5]) else 0.0
            rows.append(row)
    return rows


def answer_row(ds: Dataset, it: QAItem, a: Answer, ms: float) -> dict[str, Any]:
    pred = _MARK.sub("", a.text)
    row: dict[str, Any] = {"dataset": ds.name, "qid": it.qid, "lang": it.lang, "system": "answer:" + a.mode,
                           "type": it.tags.get("type", ""), "gold_answerable": it.answerable,
                           "answerable": a.answerable, "ms": ms, "answer": pred[:300], **a.timings}
    if it.answerable and it.answers:
        # em / f1 score the short answer (the bare span, CMRC convention); f1_text the cited explanation.
        # A multi-fact question's answers are all required: their joined form is accepted too.
        golds = [*it.answers, "；".join(it.answers)] if it.tags.get("type") == "multi_fact" else it.answers
        row.update(em=M.exact_match(a.short_answer, golds), f1=M.char_f1(a.short_answer, golds),
                   f1_text=M.char_f1(pred, golds), short=a.short_answer,
                   contains=M.contains_all(pred, it.answers) if it.tags.get("type") == "multi_fact"
                   else M.contains_any(pred, it.answers))
        if a.answerable:
            row["f1_answered"] = row["f1"]
        evidence = [it.evidence] if it.evidence else it.answers
        if it.tags.get("evidence_ids"):
            gold = set(json.loads(it.tags["evidence_ids"]))
            cited = [c.hit.chunk.doc_id for c in a.citations]
            prec = sum(1 for d in cited if d in gold) / len(cited) if cited else 0.0
            rec = 1.0 if gold & set(cited) else 0.0
        else:
            prec, rec = M.citation_scores([c.hit.chunk.text for c in a.citations], evidence)
        row.update(cit_precision=prec, cit_recall=rec)
    return row


def answer_rows(p: Pipeline, ds: Dataset, items: list[QAItem] | None = None,
                generator: Any = None, judge: Any = None) -> list[dict[str, Any]]:
    """Extractive answers by every reader the pipeline has, side by side (systems ``answer:model``, the trained
    reader, and ``answer:rules``), or LLM answers (``generator``) over the served reader's refusal decision."""
    if generator is not None or len(p.generators) < 2:
        return _answer_rows(p, ds, items, generator, judge)
    served = p.generator
    rows: list[dict[str, Any]] = []
    try:
        for kind, gen in p.generators.items():
            p.generator = gen
            rows += [r | {"system": r["system"].replace("answer:extractive", f"answer:{kind}")}
                     for r in _answer_rows(p, ds, items, None, judge)]
    finally:
        p.generator = served
    return rows


def _answer_rows(p: Pipeline, ds: Dataset, items: list[QAItem] | None = None,
                 generator: Any = None, judge: Any = None) -> list[dict[str, Any]]:
    """Extractive answers (``generator`` None) or LLM answers with verified citations; an LLM answer that
    degraded to extractive (timeout, no supported citation) counts as what it returned, flagged. With a
    ``judge`` each extractive answer is also scored after the refusal judge (system extractive+judge)."""
    rows = []
    for it in items if items is not None else ds.items:
        t = time.perf_counter()
        if generator is None:
            a = p.ask(it.query, 5)
        else:
            a = answering.answer(p, it.query, 5, "llm", generator)
        ms = (time.perf_counter() - t) * 1000
        if judge is not None and generator is None:
            t = time.perf_counter()
            b = judged(judge, it.query, replace(a, timings=dict(a.timings)), p.settings.judge_min_cos)
            jms = (time.perf_counter() - t) * 1000
            rows.append(answer_row(ds, it, b, ms + jms) | {"judge_ms": jms})
        row = answer_row(ds, it, a, ms)
        if generator is not None:
            row["system"] = "answer:llm"
            row["degraded"] = 1.0 if a.mode != "llm" or a.warnings else 0.0
            if "llm_ms" in a.timings:
                row["llm_ms"] = a.timings["llm_ms"]
        rows.append(row)
    return rows


def llm_rows(args: argparse.Namespace, runs: list[tuple[Pipeline, Dataset, list[QAItem]]]) -> list[dict[str, Any]]:
    """The same questions answered by the local LLM (``--llm 0.5b|1.5b``, a llama.cpp server started here)
    or by ``--llm-url`` (any OpenAI-compatible endpoint)."""
    from rag.answer.llm import LlamaServer, OpenAICompatGenerator

    server = None
    url, model = args.llm_url, args.llm_model
    if not url:
        from embeddings.fetch_llm import MODELS, gguf_path

        spec = MODELS[args.llm]
        # every core: during the eval nothing else runs between the LLM calls
        server = LlamaServer(gguf_path(args.llm), port=0, alias=spec.alias,
                             threads=os.cpu_count() or 2, log_path=Path(args.out) / "llama-server.log")
        url, model = server.start(), spec.alias
    gen = OpenAICompatGenerator(url, model, "", args.llm_timeout, 1)
    rows: list[dict[str, Any]] = []
    try:
        for p, ds, items in runs:
            logger.info("LLM answers on %s: %d questions via %s", ds.name, len(items), url)
            rows += answer_rows(p, ds, items, gen)
            # the extractive answers to exactly these questions, for a like-for-like comparison
            rows += [{**r, "system": "answer:extractive-same-questions"} for r in answer_rows(p, ds, items)]
    finally:
        if server:
            server.stop()
    return rows


def spread(items: list[QAItem], n: int) -> list[QAItem]:
    """``n`` items spread evenly over the list (the gold files are grouped by question type)."""
    if n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def peer_rows(ds: Dataset, p: Pipeline, model_dir: Path) -> list[dict[str, Any]]:
    """txtai (PyPI) over the very same chunks and model: dense search, its defaults otherwise."""
    try:
        from txtai import Embeddings
    except ImportError:
        logger.warning("txtai not installed: peer baseline skipped (pip install -e '.[eval]')")
        return []
    assert p.index is not None
    chunks = list(p.index.chunks.values())
    emb = Embeddings({"path": str(model_dir), "method": "sentence-transformers", "content": False,
                      "instructions": {"query": "query: ", "data": "passage: "}, "backend": "faiss"})
    t = time.perf_counter()
    emb.index([(c.chunk_id, c.embed_text(), None) for c in chunks])
    logger.info("txtai indexed %d chunks in %.1fs", len(chunks), time.perf_counter() - t)
    rows = []
    for it in ds.items:
        rel = ds.relevant.get(it.qid)
        if not rel:
            continue
        t = time.perf_counter()
        res = emb.search(it.query, 40)
        ms = (time.perf_counter() - t) * 1000
        ranked: list[str] = []
        for cid, _score in res:
            d = p.index.chunks[int(cid)].doc_id
            if d not in ranked:
                ranked.append(d)
        row = {"dataset": ds.name, "qid": it.qid, "lang": it.lang, "system": "txtai", "ms": ms}
        for k in KS:
            row[f"recall@{k}"] = M.recall_at_k(ranked, rel, k)
            row[f"hit@{k}"] = M.hit_at_k(ranked, rel, k)
        row["mrr@10"] = M.mrr_at_k(ranked, rel, 10)
        row["ndcg@10"] = M.ndcg_at_k(ranked, rel, 10)
        rows.append(row)
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """metrics[dataset][system] = means (+ latency p50/p95), and per-language breakdowns."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["dataset"], r["system"])].append(r)
    out: dict[str, Any] = defaultdict(dict)
    for (ds, sysname), rs in groups.items():
        out[ds][sysname] = _agg(rs)
        by_lang: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rs:
            by_lang[r["lang"]].append(r)
        if len(by_lang) > 1:
            out[ds][sysname]["by_lang"] = {lang: _agg(v) for lang, v in sorted(by_lang.items())}
    return dict(out)


def _agg(rs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k in rs[0] if k.startswith(("recall@", "hit@", "mrr", "ndcg", "evidence@"))]
    keys += ["em", "f1", "f1_answered", "f1_text", "contains", "cit_precision", "cit_recall", "degraded", "article@1",
             "validity"]
    agg: dict[str, Any] = {"n": len(rs)}
    for k in keys:
        vals = [r[k] for r in rs if k in r]
        if vals:
            agg[k] = round(M.mean(vals), 4)
    if "gold_answerable" in rs[0]:
        pos = [r for r in rs if r["gold_answerable"]]
        neg = [r for r in rs if not r["gold_answerable"]]
        if pos:
            agg["answerable_accuracy"] = round(M.mean(1.0 if r["answerable"] else 0.0 for r in pos), 4)
        if neg:
            agg["refusal_accuracy"] = round(M.mean(0.0 if r["answerable"] else 1.0 for r in neg), 4)
    for stage in ("ms", "embed_ms", "retrieve_ms", "rerank_ms", "generate_ms", "judge_ms", "llm_ms"):
        vals = [r[stage] for r in rs if stage in r]
        if vals:
            agg[f"{stage}_p50"] = round(M.percentile(vals, 50), 2)
            agg[f"{stage}_p95"] = round(M.percentile(vals, 95), 2)
    return agg


def run(args: argparse.Namespace) -> dict[str, Any]:
    from embeddings.factory import create_embedder, model_path
    from embeddings.fetch_gemma import gemma_path, is_installed
    from rag.search.rerank import create_reranker

    settings = Settings(reader="model")  # both generators load: answers are scored rules and model side by side
    embedder = create_embedder(settings.embedder, settings.models_dir, settings.model_name, settings.dtype,
                               settings.batch_size)
    kind = args.rerank
    if kind == "auto":
        kind = "gemma" if is_installed(gemma_path(settings.models_dir)) else "none"
        logger.info("reranker: %s (auto: %s)", kind, "installed" if kind != "none" else "`make gemma` to add it")
    reranker = create_reranker(kind, settings.models_dir)  # one model shared by every set's pipeline
    judge = (reranker if kind == "gemma" else create_reranker("gemma", settings.models_dir)) if args.judge else None
    if judge is not None:
        judge.load()
    modes = MODES + ("hybrid+rerank",) if reranker is not None else MODES
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    llm_runs: list[tuple[Pipeline, Dataset, list[QAItem]]] = []
    limit = None if args.full else args.limit
    # issue 18: CMRC/DRCD retrieval through the Milvus backend too, on a sample (eval/milvus_parity.py)
    parity = Parity(args.milvus_sample) if "milvus" in args.sets else None
    with tempfile.TemporaryDirectory() as tmp:
        # 1. Seed gold set over the seed documents.
        seed_docs, _ = load_path(ROOT / "seeds")
        seed = load_seed_gold()
        p = make_pipeline(settings, embedder, seed_docs, Path(tmp) / "seed", reranker)
        rows += retrieval_rows(p, seed, modes)
        rows += answer_rows(p, seed, judge=judge)
        rows += answer_rows(p, load_seed_gold(SEED_HELDOUT, "seed_heldout"), judge=judge)  # unseen questions
        llm_runs.append((p, seed, spread(seed.items, args.llm_limit)))
        if "multiturn" in args.sets:  # conversations (issue 16): eval/multiturn.py writes DIR/multiturn.md
            from eval.multiturn import evaluate

            evaluate(p, out)
        # 2. CMRC2018 dev (simplified) and DRCD dev (traditional): corpus = all paragraphs.
        # CJRC dev (legal, evaluation only): also unanswerable questions over the same judgments.
        for name, loader in (("cmrc", load_cmrc), ("drcd", load_drcd), ("cjrc", load_cjrc)):
            if name not in args.sets:
                continue
            ds = loader(limit)
            docs = [Document(pid, text) for pid, text in ds.corpus.items()]
            p = make_pipeline(settings, embedder, docs, Path(tmp) / name, reranker)
            rows += retrieval_rows(p, ds, modes)
            if parity is not None and name in ("cmrc", "drcd"):
                parity.add(p, ds)
            rows += answer_rows(p, ds, ds.items[: args.answer_limit], judge=judge)
            if not args.no_peer:
                rows += peer_rows(ds, p, model_path(settings.models_dir, settings.model_name))
        # 3. RGB zh: noise robustness (positives + negatives) and negative rejection (negatives only).
        if "rgb" in args.sets:
            rows += rgb_rows(settings, embedder, Path(tmp), args.rgb_limit, llm_runs, args.llm_limit, reranker, judge)
        # 4. Issue-17 corpus: 16 公文 in every loader format (scans OCR'd), structure and validity questions;
        # eval/corpus17/score.py writes DIR/corpus17.md (by question kind)
        if "corpus17" in args.sets:
            from eval.corpus17.score import evaluate as corpus17

            rows += corpus17(settings, embedder, Path(tmp) / "corpus17", out, reranker)
        # 5. The same questions through the LLM generator (--llm / --llm-url), while the indexes exist.
        if args.llm or args.llm_url:
            rows += llm_rows(args, llm_runs)
    metrics = summarize(rows)
    (out / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=1))
    with open(out / "per_query.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    from eval.report import write_report

    write_report(metrics, rows, out)
    if parity is not None:
        parity.finish(out)  # DIR/milvus_parity.md; raises when a gap is over 0.01
    return metrics


def rgb_rows(settings: Settings, embedder: Any, tmp: Path, limit: int,
             llm_runs: list[tuple[Pipeline, Dataset, list[QAItem]]], llm_limit: int,
             reranker: Any = None, judge: Any = None) -> list[dict[str, Any]]:
    ds = load_rgb(limit)
    used: set[str] = set()
    negs: set[str] = set()
    for it in ds.items:
        used |= ds.relevant[it.qid]
        n = set(json.loads(it.tags["negatives"]))
        used |= n
        negs |= n
    for it in ds.items:
        it.tags["evidence_ids"] = json.dumps(sorted(ds.relevant[it.qid]))
    noisy = Dataset("rgb_noise", {k: ds.corpus[k] for k in used}, ds.items, ds.relevant)
    p = make_pipeline(settings, embedder, [Document(k, ds.corpus[k]) for k in sorted(used)], tmp / "rgb", reranker)
    modes = ("hybrid", "hybrid+rerank") if reranker is not None else ("hybrid",)
    rows = retrieval_rows(p, noisy, modes) + answer_rows(p, noisy, judge=judge)
    llm_runs.append((p, noisy, spread(noisy.items, llm_limit)))
    # Negative rejection: the positives are gone, the answer must be a refusal.
    only_neg = [Document(k, ds.corpus[k]) for k in sorted(negs - set().union(*ds.relevant.values()))]
    p = make_pipeline(settings, embedder, only_neg, tmp / "rgb_neg")
    rej = Dataset("rgb_reject", {}, [QAItem(it.qid, it.query, it.lang, [], False) for it in ds.items], {})
    llm_runs.append((p, rej, spread(rej.items, llm_limit)))
    return rows + answer_rows(p, rej, judge=judge)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(prog="python -m eval.run")
    ap.add_argument("--out", default=str(ROOT / "eval" / "reports" / "latest"))
    ap.add_argument("--limit", type=int, default=500, help="queries per external set (default 500)")
    ap.add_argument("--answer-limit", type=int, default=200, help="questions per set for answer metrics")
    ap.add_argument("--rgb-limit", type=int, default=100)
    ap.add_argument("--full", action="store_true", help="all queries of every set")
    ap.add_argument("--no-peer", action="store_true", help="skip the txtai peer baseline")
    ap.add_argument("--judge", action="store_true", help="also score every extractive answer after the "
                    "EmbeddingGemma refusal judge (RAG_JUDGE_MIN_COS; `make gemma`)")
    ap.add_argument("--sets", nargs="*", default=["cmrc", "drcd", "cjrc", "rgb", "multiturn", "corpus17", "milvus"])
    ap.add_argument("--milvus-sample", type=int, default=150, help="CMRC/DRCD queries also searched through the "
                    "Milvus backend (set milvus; RAG_MILVUS_URI, else a milvus-lite server started for the run)")
    ap.add_argument("--rerank", choices=["auto", "gemma", "none"], default="auto",
                    help="hybrid+rerank rows: auto = when EmbeddingGemma is installed (`make gemma`)")
    ap.add_argument("--llm", choices=["0.5b", "1.5b"], help="also answer with the local Qwen GGUF (llama.cpp server "
                    "started here; `make llm-install` first)")
    ap.add_argument("--llm-url", default="", help="also answer with this OpenAI-compatible endpoint (…/v1)")
    ap.add_argument("--llm-model", default="", help="model name for --llm-url")
    ap.add_argument("--llm-limit", type=int, default=1000, help="questions per set answered by the LLM")
    ap.add_argument("--llm-timeout", type=float, default=180, help="seconds per LLM answer")
    m = run(ap.parse_args())
    print(json.dumps({ds: {s: {k: v for k, v in x.items() if k in ("n", "hit@1", "hit@5", "recall@5", "mrr@10",
                                                                    "f1", "contains", "refusal_accuracy",
                                                                    "answerable_accuracy", "article@1", "validity")}
                           for s, x in d.items()} for ds, d in m.items()}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
