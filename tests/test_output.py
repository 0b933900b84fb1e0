"""rag/output.py: citations carry the article path of structured documents and a ready label."""

from __future__ import annotations

from rag.core.types import Chunk, Citation, Hit
from rag.output import CitationOut, Passage, label


def test_label_uses_the_innermost_article():
    assert label("内蒙古自治区科技创新办法", "第三章 > 第十二条") == "《内蒙古自治区科技创新办法》第十二条"
    assert label("《通知》", "") == "《通知》"
    assert label("", "") == ""


def test_citation_and_passage_carry_the_path():
    ch = Chunk(7, "d1", "第十二条 专项资金……", 10, 30, title="科技创新办法", path="第三章 > 第十二条")
    h = Hit(ch, 0.5, 1)
    c = CitationOut.from_citation(Citation(1, h, "专项资金……", 15, 20))
    assert c.path == "第三章 > 第十二条" and c.label == "《科技创新办法》第十二条"
    assert Passage.from_hit(h).path == "第三章 > 第十二条"
