"""The short-answer reader (rag/answer/reader.py) on hand-made sentences: no model, no index."""

from __future__ import annotations

import pytest

from rag.answer.extractive import query_terms
from rag.answer.reader import analyse, read
from rag.core.types import Chunk, Hit, Sentence


def ranked(*texts: str) -> list[tuple[float, Hit, Sentence, float]]:
    """Sentences as ExtractiveGenerator.score returns them, best first, all in one chunk."""
    sents, pos = [], 0
    for t in texts:
        sents.append(Sentence(t, pos, pos + len(t)))
        pos += len(t)
    chunk = Chunk(0, "d", "".join(texts), 0, pos, sentences=sents)
    hit = Hit(chunk, 1.0, 1)
    return [(1.0 - i * 0.1, hit, s, 0.9) for i, s in enumerate(sents)]


@pytest.mark.parametrize("query, sentences, expected", [
    # number with the unit the question asks for, not the question's own number
    ("到2025年内蒙古储能装机将突破多少？",
     ["到2025年，内蒙古储能装机将突破2000万千瓦。"], "2000万千瓦"),
    # the right context picks among several amounts: "[57.4%]的高新技术企业"
    ("呼包鄂自主创新示范区集聚了全区多大比例的高新技术企业？",
     ["呼包鄂自主创新示范区集聚了全区50%的科研机构、57.4%的高新技术企业、62.3%的高校。"], "57.4%"),
    # the answer stands in the neighbouring sentence of the best-matching one
    ("袁隆平院士团队在内蒙古示范推广的耐盐碱水稻亩产达到多少？",
     ["这是袁隆平院士团队在内蒙古示范推广的耐盐碱水稻产量新高度。", "亩产715.3公斤！"], "715.3公斤"),
    # open question: the gap between the question's left and right context
    ("鄂爾多斯實驗室以哪些領域為主要科研方向？",
     ["鄂爾多斯實驗室以可再生能源與現代煤化工為主要科研方向。"], "可再生能源與現代煤化工"),
    # the wh-phrase's head noun belongs to the answer
    ("内蒙古打造了哪个实验室？", ["内蒙古打造大青山实验室，服务新能源。"], "大青山实验室"),
    # a date question wants a date, not another number
    ("京蒙两地政府是什么时候签订框架协议的？",
     ["2023年6月，京蒙两地政府签订框架协议，共建36个平台。"], "2023年6月"),
    # the post is written before the name
    ("在发布会上介绍新政策的王立新担任什么职务？",
     ["河北省科技厅党组成员、副厅长王立新表示，新政策下月实施。"], "副厅长"),
    # 排第几 asks for an ordinal, not the count next to it
    ("该市创新指数在全国120个城市中排第几？",
     ["在全国120个城市中，该市创新指数排名第15位，较上年提升3位。"], "第15位"),
    # 哪几家 names the entities, not their count; the count+noun tail is trimmed
    ("该区从上海引入了哪几家生物医药企业？",
     ["该区从上海引入甲乙制药、丙丁生物2家生物医药企业落户园区。"], "甲乙制药、丙丁生物"),
    # 哪两位 lists both names
    ("学院聘请了哪两位院士担任顾问？",
     ["学院聘请院士李建国、赵明华担任顾问，指导学科建设。"], "李建国；赵明华"),
    # 的-modifiers before the noun asked for are dropped; an unclosed aside is cut
    ("他回国前在哪所大学任教？", ["他回国前在全美排名第三的斯坦福大学任教。"], "斯坦福大学"),
    ("新材料替代了哪种包装材料？",
     ["新材料替代了PET(常用饮料瓶材料，已在多家企业应用。"], "PET"),
    # the question's light verb is missing from the passage ("亩产[达到]多少")
    ("示范田玉米亩产达到多少？", ["据测产，示范田玉米亩产1250公斤。"], "1250公斤"),
    # reordered open question: the run between the question's words that is none of them
    ("甲公司与哪个机构联合研发了储热系统？",
     ["甲公司联合中国科学院某研究所，研发出储热系统，已投入使用。"], "中国科学院某研究所"),
])
def test_short_answer(query, sentences, expected):
    a = read(query, ranked(*sentences), query_terms(query))
    assert a is not None and a.text == expected


def test_multi_fact_returns_each_asked_unit():
    q = "累计建成了多少个创新平台、实施了多少项科技合作项目？"
    a = read(q, ranked("已累计建成创新平台72个，实施科技合作项目436项。"), query_terms(q))
    assert a is not None and a.text == "72个；436项"


def test_nothing_fits_gives_none():
    q = "项目总投资是多少？"
    assert read(q, ranked("项目进展顺利，各方积极配合。"), query_terms(q)) is None


def test_question_analysis():
    assert analyse("什么时候开工？").kind == "date" and analyse("首都是在西元幾年?").kind == "date"
    assert analyse("How much total investment does the project involve?").money
    assert analyse("有多少名技术经纪人和科技特派员？").slots == 2
    assert analyse("谁担任主任？").kind == "person"
    assert analyse("2022年特斯拉交付量").kind == "number" and analyse("交付量是什么意思").kind == "open"


@pytest.mark.parametrize(("question", "sentences", "want"), [
    ("How many teams were formed?", ["The lab formed 12 research teams in 2021."], "12"),
    ("How much did the city invest?", ["In 2023 the city invested 4.5 billion yuan in the park."], "4.5 billion yuan"),
    ("When did construction start?", ["Construction started on March 3, 2022 after approval."], "March 3, 2022"),
    ("Who leads the project?", ["The project is led by Dr. Li Ming of the academy."], "Dr. Li Ming"),
    ("How many teams were formed in 2021?", ["In 2021 the lab was opened."], None),  # its own year is no answer
    ("Who leads the Ordos Laboratory?", ["The Ordos Laboratory opened."], None),  # the question's own name
    ("What does the plan cover?", ["The plan covers 12 cities."], None),  # open questions get no span
])
def test_english_reader(question, sentences, want):
    from rag.answer.reader_en import read_english

    ranked = []
    for i, text in enumerate(sentences):
        chunk = Chunk(i, "d.txt", text, 0, len(text), sentences=[Sentence(text, 0, len(text))])
        ranked.append((1.0, Hit(chunk, 1.0, i + 1), chunk.sentences[0], 0.9))
    got = read_english(question, ranked)
    assert (got.text if got else None) == want
