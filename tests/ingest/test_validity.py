"""Validity (issue 17 item 5): what a 公文 repeals (rag/ingest/validity.py), the links between documents, and the
status on a day (rag/core/docmeta.py); metadata wired into loading (rag/ingest/loaders)."""

from __future__ import annotations

import pytest

from rag.core import docmeta
from rag.core.types import Document, Filters
from rag.ingest.loaders import load_bytes
from rag.ingest.validity import find_references, link
from tests.ingest.policy_texts import EXPIRED_2021, FILES, NEW_2024, OLD_2019, OTHER_2023


def loaded() -> dict[str, Document]:
    docs = {}
    for name, text in FILES.items():
        d = load_bytes(text.encode(), name)
        docs[d.doc_id] = d
    link(docs)
    return docs


def test_loading_carries_the_metadata_the_text_states():
    d = load_bytes(NEW_2024.encode(), "new.txt", meta={"collection": "hr"})
    assert d.title == "呼和浩特市人民政府关于印发呼和浩特市就业补贴管理办法的通知"
    m = d.meta
    assert (m["doc_number"], m["issuer"], m["date_written"], m["date_effective"]) == \
        ("呼政发〔2024〕3号", "呼和浩特市人民政府", "2024-01-15", "2024-03-01")
    assert m["subjects"] == ["就业", "补贴", "办法", "通知"] and m["collection"] == "hr"
    assert m["repeals"] == [{"title": "呼和浩特市就业补贴暂行办法", "doc_number": "呼政发〔2019〕7号", "how": "废止"}]
    e = load_bytes(EXPIRED_2021.encode(), "old.txt").meta
    assert (e["date_effective"], e["date_expires"]) == ("2021-03-08", "2022-12-31")  # 自印发之日起 = 成文日期
    assert "repeals" not in load_bytes(OLD_2019.encode(), "o.txt").meta


@pytest.mark.parametrize("text,own,refs", [
    ("本规定自2020年1月1日起施行，原《呼和浩特市公共租赁住房管理办法》（呼政发〔2014〕22号）不再执行。", "",
     [{"title": "呼和浩特市公共租赁住房管理办法", "doc_number": "呼政发〔2014〕22号", "how": "废止"}]),
    ("此前发布的《关于进一步做好就业创业工作的通知》与本办法不一致的，以本办法为准。", "",
     [{"title": "关于进一步做好就业创业工作的通知", "how": "取代"}]),
    ("内政办发〔2018〕40号、内政办发〔2019〕3号文件同时废止。", "内政办发〔2020〕1号",
     [{"doc_number": "内政办发〔2018〕40号", "how": "废止"}, {"doc_number": "内政办发〔2019〕3号", "how": "废止"}]),
    ("《呼和浩特市就业补贴暂行办法》第五条同时废止。", "", []),  # one article only: not the document
    ("市政府决定对《呼和浩特市物业管理办法》进行修订，现将修订后的办法印发给你们。", "",
     [{"title": "呼和浩特市物业管理办法", "how": "修订"}]),
    ("本办法自发布之日起施行。", "", []),
    ("本办法自2024年3月1日起施行，呼政发〔2024〕3号文件执行中的问题由市人社局解释。", "呼政发〔2024〕3号", []),
])
def test_references_read_from_the_text(text, own, refs):
    assert find_references(text, own_number=own) == refs


def test_title_of_an_amending_notice_names_the_amended_measure():
    refs = find_references("各旗县区：\n现将修订后的办法印发给你们。",
                           own_title="关于修订《呼和浩特市物业管理办法》的通知")
    assert refs == [{"title": "呼和浩特市物业管理办法", "how": "修订"}]


def test_link_marks_the_repealed_document_by_number_and_title():
    docs = loaded()
    old, new = docs["hhht-2019-7.txt"].meta, docs["hhht-2024-3.txt"].meta
    assert old["superseded_by"] == {"doc_id": "hhht-2024-3.txt", "title": docs["hhht-2024-3.txt"].title,
                                    "doc_number": "呼政发〔2024〕3号", "date": "2024-03-01", "how": "废止"}
    assert new["supersedes"] == ["hhht-2019-7.txt"] and "superseded_by" not in new
    # by title alone (no number in the reference): the measure a 印发 notice transmits
    docs["hhht-2024-3.txt"].meta["repeals"] = [{"title": "呼和浩特市就业补贴暂行办法", "how": "废止"}]
    link(docs)
    assert docs["hhht-2019-7.txt"].meta["superseded_by"]["doc_id"] == "hhht-2024-3.txt"
    # an edit that drops the reference drops the link
    docs["hhht-2024-3.txt"].meta["repeals"] = []
    link(docs)
    assert "superseded_by" not in docs["hhht-2019-7.txt"].meta and "supersedes" not in docs["hhht-2024-3.txt"].meta


def test_link_never_lets_an_older_document_repeal_a_newer_one():
    docs = loaded()
    docs["hhht-2019-7.txt"].meta["repeals"] = [{"doc_number": "呼政发〔2024〕3号", "how": "废止"}]
    link(docs)
    assert "superseded_by" not in docs["hhht-2024-3.txt"].meta


def test_status_on_a_day_and_the_warning():
    docs = loaded()
    old, new = docs["hhht-2019-7.txt"], docs["hhht-2024-3.txt"]
    expired, other = docs["nmg-rsj-2021-15.txt"], docs["nmg-kjt-2023-21.txt"]
    assert [docmeta.status(d.meta, "2026-01-01") for d in (old, new, expired, other)] == \
        ["superseded", "in_force", "expired", "in_force"]
    assert [docmeta.status(d.meta, "2020-01-01") for d in (old, new, expired, other)] == \
        ["in_force", "not_yet_effective", "not_yet_effective", "not_yet_effective"]
    assert docmeta.status(old.meta, "2024-02-29") == "in_force"  # the day before the new one took effect
    assert docmeta.validity_note(old.title, old.meta, "2026-01-01") == \
        "《呼和浩特市就业补贴暂行办法》：该文件已于2024年3月1日被《呼和浩特市就业补贴管理办法》（呼政发〔2024〕3号）废止"
    note = docmeta.validity_note(expired.title, expired.meta, "2026-01-01")
    assert note.endswith("该文件有效期至2022年12月31日，已失效")
    assert docmeta.validity_note(new.title, new.meta, "2026-01-01") == ""
    assert not docmeta.usable(old.meta, None, False) and docmeta.usable(old.meta, None, True)
    assert docmeta.usable(old.meta, "2020-01-01", False) and not docmeta.usable(new.meta, "2020-01-01", True)


@pytest.mark.parametrize("f,ids", [
    (Filters(issuer="科学技术厅"), {"nmg-kjt-2023-21.txt"}),
    (Filters(doc_number="呼政发[2024]3号"), {"hhht-2024-3.txt"}),  # brackets normalised
    (Filters(subjects=["就业", "补贴"]), {"hhht-2024-3.txt"}),
    (Filters(title="暂行办法"), {"hhht-2019-7.txt"}),
    (Filters(effective_from="2023-01-01"), {"hhht-2024-3.txt", "nmg-kjt-2023-21.txt"}),
    (Filters(expires_to="2023-12-31"), {"nmg-rsj-2021-15.txt"}),
    (Filters(date_from="2021-01-01", date_to="2023-12-31"), {"nmg-rsj-2021-15.txt", "nmg-kjt-2023-21.txt"}),
])
def test_metadata_filters(f, ids):
    assert {d.doc_id for d in loaded().values() if f.match(d)} == ids


def test_other_issuer_text_is_not_linked():
    d = load_bytes(OTHER_2023.encode(), "x.txt")
    assert d.meta["issuer"] == "内蒙古自治区科学技术厅" and "repeals" not in d.meta
