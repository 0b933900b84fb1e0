import math

import pytest

from eval import metrics as m


def test_ranking_metrics():
    ranked = ["a", "b", "c", "d"]
    assert m.recall_at_k(ranked, {"c"}, 2) == 0.0 and m.recall_at_k(ranked, {"c"}, 3) == 1.0
    assert m.recall_at_k(ranked, {"a", "z"}, 4) == 0.5
    assert m.mrr_at_k(ranked, {"c"}) == pytest.approx(1 / 3)
    assert m.ndcg_at_k(ranked, {"a"}) == 1.0
    assert m.ndcg_at_k(ranked, {"b"}) == pytest.approx(1 / math.log2(3))
    with pytest.raises(ValueError):
        m.recall_at_k(ranked, set(), 5)


def test_answer_metrics_fold_script_width_and_punctuation():
    assert m.exact_match("１５００萬元。", ["1500万元"]) == 1.0
    assert m.char_f1("每年1500万元", ["1500万元"]) == pytest.approx(2 * (6 / 8) * 1 / (6 / 8 + 1))
    assert m.char_f1("", ["x"]) == 0.0
    assert m.contains_all("平台72个，项目436项", ["72个", "436项"]) == 1.0
    assert m.contains_all("平台72个", ["72个", "436项"]) == 0.5


def test_citation_scores():
    p, r = m.citation_scores(["每年安排1500万元专项经费", "无关内容"], ["1500万元专项经费"])
    assert (p, r) == (0.5, 1.0)
    assert m.citation_scores([], ["x"]) == (0.0, 0.0)


def test_percentile():
    assert m.percentile([5, 1, 3, 2, 4], 50) == 3
    assert m.percentile([1, 2, 3, 4, 100], 95) == 100
