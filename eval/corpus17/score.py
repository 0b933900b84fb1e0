"""The issue-17 corpus as an eval set: 16 fictional 公文 in every format the loaders read (``eval/corpus17/files``,
rendered by ``build.py``), ingested through the real loaders (OCR included) into a temporary index, and the
questions of ``eval/gold/corpus17.jsonl`` whose right answer depends on structure or validity.

Per question (rows for ``eval.run``'s report, dataset ``corpus17``):

* retrieval (system ``hybrid``): hit@k of the gold document, searched with the question's validity filters;
* answers (system ``answer:<reader>``): short-answer character F1 and ``contains`` as in the other sets, and
  ``article@1``: the article of the answer's citation (the one the short answer was read from, else the first)
  is the gold article (``…> 第五条``; only for questions with an article);
* ``validity`` (questions of a validity kind): ``current`` and ``as_of`` - that citation is from the gold document
  (the one in force by default, the older one ``as_of`` a day before the revision); ``flagged`` - asked with
  ``include_superseded``, cited from the gold (superseded or expired) document and the answer carries the
  warning (``…被《…》废止``, ``…已失效``); ``expired`` - by default the expired document is not cited at all.

``python -m eval.corpus17.score [--out DIR] [--embedder hash]`` runs it alone; ``make eval`` runs it through
``eval.run`` (set ``corpus17``) and writes DIR/corpus17.md with the breakdown by question kind.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval import metrics as M
from eval.corpus17.build import files
from eval.data import ROOT
from rag.core.types import Answer, Document, Filters
from rag.ingest.loaders import LoadFailure, load_file

logger = logging.getLogger("eval.corpus17")
GOLD = ROOT / "eval" / "gold" / "corpus17.jsonl"
KINDS = ("current", "as_of", "flagged", "expired", "structure", "table")
VALIDITY = ("current", "as_of", "flagged", "expired")
KS = (1, 3, 5)


@dataclass
class Question:
    qid: str
    query: str
    lang: str
    kind: str
    answers: list[str]
    doc: str
    article: str = ""
    as_of: str | None = None
    include_superseded: bool | None = None
    warn: str = ""
    not_cite: str = ""

    @property
    def filters(self) -> Filters | None:
        if self.as_of is None and self.include_superseded is None:
            return None
        return Filters(as_of=self.as_of, include_superseded=self.include_superseded)


def load_gold(path: Path = GOLD) -> list[Question]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            q = Question(d["id"], d["query"], d["lang"], d["kind"], d["answers"], d["doc"], d.get("article", ""),
                         d.get("as_of"), d.get("include_superseded"), d.get("warn", ""), d.get("not_cite", ""))
            if q.kind not in KINDS or (q.kind != "expired" and not q.answers) or (q.kind == "flagged" and not q.warn):
                raise ValueError(f"{path}: question {q.qid} is malformed (kind {q.kind!r})")
            out.append(q)
    return out


def load_corpus(folder: Path | None = None) -> tuple[list[Document], list[LoadFailure], dict[str, float]]:
    """Every corpus file through ``load_file`` (its format's loader, OCR for the scans); seconds per file."""
    docs, failures, seconds = [], [], {}
    for path in files(folder).values():
        t = time.perf_counter()
        try:
            docs.append(load_file(path))
        except Exception as e:  # noqa: BLE001 - a file that fails is reported, the others still count
            failures.append(LoadFailure(str(path), str(e)))
        seconds[path.name] = round(time.perf_counter() - t, 2)
    return docs, failures, seconds


def top_citation(a: Answer) -> Any:
    if not a.answerable or not a.citations:
        return None
    if a.short_citation is not None:
        for c in a.citations:
            if c.n == a.short_citation:
                return c
    return a.citations[0]


def article_of(path: str) -> str:
    return path.split(" > ")[-1].strip() if path else ""


def validity_ok(q: Question, a: Answer) -> float:
    cited = [c.hit.chunk.doc_id for c in a.citations] if a.answerable else []
    top = top_citation(a)
    if q.kind == "expired":
        return 0.0 if q.not_cite in cited else 1.0
    if top is None or top.hit.chunk.doc_id != q.doc:
        return 0.0
    if q.kind == "flagged":
        return 1.0 if any(q.warn in w for w in a.warnings) else 0.0
    # in force (or as_of): no warning may say otherwise about the document the answer comes from
    return 0.0 if any(w for w in a.warnings if "废止" in w or "失效" in w) else 1.0


def rows_for(p: Any, questions: list[Question], name: str = "corpus17") -> list[dict[str, Any]]:
    """Retrieval rows (``hybrid``) and answer rows for every reader the pipeline has (``answer:<reader>``)."""
    rows: list[dict[str, Any]] = []
    for q in questions:
        t = time.perf_counter()
        hits, _ = p.search(q.query, 20, "hybrid", filters=q.filters)
        ranked = list(dict.fromkeys(h.chunk.doc_id for h in hits))
        row: dict[str, Any] = {"dataset": name, "qid": q.qid, "lang": q.lang, "system": "hybrid", "type": q.kind,
                               "ms": (time.perf_counter() - t) * 1000, "top": ranked[:5]}
        if q.kind != "expired":
            for k in KS:
                row[f"hit@{k}"] = M.hit_at_k(ranked, {q.doc}, k)
            row["mrr@10"] = M.mrr_at_k(ranked, {q.doc}, 10)
        rows.append(row)
    served = p.generator
    try:
        for reader, gen in p.generators.items():
            p.generator = gen
            for q in questions:
                t = time.perf_counter()
                a = p.ask(q.query, 5, q.filters)
                rows.append(answer_row(q, a, (time.perf_counter() - t) * 1000, reader, name))
    finally:
        p.generator = served
    return rows


def answer_row(q: Question, a: Answer, ms: float, reader: str, name: str = "corpus17") -> dict[str, Any]:
    top = top_citation(a)
    row: dict[str, Any] = {"dataset": name, "qid": q.qid, "lang": q.lang, "system": f"answer:{reader}",
                           "type": q.kind, "ms": ms, "answerable": a.answerable, "short": a.short_answer,
                           "answer": a.text[:300],
                           "cited": top.hit.chunk.doc_id if top else "", "path": top.hit.chunk.path if top else "",
                           "warnings": a.warnings, **a.timings}
    if q.answers:
        row.update(f1=M.char_f1(a.short_answer, q.answers), em=M.exact_match(a.short_answer, q.answers),
                   contains=M.contains_any(a.text + " " + a.short_answer, q.answers))
    if q.article:
        got = M.norm_answer(article_of(top.hit.chunk.path)) if top else ""
        row["article@1"] = 1.0 if got == M.norm_answer(q.article) else 0.0
    if q.kind in VALIDITY:
        row["validity"] = validity_ok(q, a)
    return row


def breakdown(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """system -> kind -> means (n, hit@k, f1, contains, article@1, validity)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["system"], r["type"])].append(r)
        groups[(r["system"], "all")].append(r)
    out: dict[str, Any] = defaultdict(dict)
    for (system, kind), rs in sorted(groups.items()):
        agg: dict[str, Any] = {"n": len(rs)}
        for key in ("hit@1", "hit@3", "hit@5", "mrr@10", "f1", "contains", "article@1", "validity"):
            vals = [r[key] for r in rs if key in r]
            if vals:
                agg[key] = round(M.mean(vals), 3)
        out[system][kind] = agg
    return dict(out)


def write_report(out: Path, rows: list[dict[str, Any]], load: dict[str, Any]) -> dict[str, Any]:
    b = breakdown(rows)
    cols = ["n", "hit@1", "hit@5", "f1", "contains", "article@1", "validity"]
    lines = [f"# Issue-17 corpus: {load['documents']} documents, {load['questions']} questions", "",
             f"Loaded through the real loaders in {load['load_s']:.1f} s (OCR {load['ocr_s']:.1f} s on "
             f"{load['ocr_files']} scans), indexed in {load['index_s']:.1f} s, questions in {load['ask_s']:.1f} s; "
             f"load failures: {len(load['failures'])}.", ""]
    for system, kinds in b.items():
        lines += [f"## {system}", "", "| kind | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for kind in (*KINDS, "all"):
            if kind in kinds:
                lines.append(f"| {kind} | " + " | ".join(str(kinds[kind].get(c, "")) for c in cols) + " |")
        lines.append("")
    wrong = [r for r in rows if r["system"].startswith("answer:") and (r.get("validity") == 0.0
                                                                      or r.get("article@1") == 0.0
                                                                      or r.get("contains") == 0.0)]
    if wrong:
        lines += ["## Misses", "", "| reader | qid | kind | short answer | cited | path |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['system']} | {r['qid']} | {r['type']} | {r['short'][:30]} | {r['cited']} | {r['path']} |"
                  for r in wrong]
    out.mkdir(parents=True, exist_ok=True)
    (out / "corpus17.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = {"load": load, "by_kind": b}
    (out / "corpus17.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1))
    return summary


def evaluate(settings: Any, embedder: Any, workdir: Path, out: Path, reranker: Any = None) -> list[dict[str, Any]]:
    """Load, index and ask; writes DIR/corpus17.{md,json}; returns the rows for ``eval.run``'s report."""
    from eval.run import make_pipeline

    t0 = time.perf_counter()
    docs, failures, seconds = load_corpus()
    t1 = time.perf_counter()
    p = make_pipeline(settings, embedder, docs, workdir, reranker)
    t2 = time.perf_counter()
    questions = load_gold()
    rows = rows_for(p, questions)
    t3 = time.perf_counter()
    scans = [d.doc_id for d in docs if d.meta.get("ocr_pages")]
    load = {"documents": len(docs), "questions": len(questions), "failures": [f.path for f in failures],
            "load_s": round(t1 - t0, 1), "ocr_files": len(scans), "ocr_s": round(sum(seconds[s] for s in scans), 1),
            "index_s": round(t2 - t1, 1), "ask_s": round(t3 - t2, 1), "seconds_per_file": seconds}
    s = write_report(out, rows, load)
    logger.info("corpus17: %s", json.dumps({k: v.get("all") for k, v in s["by_kind"].items()}, ensure_ascii=False))
    return rows


def main() -> None:
    from embeddings.factory import create_embedder
    from rag.core.config import Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(prog="python -m eval.corpus17.score")
    ap.add_argument("--out", default=str(ROOT / "eval" / "reports" / "corpus17"))
    ap.add_argument("--embedder", default="", help="sbert (the served model, default) or hash (no model)")
    ap.add_argument("--reader", choices=["rules", "model"], default="model",
                    help="model: both readers side by side (as make eval); rules: the rule reader only")
    args = ap.parse_args()
    settings = Settings(reader=args.reader)
    if args.embedder:
        settings = settings.model_copy(update={"embedder": args.embedder})
    emb = create_embedder(settings.embedder, settings.models_dir, settings.model_name, settings.dtype,
                          settings.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        evaluate(settings, emb, Path(tmp) / "corpus17", Path(args.out))
    print((Path(args.out) / "corpus17.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
