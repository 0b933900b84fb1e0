"""公文 metadata from the text alone (rag/ingest/metadata.py, issue 17 item 4)."""

from __future__ import annotations

from rag.ingest.metadata import extract_metadata

NOTICE = """内蒙古自治区人民政府办公厅
关于印发呼和浩特市就业补贴
管理办法的通知
内政办发〔2023〕12号

各盟行政公署、市人民政府，自治区各委、办、厅、局：
现将《呼和浩特市就业补贴管理办法》印发给你们，请认真贯彻执行。本办法自2024年1月1日起施行，有效期5年。
《呼和浩特市就业补贴暂行办法》（呼政发〔2019〕7号）同时废止。

内蒙古自治区人民政府办公厅
2023年12月5日

主题词：就业 补贴 办法 通知
"""


def test_full_notice():
    m = extract_metadata(NOTICE)
    assert m == {
        "title": "内蒙古自治区人民政府办公厅关于印发呼和浩特市就业补贴管理办法的通知",  # wrapped title joined
        "doc_number": "内政办发〔2023〕12号",  # the document's own number, not the repealed one's
        "issuer": "内蒙古自治区人民政府办公厅",
        "date_written": "2023-12-05",
        "date_effective": "2024-01-01",
        "date_expires": "2028-12-31",  # 有效期5年 from the effective date
        "subjects": ["就业", "补贴", "办法", "通知"],
    }


def test_published_effective_on_publication_and_chinese_numeral_expiry():
    text = ("关于做好2024年高校毕业生就业工作的通知\n\n发布日期：2024-03-01\n\n"
            "各有关单位：\n本通知自发布之日起施行，有效期至二〇二六年十二月三十一日。")
    assert extract_metadata(text) == {"title": "关于做好2024年高校毕业生就业工作的通知", "date_published": "2024-03-01",
                                      "date_effective": "2024-03-01", "date_expires": "2026-12-31"}


def test_signature_gives_the_issuer_and_square_brackets_are_normalised():
    text = ("呼和浩特市促进就业若干措施\n呼政发[2022]3号\n\n一、加大补贴力度。\n\n"
            "呼和浩特市人民政府\n二〇二二年三月十五日\n")
    m = extract_metadata(text)
    assert m["title"] == "呼和浩特市促进就业若干措施"
    assert m["doc_number"] == "呼政发〔2022〕3号"
    assert m["issuer"] == "呼和浩特市人民政府" and m["date_written"] == "2022-03-15"
    assert "date_effective" not in m and "date_expires" not in m  # not stated: not guessed


def test_traditional_text():
    text = "內蒙古自治區人民政府辦公廳關於印發就業補貼辦法的通知\n\n本辦法自2025年7月1日起施行。\n"
    m = extract_metadata(text)
    assert m["title"].endswith("辦法的通知") and m["issuer"] == "內蒙古自治區人民政府辦公廳"
    assert m["date_effective"] == "2025-07-01"


def test_plain_text_has_no_metadata_but_the_loader_title():
    assert extract_metadata("今年全市新增就业10万人。", title="新闻稿") == {"title": "新闻稿"}
    assert extract_metadata("") == {}


def test_another_things_validity_is_not_the_documents():
    text = ("关于做好企业年报工作的通知\n\n各有关企业：\n该企业营业执照有效期至2020年5月1日，需及时换领。"
            "《呼和浩特市就业补贴暂行办法》有效期5年。\n本通知自2024年1月1日起施行。")
    m = extract_metadata(text)
    assert m["date_effective"] == "2024-01-01" and "date_expires" not in m


def test_traditional_document_number_is_read_and_compares_with_the_simplified_one():
    from rag.core.docmeta import normalise_number

    text = "示例市人民政府關於印發住房補貼辦法的通知\n示政發〔2024〕3號\n\n本辦法自2024年7月1日起施行。\n"
    m = extract_metadata(text)
    assert m["doc_number"] == "示政發〔2024〕3號"
    assert normalise_number(m["doc_number"]).endswith("〔2024〕3号")


def test_a_numbered_heading_is_not_the_title():
    text = "二、支持方向和标准\n对新建项目给予补贴。\n（一）实施细则\n第三条 规定\n"
    assert "title" not in extract_metadata(text)
    assert extract_metadata(text, title="示例市产业扶持政策解读")["title"] == "示例市产业扶持政策解读"
