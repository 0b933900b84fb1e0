"""The multi-turn gold set (eval/gold/multiturn.jsonl, issue 16): its shape, and every gold answer written from
the seed texts (found in each document it names), so a score is never lost to a typo in the gold."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from eval.metrics import norm_answer
from eval.multiturn import HELDOUT, HELDOUT2, HELDOUT3, KINDS, load, summarize

SEEDS = Path(__file__).resolve().parents[2] / "seeds"


def test_gold_conversations_cover_every_kind_and_language() -> None:
    convs = load()
    assert len(convs) >= 60 and len({c.cid for c in convs}) == len(convs)
    kinds = Counter((c.lang, t.kind) for c in convs for t in c.turns[1:])
    for lang in ("zh-Hans", "zh-Hant", "en"):
        for kind in KINDS:
            assert kinds[(lang, kind)] >= 1, (lang, kind)


@pytest.mark.parametrize("path", [HELDOUT, HELDOUT2, HELDOUT3], ids=["heldout", "heldout2", "heldout3"])
def test_held_out_sets_are_new_and_cover_every_kind_and_language(path: Path) -> None:
    """The held-out sets: each written before a round of rule changes; none of their questions is in another
    set."""
    held = load(path)
    others = [c for p in {None, HELDOUT, HELDOUT2, HELDOUT3} - {path} for c in (load(p) if p else load())]
    assert len(held) >= 30 and len({c.cid for c in held}) == len(held)
    assert not {c.cid for c in held} & {c.cid for c in others}
    assert not {t.question for c in held for t in c.turns} & {t.question for c in others for t in c.turns}
    kinds = Counter((c.lang, t.kind) for c in held for t in c.turns[1:])
    for lang in ("zh-Hans", "zh-Hant", "en"):
        for kind in KINDS:
            assert kinds[(lang, kind)] >= 1, (lang, kind)


@pytest.mark.parametrize("path", [None, HELDOUT, HELDOUT2, HELDOUT3], ids=["tuning", "heldout", "heldout2", "heldout3"])
def test_gold_answers_are_in_the_documents_they_name(path: Path | None) -> None:
    texts = {p.name: norm_answer(p.read_text(encoding="utf-8")) for p in SEEDS.iterdir()}
    for c in (load(path) if path else load()):
        for t in c.turns:
            for doc in t.docs:
                assert any(norm_answer(a) in texts[doc] for a in t.answers), (c.cid, t.question, doc)


def test_summary_separates_first_turns_follow_ups_and_switches() -> None:
    def row(turn: int, kind: str, correct: float, res: str, rewrite: str = "none") -> dict[str, object]:
        return {"conv": "m1", "lang": "en", "turn": turn, "kind": kind, "resolution": res, "rewrite": rewrite,
                "correct": correct, "contains": correct, "doc": 1.0, "f1": correct}
    rows = [row(1, "first", 1.0, r) for r in ("on", "off")] + [
        row(2, "switch", 0.0, "on", "rules"), row(2, "switch", 1.0, "off"),
        row(2, "ellipsis", 1.0, "on", "rules"), row(2, "ellipsis", 0.0, "off")]
    s = summarize(rows)
    assert s["on"]["first"]["correct"] == 1.0 and s["on"]["follow_up"]["correct"] == 0.5 and s["on"]["gap"] == 0.5
    assert s["on"]["switch_dragged_back"] == 1 and s["off"]["switch_dragged_back"] == 0
    assert s["on"]["by_kind"]["switch"] == {"n": 1, "correct": 0.0}
    assert s["off"]["by_kind"]["ellipsis"] == {"n": 1, "correct": 0.0}
