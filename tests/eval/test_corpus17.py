"""The issue-17 corpus (eval/corpus17): every file read by its own loader (OCR for the scans, the OFD's TextCode
text), the committed files what the generator renders, the gold questions answerable from their documents, and
validity and structure through the real pipeline (real loaders, real model, the served rule reader)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from eval.corpus17 import build
from eval.corpus17.score import VALIDITY, load_corpus, load_gold
from eval.metrics import norm_answer
from rag.core import docmeta
from rag.core.types import Document, Filters
from rag.ingest.loaders import KINDS, SUPPORTED

# text each loader must find in its file: OCR'd scans, the OFD's TextCode, rows with their headers
MUST_READ = {
    "d01_housing_2021.doc": "博士研究生每人每月1500元",
    "d02_housing_2024.docx": "博士研究生每人每月2500元",
    "d03_wengang_2022.pdf": "有效期至2023年12月31日",
    "d04_rencai_annex_2024.xlsx": "人才类别：C类拔尖人才，认定条件：省级人才计划入选者或正高级职称，"
                                  "住房补贴（元/月）：4000",
    "d05_gongzu_2024.csv": "区域：南湖区，户型：两居室，建筑面积（平方米）：40至60，租金标准（元/平方米·月）：9.5",
    "d06_peixun_2023.xls": "职业（工种）：电工，等级：四级，补贴标准（元/人）：2000",
    "d07_gongche_2023.wps": "公务用车使用年限满8年",
    "d08_shuzi_jiedu_2024.pptx": "支持方向：企业数字化改造，支持方式：按设备和软件投资额的20%补助，最高金额：500万元",
    "d09_xinxigongkai_2023.ofd": "每件收费标准为100元",
    "d10_xunqi_2024.html": "7月1日至8月31日为主汛期",
    "d11_daolu_2023.txt": "大修的城市道路竣工后3年内不得挖掘",
    "d12_zhangzhe_2023_hant.md": "補辦收取工本費二十元",
    "d13_nongcun_2023_scan.pdf": "库存现金限额为5000元",
    "d14_laji_2023_scan.tif": "处50元以上200元以下罚款",
    "d15_wage_2024_scan.png": "区域类别：一类区域，月最低工资：2200元",
    "d16_wage_2022_scan.jpg": "区域类别：二类区域，月最低工资：1850元",
}


@pytest.fixture(scope="module")
def corpus() -> dict[str, Document]:
    docs, failures, _ = load_corpus()
    assert not failures, failures
    return {d.doc_id: d for d in docs}


def test_every_loader_format_is_in_the_corpus() -> None:
    kinds = {KINDS[Path(name).suffix] for name in build.TARGETS.values()}
    assert kinds == set(KINDS.values())  # each loader kind at least once (aliases such as .jpeg read alike)
    assert len(build.TARGETS) >= 12 and set(build.SCANNED) <= set(build.TARGETS)
    assert {".doc", ".wps", ".ofd", ".xlsx", ".xls", ".csv", ".pptx", ".tif", ".png", ".jpg"} <= {
        Path(n).suffix for n in build.TARGETS.values()} <= set(SUPPORTED)


def test_each_file_is_read_by_its_loader(corpus: dict[str, Document]) -> None:
    assert set(corpus) == set(MUST_READ)
    for name, text in MUST_READ.items():
        d = corpus[name]
        assert d.meta["type"] == Path(name).suffix.lstrip("."), name
        assert norm_answer(text) in norm_answer(d.text), (name, d.text[:400])
    scans = {n for n, d in corpus.items() if d.meta.get("ocr_pages")}
    assert scans == {build.TARGETS[s] for s in build.SCANNED}  # OCR'd: the scans, and nothing else
    assert "txt" == corpus["d11_daolu_2023.txt"].meta["type"]
    assert (build.FILES / "d11_daolu_2023.txt").read_bytes().decode("gbk").startswith("示例市城市道路")


def test_metadata_and_validity_links_read_from_the_files(corpus: dict[str, Document]) -> None:
    from rag.ingest.validity import link

    link(corpus)
    old, new = corpus["d01_housing_2021.doc"].meta, corpus["d02_housing_2024.docx"].meta
    assert old["doc_number"] == "示市政发〔2021〕15号" and new["date_effective"] == "2024-03-01"
    assert old["superseded_by"]["doc_id"] == "d02_housing_2024.docx"
    assert docmeta.status(old, "2023-12-31") == "in_force" and docmeta.status(old, "2024-03-01") == "superseded"
    # a scan repeals a scan: the 2024 wage notice's number read by OCR, matched to the 2022 one's
    wage = corpus["d16_wage_2022_scan.jpg"].meta
    assert wage["doc_number"] == "示人社发〔2022〕9号"
    assert wage["superseded_by"]["doc_id"] == "d15_wage_2024_scan.png"
    expired = corpus["d03_wengang_2022.pdf"].meta
    assert expired["date_expires"] == "2023-12-31" and docmeta.status(expired) == "expired"
    assert docmeta.status(expired, "2022-10-01") == "in_force"
    in_force = [n for n, d in corpus.items() if docmeta.status(d.meta) == "in_force"]
    assert len(in_force) == len(corpus) - 3


def test_gold_answers_are_in_their_documents(corpus: dict[str, Document]) -> None:
    questions = load_gold()
    assert len(questions) >= 30 and len({q.qid for q in questions}) == len(questions)
    assert sum(q.kind in VALIDITY for q in questions) >= 10 and sum(bool(q.article) for q in questions) >= 20
    for q in questions:
        text = norm_answer(corpus[q.doc].text)
        assert all(norm_answer(a) in text for a in q.answers), (q.qid, q.answers)
        if q.article:
            assert norm_answer(q.article) in text, q.qid


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice renders .doc/.wps/.xls/text PDF")
def test_committed_files_are_what_the_generator_renders(tmp_path: Path, corpus: dict[str, Document]) -> None:
    from rag.ingest.loaders import load_file

    fresh = build.render(tmp_path)
    for stem, path in build.files().items():
        if stem in build.SCANNED or path.suffix == ".ofd":  # pixels and the OFD zip are byte-deterministic
            assert fresh[stem].read_bytes() == path.read_bytes(), stem
        else:  # office writers stamp dates: the text read back is the same
            assert load_file(fresh[stem]).text == corpus[path.name].text, stem


@pytest.mark.integration
def test_validity_and_structure_through_the_pipeline(corpus: dict[str, Document], tmp_path: Path,
                                                      real_embedder, settings) -> None:  # type: ignore[no-untyped-def]
    from rag.index.build import build_index
    from rag.pipeline import Pipeline

    build_index(tmp_path, list(corpus.values()), real_embedder, settings.chunk_size, settings.chunk_overlap)
    p = Pipeline(settings.model_copy(update={"index_dir": tmp_path}), embedder=real_embedder).load()

    def docs(q: str, f: Filters | None = None) -> list[str]:
        return list(dict.fromkeys(h.chunk.doc_id for h in p.search(q, 10, filters=f)[0]))

    q = "人才住房补贴标准中，博士研究生每月补贴多少钱？"
    assert docs(q)[0] == "d02_housing_2024.docx" and "d01_housing_2021.doc" not in docs(q)
    old = docs(q, Filters(as_of="2022-06-01"))
    assert old[0] == "d01_housing_2021.doc" and "d02_housing_2024.docx" not in old
    a = p.ask(q)
    assert a.answerable and {c.hit.chunk.doc_id for c in a.citations} == {"d02_housing_2024.docx"}
    assert "2500" in a.text and not a.warnings
    a = p.ask(q, 5, Filters(as_of="2022-06-01"))
    assert a.citations[0].hit.chunk.doc_id == "d01_housing_2021.doc" and "1500" in a.text
    # asked of the repealed measure on purpose: answered, and flagged
    a = p.ask(q, 5, Filters(doc_ids=["d01_housing_2021.doc"], include_superseded=True))
    assert a.answerable and "1500" in a.text
    assert ("《示例市人才住房补贴管理办法》：该文件已于2024年3月1日被《示例市人才住房补贴管理办法》"
            "（示市政发〔2024〕6号）废止") in a.warnings
    # the expired notice: gone by default, there as of 2022, flagged when asked for
    q = "中小微企业失业保险稳岗返还按实际缴纳失业保险费的多少比例返还？"
    assert "d03_wengang_2022.pdf" not in docs(q)
    assert docs(q, Filters(as_of="2022-10-01"))[0] == "d03_wengang_2022.pdf"
    a = p.ask(q, 5, Filters(doc_ids=["d03_wengang_2022.pdf"], include_superseded=True))
    assert any("有效期至2023年12月31日，已失效" in w for w in a.warnings)
    # supersession between two OCR'd scans
    q = "一类区域月最低工资标准是多少？"
    assert docs(q)[0] == "d15_wage_2024_scan.png" and "d16_wage_2022_scan.jpg" not in docs(q)
    assert docs(q, Filters(as_of="2023-01-01"))[0] == "d16_wage_2022_scan.jpg"
    # article paths: an OCR'd scan, the OFD, the GBK text without chapters, traditional script
    for q, doc, path in (("农村集体经济组织库存现金限额是多少？", "d13_nongcun_2023_scan.pdf", "第二章 > 第五条"),
                         ("政府信息公开信息处理费按件计收的，每件收费标准是多少？", "d09_xinxigongkai_2023.ofd",
                          "第四章 > 第十一条"),
                         ("大修的城市道路竣工后几年内不得挖掘？", "d11_daolu_2023.txt", "第十二条"),
                         ("長者優待卡遺失補辦收取多少工本費？", "d12_zhangzhe_2023_hant.md", "第三章 > 第九條")):
        top = p.search(q, 5)[0][0].chunk
        assert (top.doc_id, top.path) == (doc, path), q
