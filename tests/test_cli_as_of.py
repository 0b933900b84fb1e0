"""``rag search|ask --as-of YYYY-MM-DD`` (issue 17): the documents in force on that day, through the real CLI over
a real index of the corpus17 sources (the 2021 housing-subsidy measure and its 2024 revision that repeals it), built
and queried with the served model and reader, as a user runs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parent.parent / "eval" / "corpus17" / "src"
Q = "人才住房补贴标准中，博士研究生每月补贴多少钱？"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rag.cli import app

    root = tmp_path_factory.mktemp("cli_as_of")
    docs = root / "docs"
    docs.mkdir()
    for stem in ("d01_housing_2021", "d02_housing_2024"):
        shutil.copy(SRC / f"{stem}.txt", docs / f"{stem}.txt")
    r = CliRunner().invoke(app, ["ingest", str(docs), "--index-dir", str(root / "index")])
    assert r.exit_code == 0, r.output
    return root / "index"


def run(index: Path, *args: str) -> tuple[int, str]:
    from rag.cli import app

    r = CliRunner().invoke(app, [*args, "--index-dir", str(index)])
    return r.exit_code, r.output


def test_search_as_of_a_day_before_the_revision(index: Path) -> None:
    code, out = run(index, "search", Q)
    assert code == 0 and "d02_housing_2024.txt" in out and "d01_housing_2021.txt" not in out
    assert "[第二章 > 第五条]" in out  # the article path of the passage
    code, out = run(index, "search", Q, "--as-of", "2022-06-01")
    assert code == 0 and "d01_housing_2021.txt" in out and "d02_housing_2024.txt" not in out


def test_ask_as_of_and_the_repealed_measure_flagged(index: Path) -> None:
    code, out = run(index, "ask", Q)
    assert code == 0 and "2500元" in out and "d01_housing_2021.txt" not in out and "废止" not in out
    code, out = run(index, "ask", Q, "--as-of", "2022-06-01")
    assert code == 0 and "1500元" in out and "d02_housing_2024.txt" not in out and "废止" not in out
    # only the repealed measure says so: answered from it with --include-superseded, and flagged
    code, out = run(index, "ask", "人才住房补贴是否每年3月和9月集中受理？", "--include-superseded")
    assert code == 0 and "d01_housing_2021.txt" in out
    assert "该文件已于2024年3月1日被《示例市人才住房补贴管理办法》（示市政发〔2024〕6号）废止" in out


def test_bad_as_of_is_refused_with_the_format(index: Path) -> None:
    code, out = run(index, "ask", Q, "--as-of", "2022/13/01")
    assert code == 2 and "YYYY-MM-DD" in out
