"""Follow-up resolution rules (rag/answer/conversation.py, issue 16): pure, no model, no index."""

from __future__ import annotations

import pytest

from rag.answer.conversation import (
    Turn,
    check_condensed,
    condense_messages,
    prefer_documents,
    resolve,
    rule_rewrite,
    suggest,
    trim,
)
from rag.core.types import Chunk, Hit

DIRECTOR = "鄂尔多斯实验室的主任是谁？"
TRANSFER = "呼和浩特市共培育了多少家技术转移机构？"


@pytest.mark.parametrize(("prev", "question", "expected", "kind"), [
    # the examples
    (DIRECTOR, "他是哪所大学的教授？", "鄂尔多斯实验室的主任是哪所大学的教授？", "pronoun"),
    (TRANSFER, "那新型研发机构呢？", "呼和浩特市共培育了多少家新型研发机构？", "ellipsis"),
    # the same without 那, and as a bare noun phrase
    (TRANSFER, "新型研发机构呢", "呼和浩特市共培育了多少家新型研发机构？", "ellipsis"),
    (TRANSFER, "新型研发机构？", "呼和浩特市共培育了多少家新型研发机构？", "ellipsis"),
    # another place, a year, a title with the same head noun
    (TRANSFER, "那包头市呢？", "包头市共培育了多少家技术转移机构？", "ellipsis"),
    (TRANSFER, "2023年呢？", "2023年呼和浩特市共培育了多少家技术转移机构？", "ellipsis"),
    (DIRECTOR, "那副主任呢？", "鄂尔多斯实验室的副主任是谁？", "ellipsis"),
    # it / its / 该 + noun / 这个 + noun
    (DIRECTOR, "它的主要科研方向是什么？", "鄂尔多斯实验室的主要科研方向是什么？", "pronoun"),
    (DIRECTOR, "其主要科研方向是什么？", "鄂尔多斯实验室的主要科研方向是什么？", "pronoun"),
    (DIRECTOR, "该实验室以什么为主要科研方向？", "鄂尔多斯实验室以什么为主要科研方向？", "pronoun"),
    ("京津冀国家技术创新中心精准对接了多少个项目？", "这个中心的助理主任是谁？",
     "京津冀国家技术创新中心的助理主任是谁？", "pronoun"),
    # traditional stays traditional
    ("鄂尔多斯實驗室的主任是誰？", "他是哪所大學的教授？", "鄂尔多斯實驗室的主任是哪所大學的教授？", "pronoun"),
    ("呼和浩特市共培育了多少家技術轉移機構？", "那新型研發機構呢？", "呼和浩特市共培育了多少家新型研發機構？",
     "ellipsis"),
    # English
    ("Who is the director of the Ordos Laboratory?", "Which university is he a professor at?",
     "Which university is the director of the Ordos Laboratory a professor at?", "pronoun"),
    ("How many technology transfer institutions has Hohhot cultivated?", "What about new R&D institutions?",
     "How many new R&D institutions has Hohhot cultivated?", "ellipsis"),
    ("How many technology transfer institutions has Hohhot cultivated?", "What about Baotou?",
     "How many technology transfer institutions has Baotou cultivated?", "ellipsis"),
    ("What is the main research direction of the Ordos Laboratory?", "When was it unveiled?",
     "When was the Ordos Laboratory unveiled?", "pronoun"),
])
def test_follow_ups_are_made_standalone(prev: str, question: str, expected: str, kind: str) -> None:
    r = rule_rewrite(question, [Turn(prev, doc_ids=["000.txt", "000.txt"])])
    assert (r.query, r.method, r.kind) == (expected, "rules", kind)
    assert r.rewritten and r.question == question
    assert r.doc_ids == ["000.txt"]  # the previous turn's documents carried (once)


@pytest.mark.parametrize(("prev", "question"), [
    (DIRECTOR, "内蒙古打造了多少个产业集群？"),  # a topic switch
    (DIRECTOR, "其他城市有哪些实验室？"),  # 其他 is not 其
    (TRANSFER, "因此，呼和浩特市应该如何培育新型研发机构？"),  # 因此 / 应该 are not 此 / 该
    (TRANSFER, "京蒙两地政府是什么时候签订《全面深化京蒙协作框架协议》的？"),
    ("Who is the director of the Ordos Laboratory?", "How many industrial clusters has Inner Mongolia built?"),
])
def test_self_contained_questions_are_left_alone(prev: str, question: str) -> None:
    r = rule_rewrite(question, [Turn(prev, doc_ids=["000.txt"])])
    assert (r.query, r.method, r.kind, r.doc_ids) == (question, "none", "", [])
    assert not r.rewritten


@pytest.mark.parametrize(("prev", "question", "expected"), [
    # the attribute asked about is replaced (not the whole question put in brackets after X)
    ("乌兰察布智能算力项目的总投资是多少？", "总建筑面积呢？", "乌兰察布智能算力项目的总建筑面积是多少？"),
    ("国家乳业技术创新中心拥有几个研究中心？", "服务平台呢？", "国家乳业技术创新中心拥有几个服务平台？"),
    # ... and the measure word of the old attribute goes with it; a year keeps its 年
    ("2023年呼和浩特市新增了多少个自治区级技术转移载体？", "那技术经纪人呢？",
     "2023年呼和浩特市新增了多少技术经纪人？"),
    # a level replaces the level
    ("该公司团队中有多少名初级技术经纪人？", "中级的呢？", "该公司团队中有多少名中级技术经纪人？"),
    ("呼和浩特市目前拥有多少个国家级创新平台？", "市级呢？", "呼和浩特市目前拥有多少个市级创新平台？"),
    # a place replaces the whole place name, not one of its tokens
    ("中科赤峰产业创新研究院柔性引进了多少名中国科学院专家？", "呼伦贝尔市呢？",
     "呼伦贝尔市产业创新研究院柔性引进了多少名中国科学院专家？"),
    # names kept whole
    ("内蒙古工业大学科创中心智能装备研究院的院长是谁？", "该研究院组建了国内首支什么科研团队？",
     "内蒙古工业大学科创中心智能装备研究院组建了国内首支什么科研团队？"),
    ("乌海市氢冶金研究孵化中心是内蒙古与哪家单位共同打造的？", "它促成落地的是什么技术工艺？",
     "乌海市氢冶金研究孵化中心促成落地的是什么技术工艺？"),
    # no subject of its own: the previous question's subject, without the attribute it asked for
    ("简耘科技自研的马铃薯全生命周期决策模型可实现节肥多少？", "产量能提升多少？",
     "简耘科技自研的马铃薯全生命周期决策模型产量能提升多少？"),
    # a two-character verb before an adverb heads the attribute (产能 将); a verb before 的 is not in the name
    ("到2025年內蒙古綠氫產能將達到多少？", "儲能裝機呢？", "到2025年內蒙古儲能裝機將達到多少？"),
    ("鄂爾多斯實驗室研製的儲熱材料熱循環效率大於多少？", "它由哪所大學與鄂爾多斯市政府合作建設？",
     "鄂爾多斯實驗室由哪所大學與鄂爾多斯市政府合作建設？"),
    # English: the level word, the attribute asked about
    ("How many national-level innovation platforms does Hohhot have?", "And autonomous-region-level ones?",
     "How many autonomous-region-level innovation platforms does Hohhot have?"),
    ("What is the total investment of the intelligent computing project in Ulanqab?", "What about its floor area?",
     "What is the floor area of the intelligent computing project in Ulanqab?"),
])
def test_the_slot_the_follow_up_fills(prev: str, question: str, expected: str) -> None:
    assert rule_rewrite(question, [Turn(prev)]).query == expected


@pytest.mark.parametrize(("prev", "question"), [
    # a question with its own subject and question word is new, whatever it opens with
    (DIRECTOR, "那么内蒙古的科技进步贡献率如何？"),
    ("呼和浩特市共培育了多少家技術轉移機構？", "那內蒙古打造了多少個產業集群呢？"),
    (TRANSFER, "那鄂尔多斯市新增了多少家“三清零”企业？"),
    ("How much special funding does the strategic research institute co-built with the Chinese Academy of "
     "Engineering receive each year?",
     "And how many key laboratories in Inner Mongolia have achieved original results?"),
])
def test_topic_switches_are_not_dragged_back(prev: str, question: str) -> None:
    r = rule_rewrite(question, [Turn(prev, doc_ids=["000.txt"])])
    assert (r.query, r.method, r.doc_ids) == (question, "none", [])


# Round 4 (issue 16): general rules found from held-out set 2's resolver failures; the examples here are none of
# the gold sets' questions, so each rule is shown on a case it was not written from.
@pytest.mark.parametrize(("prev", "question", "expected"), [
    # 那 glued to a pronoun by jieba (那它, 那他) is still the pronoun
    ("鄂尔多斯实验室的主任是谁？", "那它的主要科研方向是什么？", "那鄂尔多斯实验室的主要科研方向是什么？"),
    ("鄂尔多斯实验室的技术副主任是谁？", "那他是哪一年入职的？", "那鄂尔多斯实验室的技术副主任是哪一年入职的？"),
    # 这家/这所 + a noun the previous question lacks: the institution it named, whole (a numeral inside a name)
    ("内蒙古二机集团今年的研发投入是多少？", "这家企业有多少员工？", "内蒙古二机集团有多少员工？"),
    # a name jieba does not know (tagged as a verb) stays with the noun after it
    ("简耘科技在哪里建设了示范基地？", "它的服务面积有多大？", "简耘科技的服务面积有多大？"),
    # a phrase of the same preposition replaces the old one up to its localizer; the verb after it stays
    ("包头市的研发投入在全区各盟市中排第几？", "那在全国呢？", "包头市的研发投入在全国排第几？"),
    ("赤峰市的专利数量在全区各盟市中排第几？", "那在西部地区中呢？", "赤峰市的专利数量在西部地区中排第几？"),
    # a rate keeps its head: x replaces what it is the rate of
    ("全区工业企业设备联网率达到多少？", "关键工序呢？", "关键工序联网率达到多少？"),
    # English: "it" is the first proper name, not an acronym; a closing "that" is the previous question's matter
    ("How much did the AI investment in Baotou grow?", "How many jobs did it create?",
     "How many jobs did Baotou create?"),
    ("How many technology brokers did Hohhot train in 2023?", "What percentage is that?",
     "What percentage is technology brokers Hohhot train 2023?"),
    # X's attribute that the previous question asked about: still an ellipsis
    ("甘肃省2022年马铃薯播种面积是多少？", "那宁夏的播种面积呢？", "甘肃省2022年宁夏的播种面积是多少？"),
])
def test_round_4_rules(prev: str, question: str, expected: str) -> None:
    assert rule_rewrite(question, [Turn(prev)]).query == expected


@pytest.mark.parametrize(("prev", "question"), [
    # a new subject with its own attribute (X的Y呢, what about X's Y): a topic switch, left alone
    ("甘肃省2022年马铃薯播种面积是多少？", "那包头市的稀土产值呢？"),
    ("How many potato varieties did Gansu exchange with Russia?", "What about Baotou's rare earth output value?"),
    ("How many potato varieties did Gansu exchange with Russia?", "What about Ordos's coal output by 2025?"),
])
def test_a_new_subject_with_its_own_attribute_is_a_switch(prev: str, question: str) -> None:
    r = rule_rewrite(question, [Turn(prev)])
    assert (r.query, r.method) == (question, "none")
    # the same follow-up asking the previous attribute is rewritten
    same = question.replace("稀土产值", "播种面积").replace("rare earth output value", "varieties")
    if same != question:
        assert rule_rewrite(same, [Turn(prev)]).method == "rules"


def test_a_pronoun_chain_keeps_its_person() -> None:
    first = Turn("金宇保灵的研发平台总监是谁？", short_answer="李劫")
    second = rule_rewrite("他曾在哪所大学就职？", [first])
    assert second.query == "金宇保灵的研发平台总监李劫曾在哪所大学就职？"  # not 金宇 (jieba's cut of 金宇保灵)
    h = [first, Turn("他曾在哪所大学就职？", query=second.query)]
    assert rule_rewrite("他是哪一年回国的？", h).query == "金宇保灵的研发平台总监李劫是哪一年回国的？"
    en = [Turn("Who is the R&D platform director at Jinyu Baoling?")]
    q2 = rule_rewrite("Which university did he work at before?", en).query
    assert q2 == "Which university did the R&D platform director at Jinyu Baoling work at before?"
    en.append(Turn("Which university did he work at before?", query=q2))
    assert rule_rewrite("When did he return to China?", en).query == \
        "When did the R&D platform director at Jinyu Baoling return to China?"
    r = rule_rewrite("Who is its assistant director?", [Turn(
        "How many projects has the Hohhot Innovation Center of the Beijing-Tianjin-Hebei National Technology "
        "Innovation Center matched?")])
    assert r.query == ("Who is the Hohhot Innovation Center of the Beijing-Tianjin-Hebei National Technology "
                       "Innovation Center's assistant director?")  # the English name kept whole


def test_no_history_no_rewrite() -> None:
    assert rule_rewrite("他是哪所大学的教授？", []).query == "他是哪所大学的教授？"


def test_short_answer_name_and_chained_follow_ups() -> None:
    r = rule_rewrite("他是哪所大学的教授？", [Turn(DIRECTOR, short_answer="魏飞")])
    assert r.query == "鄂尔多斯实验室的主任魏飞是哪所大学的教授？"
    # the third turn builds on the second turn's standalone query, not on its elliptical wording
    h = [Turn(TRANSFER), Turn("那新型研发机构呢？", query="呼和浩特市共培育了多少家新型研发机构？")]
    assert rule_rewrite("那包头市呢？", h).query == "包头市共培育了多少家新型研发机构？"
    # English: "his" takes the possessive
    r = rule_rewrite("What is his title?", [Turn("Who is the director of the Ordos Laboratory?")])
    assert r.query == "What is the director of the Ordos Laboratory's title?"


def test_bare_measure_is_asked_of_the_previous_subject() -> None:
    r = rule_rewrite("多少家？", [Turn("呼和浩特市共建设了新型研发机构？")])
    assert r.kind == "measure" and r.query.startswith("呼和浩特市") and "多少家" in r.query


def test_trim_drops_oldest_and_says_so() -> None:
    h = [Turn(f"q{i}") for i in range(7)]
    kept, warn = trim(h, 5)
    assert [t.question for t in kept] == ["q2", "q3", "q4", "q5", "q6"]
    assert warn and "oldest 2" in warn[0]
    assert trim(h, 10) == (h, [])


# -- the LLM condense step: verified, falling back to the rules -------------------------------------------------
def test_condense_used_when_it_keeps_the_questions_terms() -> None:
    def llm(messages):  # type: ignore[no-untyped-def]
        assert messages[0]["role"] == "system" and DIRECTOR in messages[1]["content"]
        assert "他是哪所大学的教授？" in messages[1]["content"]
        return "独立问题：鄂尔多斯实验室主任魏飞是哪所大学的教授？"

    r = resolve("他是哪所大学的教授？", [Turn(DIRECTOR, doc_ids=["a"])], condense=llm)
    assert (r.query, r.method, r.doc_ids, r.warnings) == ("鄂尔多斯实验室主任魏飞是哪所大学的教授？", "llm", ["a"], [])


def test_condense_dropping_the_new_terms_falls_back_to_rules() -> None:
    r = resolve("那新型研发机构呢？", [Turn(TRANSFER)], condense=lambda m: "呼和浩特市共培育了多少家技术转移机构？")
    assert r.method == "rules" and r.query == "呼和浩特市共培育了多少家新型研发机构？"
    assert r.warnings and "新型" in r.warnings[0] and "rule-based" in r.warnings[0]


def test_condense_error_or_timeout_falls_back_to_rules() -> None:
    def slow(messages):  # type: ignore[no-untyped-def]
        raise TimeoutError("LLM request deadline reached")

    r = resolve("他是哪所大学的教授？", [Turn(DIRECTOR)], condense=slow)
    assert r.method == "rules" and r.query == "鄂尔多斯实验室的主任是哪所大学的教授？"
    assert "TimeoutError" in r.warnings[0]


def test_condense_not_called_for_a_self_contained_question() -> None:
    calls: list[object] = []

    def llm(messages: list[dict[str, object]]) -> str:
        calls.append(messages)
        return "x"

    r = resolve("内蒙古打造了多少个产业集群？", [Turn(DIRECTOR)], condense=llm)
    assert r.method == "none" and calls == []


def test_check_condensed() -> None:
    good = "呼和浩特市有多少家新型研发机构？"
    assert check_condensed("那新型研发机构呢？", good) == (good, "")
    assert check_condensed("那新型研发机构呢？", "")[1] == "empty"
    assert check_condensed("那新型研发机构呢？", "呼和浩特市\n新型研发机构")[1] == "not a single question"
    assert check_condensed("What about Baotou?", "How many institutions has Hohhot?")[0] == ""
    assert check_condensed("What about Baotou?", '"How many institutions has Baotou cultivated?"')[0] == \
        "How many institutions has Baotou cultivated?"
    assert len(condense_messages("q", [Turn(str(i)) for i in range(9)])[1]["content"].split("Q: ")) == 4


def test_prefer_documents_moves_previous_documents_up() -> None:
    hits = [Hit(Chunk(i, doc, "t", 0, 1), 1.0 / (i + 1), i + 1) for i, doc in enumerate("bbcadb")]
    out = prefer_documents(hits, ["a"], 4)
    assert [h.chunk.doc_id for h in out] == ["b", "a", "b", "c"]  # a: from 4th to 2nd
    assert [h.rank for h in out] == [1, 2, 3, 4]
    assert [h.chunk.doc_id for h in prefer_documents(hits, [], 3)] == ["b", "b", "c"]


def test_suggested_follow_ups_come_from_the_passages() -> None:
    p1 = ("近年来，呼和浩特市共建设了上海交大呼和浩特科创中心等20余家新型研发机构，"
          "企业联合校外高校院所组建了17家产业技术创新联合体。截至目前，全市共培育技术转移机构34家。")
    p2 = "实验室集聚顶尖科学家,共组建10个科学家团队,“双一流”高校毕业生占比达61%。"
    got = suggest(TRANSFER, [p1, p2], answer="34家")
    assert got == ["呼和浩特市共建设了上海交大呼和浩特科创中心等多少家新型研发机构？",
                   "企业联合校外高校院所组建了多少家产业技术创新联合体？",
                   "“双一流”高校毕业生占比达多少？"]  # not "呼和浩特市共组建…": p2 is not about Hohhot
    # the answer's own clause, questions already asked and clauses without a count are not suggested
    assert all("技术转移机构" not in q for q in got)
    p3 = "鄂尔多斯实验室集聚顶尖科学家,共组建10个科学家团队,“双一流”高校毕业生占比达61%。"
    assert suggest(DIRECTOR, [p3]) == ["鄂尔多斯实验室共组建多少个科学家团队？", "“双一流”高校毕业生占比达多少？"]
    assert suggest(DIRECTOR, [p3], asked=["鄂尔多斯实验室共组建多少个科学家团队"]) == ["“双一流”高校毕业生占比达多少？"]
    assert suggest(DIRECTOR, ["鄂尔多斯实验室以可再生能源与现代煤化工为主要科研方向。"]) == []
    assert len(suggest(TRANSFER, [p1, p2], n=1)) == 1
