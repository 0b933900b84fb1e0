"""Training data builders: the held-out split is stable, offsets are repaired, labels point at the answer."""

from __future__ import annotations

import pytest

from training import data
from training.data import Example


def test_heldout_split_is_deterministic_and_about_six_percent():
    ids = [f"TRAIN_{i}_QUERY_0" for i in range(5000)]
    share = sum(data.heldout(i) for i in ids) / len(ids)
    assert 0.04 < share < 0.08
    assert [data.heldout(i) for i in ids[:200]] == [data.heldout(i) for i in ids[:200]]


@pytest.mark.parametrize("start,expected", [(3, 3), (0, 3), (20, 12), (12, 12), (-1, 3)])
def test_wrong_answer_start_is_refound_nearest(start, expected):
    ctx = "今年的2000元和后来的2000元"
    assert data._fix_start(ctx, "2000元", start) == expected


def test_negative_from_gold_paragraph_drops_the_answer_sentence():
    ctx = ("第一句讲别的事情，内容足够长足够长足够长。答案在这里：1963年被任为主教。"
           "第三句又讲别的事情，也足够长足够长足够长。")
    ex = Example("q", "什么时候任主教？", ctx, "1963年", ctx.index("1963年"), "zh-Hans", "t")
    neg = data._cut_answer_sentence(ex)
    assert "1963年" not in neg and "第一句" in neg and "第三句" in neg


def test_windows_label_the_answer_tokens_and_null_windows(real_tokenizer):
    from training.features import windows

    ctx = "范廷颂是越南罗马天主教枢机。" * 30 + "1963年被任为主教。" + "他后来成为总主教。" * 30
    ex = Example("q1", "范廷颂是什么时候被任为主教的？", ctx, "1963年", ctx.index("1963年"), "zh-Hans", "t")
    neg = Example("q2", "问题", "无关的段落。" * 10, "", -1, "zh-Hans", "t")
    feats = windows(real_tokenizer, [ex, neg], max_len=128, stride=32, spare_share=1.0)
    pos = [f for f in feats if f.relevant]
    assert len(pos) == 1  # overlapping windows repeat the answer: one is kept
    f = pos[0]
    assert real_tokenizer.decode(f.input_ids[f.start:f.end + 1]).replace(" ", "") == "1963年"
    nulls = [f for f in feats if not f.relevant]
    assert nulls and all(f.start == 0 and f.end == 0 for f in nulls)
