"""The questions report for the people who keep the corpus (``rag report``, ``GET /v1/report``): the most asked
questions (by their standalone query), the refused ones (what the documents lack), answers rated 👎, latency
percentiles and counts; ``report_csv`` is one row per turn for a spreadsheet."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

from rag.conversations.store import ConversationStore
from rag.core.text import normalize


def _key(q: str) -> str:
    """Questions counted together: case, width, spaces and end punctuation aside."""
    return normalize(q).strip().rstrip("?？。.!！ ")


def _percentile(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return round(xs[k], 1)


def report(store: ConversationStore, days: float = 30, top: int = 20) -> dict[str, Any]:
    """For the people who keep the corpus: the most asked questions (by the standalone query), the refused ones
    (what the documents lack), answers rated 👎, latency percentiles and counts over the last ``days`` (0: all)."""
    since = time.time() - days * 86400 if days > 0 else 0.0
    rows = store.turn_rows(since)
    done = [r for r in rows if r["status"] == "done"]
    asked: dict[str, dict[str, Any]] = {}
    for r in done:
        k = _key(r["query"])
        e = asked.setdefault(k, {"query": r["query"], "count": 0, "refused": 0, "down": 0, "up": 0})
        e["count"] += 1
        e["refused"] += r["answerable"] is False
        if r["feedback"]:
            e[r["feedback"]["rating"]] += 1
    by_count = sorted(asked.values(), key=lambda e: (-e["count"], e["query"]))
    refused = sorted((e for e in asked.values() if e["refused"]), key=lambda e: (-e["refused"], e["query"]))
    down = [{"conversation_id": r["conversation_id"], "turn": r["turn"], "created": r["created"],
             "question": r["question"], "query": r["query"], "answer": r["answer"][:300],
             "comment": r["feedback"]["comment"]} for r in done if r["feedback"] and r["feedback"]["rating"] == "down"]
    lat = [float(r["latency_ms"]) for r in done if r["latency_ms"] is not None]
    return {"days": days, "turns": len(rows), "answered": sum(r["answerable"] is True for r in done),
            "refused": sum(r["answerable"] is False for r in done), "pending_or_failed": len(rows) - len(done),
            "conversations": len({r["conversation_id"] for r in rows}),
            "rewritten": sum(r["rewrite"] != "none" for r in done),
            "feedback": {"up": sum(bool(r["feedback"]) and r["feedback"]["rating"] == "up" for r in done),
                         "down": len(down)},
            "latency_ms": {f"p{p}": _percentile(lat, p) for p in (50, 90, 95, 99)},
            "most_asked": by_count[:top], "refused_questions": refused[:top], "rated_down": down[-top:][::-1]}


CSV_FIELDS = ["created", "conversation_id", "turn", "owner", "question", "query", "rewrite", "status", "answerable",
              "short_answer", "doc_ids", "latency_ms", "model", "mode", "rating", "comment"]


def report_csv(store: ConversationStore, days: float = 30) -> str:
    """One row per turn (the fields above) for a spreadsheet."""
    since = time.time() - days * 86400 if days > 0 else 0.0
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_FIELDS)
    for r in store.turn_rows(since):
        fb = r["feedback"] or {}
        w.writerow([r["created"], r["conversation_id"], r["turn"], r["owner"], r["question"], r["query"],
                    r["rewrite"], r["status"], "" if r["answerable"] is None else int(r["answerable"]),
                    r["short_answer"], " ".join(r["doc_ids"]), r["latency_ms"], r["model"], r["mode"],
                    fb.get("rating", ""), fb.get("comment", "")])
    return out.getvalue()
