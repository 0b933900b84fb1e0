"""Extractive generator rules that need no model."""

from embeddings.fake import HashEmbedder
from rag.answer.extractive import ExtractiveGenerator
from rag.core.types import Sentence


def _scored(*texts: str):  # type: ignore[no-untyped-def]
    return [(1.0, None, Sentence(t, 0, len(t)), 0.9) for t in texts]


def test_numeric_question_needs_a_number_the_question_lacks():
    g = ExtractiveGenerator(HashEmbedder(), {}, 10)
    q = "2023年国考计划招录多少人？"
    assert not g.has_answer_type(q, _scored("以上就是为大家整理的2023年国考招录人数多少人。"))
    assert g.has_answer_type(q, _scored("以上就是整理的内容。", "2023年国考计划招录3.71万人。"))
    assert g.has_answer_type("呼和浩特科技创新指数排名第几？", _scored("呼和浩特位居全区第一。"))
    assert g.has_answer_type("中国工程科技发展战略内蒙古研究院每年安排多少专项经费？",
                             _scored("每年安排1500万元专项经费。"))
    # only the sentences that would be answered count (top 3), and non-numeric questions pass
    assert not g.has_answer_type(q, _scored("无", "无", "无", "共招录3.71万人。"))
    assert g.has_answer_type("百度推出的类ChatGPT是什么？", _scored("百度即将推出一款类似产品。"))


def test_year_conflict_only_when_the_passage_names_other_years():
    from rag.answer.extractive import year_conflict

    assert year_conflict("2021年中国电影市场总票房是多少？", "2022年中国电影市场年度总票房为300.67亿元。")
    assert not year_conflict("2021年中国电影市场总票房是多少？", "2021年全年总票房472.58亿元，2020年为204亿元。")
    assert not year_conflict("2021年中国电影市场总票房是多少？", "今年全国电影总票房472.58亿元。")  # no year named
    assert not year_conflict("中国电影市场总票房是多少？", "2022年总票房为300.67亿元。")  # the question names none


def test_short_answer_must_fit_the_asked_type():
    from rag.answer.reader import fits_type

    assert fits_type("2021年香港GDP增长了多少？", "6.4%")
    assert not fits_type("2021年香港GDP增长了多少？", "香港人均GDP")  # no amount
    assert not fits_type("2022年考研报名人数是多少", "2022")  # a bare year is no amount
    assert fits_type("成果从实验室走向市场要多长时间？", "一两年、三五年")  # a duration, not a date
    assert fits_type("会议什么时候闭幕？", "3月10日") and not fits_type("会议什么时候闭幕？", "北京")
    assert fits_type("谁赢得了大选？", "工党")  # untyped kinds accept any text
    # a question naming a quantity without a wh-word asks for an amount
    assert fits_type("2022年特斯拉交付量", "131万辆") and not fits_type("2022年特斯拉交付量", "大幅增长")
    # a rate needs a percentage, a head count a unit of people
    assert fits_type("2022年重庆的GDP增长率", "4.5%") and not fits_type("2022年重庆的GDP增长率", "01月")
    assert fits_type("国考实际参考人数", "152.5万") and not fits_type("国考实际参考人数", "五年")
    assert fits_type("有多少个团队？占比多少？", "10个")  # two slots: each answer part is not checked alone
    assert not fits_type("2021年宝马全球销量？", "34%") and fits_type("宝马销量同比增长多少？", "8.4%")
    assert not fits_type("网易全年营收多少？", "1") and fits_type("网易全年营收多少？", "964.96亿元")
    assert not fits_type("国庆假期旅游收益是多少？", "7天") and fits_type("项目用了多少年？", "7年")
    assert not fits_type("有多少支队伍参赛", "第九届") and fits_type("排第几？", "第30位")
    assert fits_type("首都是在西元幾年?", "1814年")  # a year question takes a year
    assert not fits_type("示范基地的总投资是多少？", "900亩") and fits_type("示范基地的总投资是多少？", "5000万")
