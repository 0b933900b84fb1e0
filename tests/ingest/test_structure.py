"""公文 structure in chunking: 第X编/章/节/条/款 and 一、（一）1.（1） are recognised, a chunk never spans two articles
when they fit, and every chunk carries its article path (Chunk.path)."""

from __future__ import annotations

import re

import pytest

from rag.core.types import Chunk, Document
from rag.ingest.chunking import assign_pages, chunk_document
from rag.ingest.clean import clean, structure_label
from rag.ingest.loaders import load_bytes
from tests.ingest import docmaker as dm

MEASURES = """关于印发《呼和浩特市就业补贴管理办法》的通知

第一章 总则

第一条 为了规范就业补贴资金管理，提高资金使用效益，根据有关规定，制定本办法。

第二条 本办法适用于本市行政区域内就业补贴的申请、审核和发放。

第二章 补贴对象和标准

第一节 社会保险补贴

第三条 有下列情形之一的，可以申请社会保险补贴：
（一）招用就业困难人员的企业；
（二）吸纳高校毕业生就业的小微企业；
（三）法律、法规规定的其他情形。

第四条 社会保险补贴标准为每人每月500元，补贴期限最长不超过3年。

第二节 岗位补贴

第五条 岗位补贴标准为每人每月1000元。

第三章 附则

第六条 本办法自2024年1月1日起施行。
"""
ARTICLE = re.compile(r"第[一二三四五六七八九十]+条")


def chunks_of(text: str, size: int = 300, overlap: int = 1) -> list[Chunk]:
    return chunk_document(Document("m.txt", text), size, overlap)


def test_labels():
    assert structure_label("第三章 总则") == (2, "第三章")
    assert structure_label("第十二条申请人应当提交材料。") == (4, "第十二条")  # OCR drops the space
    assert structure_label("第三條 本辦法自發布之日起施行。") == (4, "第三條")
    assert structure_label("第一编 总则") == (1, "第一编")
    assert structure_label("第二款 前款规定") == (5, "第二款")
    assert structure_label("一、总体要求", heading=True) == (6, "一、总体要求")
    assert structure_label("（二）强化资金保障。市财政每年安排资金。") == (7, "（二）强化资金保障")
    assert structure_label("3. 申请人填写申请表；") == (8, "3. 申请人填写申请表")
    assert structure_label("（1）身份证复印件；") == (9, "（1）身份证复印件")
    for text in ("第十二条的规定适用于本章。", "第三条规定的材料", "2023年全市新增就业10万人。", "12.5亿元用于补贴。",
                 "第一节假日安排"):
        assert structure_label(text) is None or structure_label(text)[0] != 4, text


def test_each_article_is_its_own_chunk_with_its_path():
    chunks = chunks_of(MEASURES)
    body = [c for c in chunks if ARTICLE.search(c.text)]
    for c in body:
        assert len(ARTICLE.findall(c.text.split("：")[0])) == 1, c.text  # one article a chunk
    paths = {ARTICLE.match(c.text).group(0): c.path for c in body if ARTICLE.match(c.text)}
    assert paths == {"第一条": "第一章 > 第一条", "第二条": "第一章 > 第二条", "第三条": "第二章 > 第一节 > 第三条",
                     "第四条": "第二章 > 第一节 > 第四条", "第五条": "第二章 > 第二节 > 第五条",
                     "第六条": "第三章 > 第六条"}
    c3 = next(c for c in body if c.text.startswith("第三条"))
    assert "（三）法律、法规规定的其他情形。" in c3.text  # the items stay in their article
    assert c3.section == "第一节 社会保险补贴"


def test_short_article_is_body_text_not_a_heading():
    paras = clean(MEASURES)
    last = [p for p in paras if p.text.startswith("第六条")]
    assert last and last[0].kind == "body"
    assert any(c.text == "第六条 本办法自2024年1月1日起施行。" for c in chunks_of(MEASURES))


def test_long_article_splits_but_never_overlaps_into_the_next():
    long = "第七条 " + "".join(f"申请单位应当按照第{i}项要求提交相关证明材料。" for i in range(1, 30))
    text = "第四章 申请程序\n\n" + long + "\n\n第八条 审核部门应当在十个工作日内完成审核。\n"
    chunks = chunks_of(text, size=120, overlap=1)
    art7 = [c for c in chunks if c.path == "第四章 > 第七条"]
    assert len(art7) > 3 and all(len(c.text) <= 140 for c in art7)
    art8 = [c for c in chunks if c.path == "第四章 > 第八条"]
    # no sentence of 第七条 overlaps into 第八条
    assert [c.text for c in art8] == ["第八条 审核部门应当在十个工作日内完成审核。"]
    assert art7[1].sentences[0].text == art7[0].sentences[-1].text  # overlap inside the article is kept


def test_short_articles_are_not_packed_together():
    text = "\n\n".join(f"第{n}条 本条内容较短。" for n in "一二三四五")
    chunks = chunks_of(text, size=300)
    assert [c.path for c in chunks] == ["第一条", "第二条", "第三条", "第四条", "第五条"]


def test_notice_structure_and_shared_path():
    notice = ("一、总体要求\n\n坚持就业优先战略。到2025年，全市城镇新增就业10万人。\n\n二、重点任务\n\n"
              "（一）加强组织领导。各地要建立工作机制，明确责任分工。\n\n"
              "（二）强化资金保障。市财政每年安排专项资金5000万元。\n\n三、保障措施\n\n"
              "1. 建立督查制度。\n\n2. 定期通报进展。\n")
    chunks = chunks_of(notice)
    assert [p.kind for p in clean(notice)][3] == "body"  # a label followed by sentences is text
    by_start = {c.text[:6]: c.path for c in chunks}
    assert by_start["坚持就业优先"] == "一、总体要求"
    two = next(c for c in chunks if "加强组织领导" in c.text)
    # a chunk over （一） and （二） is under their parent only; one over （一） alone names it
    assert two.path == ("二、重点任务" if "强化资金保障" in two.text else "二、重点任务 > （一）加强组织领导")
    three = next(c for c in chunks if "督查" in c.text)
    assert three.path.startswith("三、保障措施")


def test_book_chapter_section_article():
    text = "第一编 总则\n\n第一章 基本规定\n\n第一节 一般规定\n\n第一条 为了保护民事主体的合法权益，制定本法。\n\n" \
           "第二编 物权\n\n第二章 所有权\n\n第二条 国家所有的财产属于全民所有。\n"
    assert [c.path for c in chunks_of(text)] == ["第一编 > 第一章 > 第一节 > 第一条", "第二编 > 第二章 > 第二条"]


def test_traditional_and_docx_headings():
    trad = "第一章 總則\n\n第一條 為了規範管理，制定本辦法。\n\n第二條 本辦法適用於全區。\n"
    assert [c.path for c in chunks_of(trad)] == ["第一章 > 第一條", "第一章 > 第二條"]
    data = dm.docx_bytes([("Heading 1", "第一章 总则"), "第一条 为了规范管理，制定本办法。",
                          ("Heading 1", "第二章 附则"), "第二条 本办法自发布之日起施行。"])
    doc = load_bytes(data, "m.docx")
    assert [c.path for c in chunk_document(doc)] == ["第一章 > 第一条", "第二章 > 第二条"]


def test_plain_text_without_structure_has_empty_path():
    assert all(c.path == "" for c in chunks_of("今年全市新增就业10万人。创业担保贷款发放5亿元。"))


@pytest.mark.skipif(dm.font_path() is None, reason="no CJK font: make install")
def test_scanned_measures_keep_pages_and_article_paths():
    p1 = dm.render_page(["第一章 总则", "第一条 为了规范就业补贴管理，制定本办法。", "第二条 本办法适用于全市。"])
    p2 = dm.render_page(["第二章 补贴标准", "第三条 社会保险补贴标准为每人每月500元。"])
    doc = load_bytes(dm.scanned_pdf([p1, p2]), "scan.pdf")
    chunks = chunk_document(doc)
    assign_pages(doc, chunks)
    got = {c.path: c.page for c in chunks}
    assert got == {"第一章 > 第一条": 1, "第一章 > 第二条": 1, "第二章 > 第三条": 2}, [(c.path, c.text) for c in chunks]
