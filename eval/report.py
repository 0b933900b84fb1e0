"""Markdown summary and PNG plots for an eval run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLS = ["n", "hit@1", "hit@5", "recall@5", "recall@10", "mrr@10", "ndcg@10", "evidence@5", "ms_p50", "ms_p95",
        "rerank_ms_p50", "rerank_ms_p95"]
ANS = ["n", "em", "f1", "f1_answered", "f1_text", "contains", "cit_precision", "cit_recall", "article@1", "validity",
       "answerable_accuracy", "refusal_accuracy",
       "degraded", "ms_p50", "ms_p95", "llm_ms_p50", "llm_ms_p95"]
STAGES = ["n", *(f"{st}_ms_{q}" for st in ("embed", "retrieve", "rerank", "generate", "judge", "llm")
                for q in ("p50", "p95"))]


def _table(rows: dict[str, dict[str, Any]], cols: list[str]) -> list[str]:
    cols = [c for c in cols if any(c in r for r in rows.values())]
    out = ["| system | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in rows.items():
        out.append(f"| {name} | " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return out


def _fmt(v: Any) -> str:
    return "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def write_report(metrics: dict[str, Any], rows: list[dict[str, Any]], out: Path) -> None:
    lines = ["# Evaluation report", "", "Produced by `make eval` (`python -m eval.run`).", ""]
    for ds, systems in metrics.items():
        lines += [f"## {ds}", ""]
        ret = {s: v for s, v in systems.items() if not s.startswith("answer:")}
        ans = {s: v for s, v in systems.items() if s.startswith("answer:")}
        if ret:
            lines += ["Retrieval (passage/document level):", ""] + _table(ret, COLS) + [""]
            h = ret.get("hybrid", {})
            ratios = {s: h.get("recall@5", 0) / v["recall@5"] for s, v in ret.items()
                      if s != "hybrid" and v.get("recall@5")}
            if ratios:
                lines += ["Hybrid Recall@5 ratio to: " + ", ".join(f"{s} {r:.3f}x" for s, r in ratios.items()), ""]
            rr = ret.get("hybrid+rerank", {})
            if rr:
                lines += ["Rerank ratio to hybrid: " + ", ".join(f"{m} {rr.get(m, 0) / h[m]:.3f}x" for m in
                                                                 ("hit@1", "recall@5", "mrr@10") if h.get(m)), ""]
            for s, v in ret.items():
                if "by_lang" in v:
                    lines += [f"By language ({s}):", ""] + _table(v["by_lang"], COLS) + [""]
        if ans:
            lines += ["Answers (em / f1: the short answer span, character F1; f1_answered: over the questions "
                      "answered; f1_text: the cited explanation; contains: a gold answer inside the explanation):",
                      ""] + _table(ans, ANS) + [""]
            lines += ["Latency by stage (ms: query embedding, retrieval + fusion, rerank, answer generation, LLM):",
                      ""] + _table(ans, STAGES) + [""]
            for s, v in ans.items():
                if "by_lang" in v:
                    lines += [f"By language ({s}):", ""] + _table(v["by_lang"], ANS) + [""]
    (out / "summary.md").write_text("\n".join(lines), encoding="utf-8")
    try:
        _plots(metrics, out)
    except ImportError:
        pass


def _plots(metrics: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [1, 3, 5, 10, 20]
    ret_sets = {ds: s for ds, s in metrics.items() if any(not k.startswith("answer:") for k in s)}
    fig, axes = plt.subplots(1, len(ret_sets), figsize=(4.5 * len(ret_sets), 3.8), squeeze=False)
    for ax, (ds, systems) in zip(axes[0], ret_sets.items()):
        for s, v in systems.items():
            if s.startswith("answer:") or "recall@1" not in v:
                continue
            ax.plot(ks, [v.get(f"recall@{k}", float("nan")) for k in ks], marker="o", label=s)
        ax.set_title(ds)
        ax.set_xlabel("k")
        ax.set_ylabel("Recall@k")
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "recall_at_k.png", dpi=110)
    plt.close(fig)

    seed = metrics.get("seed_gold", {})
    langs = sorted({lang for v in seed.values() for lang in v.get("by_lang", {})})
    if langs:
        fig, ax = plt.subplots(figsize=(7, 3.8))
        systems = [s for s in ("bm25", "dense", "hybrid", "hybrid+rerank") if s in seed]
        w = 0.8 / max(len(systems), 1)
        for i, s in enumerate(systems):
            vals = [seed[s]["by_lang"].get(lang, {}).get("hit@5", 0) for lang in langs]
            ax.bar([x + i * w for x in range(len(langs))], vals, w, label=s)
        ax.set_xticks([x + w * (len(systems) - 1) / 2 for x in range(len(langs))], langs)
        ax.set_ylabel("hit@5 (seed gold)")
        ax.set_ylim(0, 1.05)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "seed_by_language.png", dpi=110)
        plt.close(fig)
