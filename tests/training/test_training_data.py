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


def _squad(path, lang_q, n):  # type: ignore[no-untyped-def]
    import json

    paras = []
    for i in range(n):
        short, long = f"{i}号", f"第{i}个很长很长的答案片段内容"
        ctx = f"段落{i}讲了一件事。答案是{short}。另外说明：{long}。其余内容足够长足够长足够长足够长。"
        paras.append({"context": ctx, "qas": [
            {"id": f"{lang_q}_{i}_s", "question": f"问题{i}的编号？", "answers": [{"text": short,
                                                                             "answer_start": ctx.index(short)}]},
            {"id": f"{lang_q}_{i}_l", "question": f"问题{i}的说明？", "answers": [{"text": long,
                                                                             "answer_start": ctx.index(long)}]}]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": paras}]}, ensure_ascii=False), encoding="utf-8")


def test_concise_answer_filter_applies_to_training_only(tmp_path):
    _squad(tmp_path / "cmrc2018_train" / "cmrc2018_train.filtered.json", "TRAIN", 120)
    _squad(tmp_path / "policyqa_en" / "dev.json", "EN", 5)
    _squad(tmp_path / "policyqa_en" / "test.json", "ENT", 5)
    every = data.build(200, 40, 0, 0.0, 0, "train", tmp_path)
    concise = data.build(50, 40, 0, 0.0, 0, "train", tmp_path, max_answer_chars=6)
    assert max(len(e.answer) for e in every if e.lang != "en") > 6
    zh = [e for e in concise if e.lang != "en"]
    assert zh and all(len(e.answer) <= 6 for e in zh)
    assert any(e.lang == "zh-Hant" for e in zh)
    dev = data.build(200, 40, 0, 0.0, 0, "dev", tmp_path, max_answer_chars=6)  # the held-out split stays whole
    assert max(len(e.answer) for e in dev if e.lang != "en") > 6


def test_concise_share_mixes_short_and_long_answers(tmp_path):
    _squad(tmp_path / "cmrc2018_train" / "cmrc2018_train.filtered.json", "TRAIN", 120)
    _squad(tmp_path / "policyqa_en" / "dev.json", "EN", 5)
    _squad(tmp_path / "policyqa_en" / "test.json", "ENT", 5)
    mixed = data.build(60, 20, 0, 0.0, 0, "train", tmp_path, max_answer_chars=6, concise_share=0.75)
    zh = [e for e in mixed if e.lang != "en"]
    short = sum(len(e.answer) <= 6 for e in zh)
    assert len(zh) == 80 and short == 60  # 0.75 of the 80 Chinese questions concise, the rest long
