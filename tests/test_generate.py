"""Extractive generator rules that need no model."""

from embeddings.fake import HashEmbedder
from rag.generate import ExtractiveGenerator
from rag.types import Sentence


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
