"""Dictionary query translation for English questions (rag/search/crosslingual.py)."""

from __future__ import annotations

from rag.search.crosslingual import Translator, create_translator

ENTRIES = [
    {"simplified": "包头", "pinyin": "Bao1 tou2", "definitions": ["Baotou prefecture-level city in Inner Mongolia"]},
    {"simplified": "稀土", "pinyin": "xi1 tu3", "definitions": ["rare earth (chemistry)"]},
    {"simplified": "产值", "pinyin": "chan3 zhi2", "definitions": ["value of output", "output value"]},
    {"simplified": "产业", "pinyin": "chan3 ye4", "definitions": ["industry"]},
    {"simplified": "工业", "pinyin": "gong1 ye4", "definitions": ["industry"]},
    {"simplified": "创新", "pinyin": "chuang4 xin1", "definitions": ["innovation", "to innovate"]},
    {"simplified": "平台", "pinyin": "ping2 tai2", "definitions": ["platform"]},
    {"simplified": "张", "pinyin": "Zhang1", "definitions": ["surname Zhang"]},
    {"simplified": "永", "pinyin": "yong3", "definitions": ["forever"]},
    {"simplified": "峰", "pinyin": "feng1", "definitions": ["peak"]},
    {"simplified": "蒙", "pinyin": "meng2", "definitions": ["to cover"]},
    {"simplified": "科", "pinyin": "ke1", "definitions": ["branch of study"]},
    {"simplified": "聚", "pinyin": "ju4", "definitions": ["to gather"]},
]
VOCAB = ["包头", "稀土", "产值", "产业", "创新", "平台", "张永峰", "蒙科聚", "2021", "预计"]


def test_words_phrases_and_names_become_vocabulary_terms():
    tr = Translator(VOCAB, ENTRIES)
    terms = tr("What annual output value was Baotou's rare earth industry expected to exceed in 2021?")
    assert {"产值", "包头", "稀土", "产业", "2021"} <= set(terms)
    assert "工业" not in terms  # not in the index vocabulary: never a query term
    # plural stemmed; names absent from the dictionary matched by the pinyin of vocabulary words
    assert set(tr("innovation platforms of Zhang Yongfeng and Mengkeju")) == {"创新", "平台", "张永峰", "蒙科聚"}
    assert tr("How are you?") == []


def test_real_dictionary_translates_place_names_and_terms():
    tr = create_translator(["呼和浩特", "呼和浩特市", "创新", "平台", "收入", "马铃薯"])
    assert tr is not None
    assert {"呼和浩特", "创新", "平台"} <= set(tr("How many innovation platforms does Hohhot have?"))
    assert "马铃薯" in tr("potato germplasm resources")
