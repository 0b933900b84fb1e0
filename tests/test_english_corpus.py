"""English documents, real model: English and Chinese questions over them are answered from the right
sentence (the Chinese reader stays out of English text), and questions they do not cover are refused."""

from __future__ import annotations

import pytest

from rag.core.types import Document

FUNDING = """Inner Mongolia Science and Technology Funding Measures

The regional government will allocate 500 million yuan each year to support key research projects in rare earth
materials, dairy technology and renewable energy.

Applications are accepted from March 1 to April 30 every year. Projects are reviewed by an expert panel of at
least seven members, and results are published within sixty days of the deadline.

Companies recognised as high-tech enterprises enjoy a reduced corporate income tax rate of 15 percent.
"""
TALENT = """Hohhot Talent Programme

Hohhot plans to attract 2,000 young scientists by 2027. Each doctoral graduate who signs a contract of at least five
years with a local research institute receives a housing subsidy of 300,000 yuan.

The Ordos Laboratory, founded in 2021, focuses on modern coal chemistry and hydrogen energy. The laboratory's
director is Professor Wang Jianguo.
"""


@pytest.fixture(scope="module")
def english_pipeline(tmp_path_factory, real_embedder, settings):  # type: ignore[no-untyped-def]
    from rag.index.build import build_index
    from rag.pipeline import Pipeline

    out = tmp_path_factory.mktemp("english_index")
    build_index(out, [Document("funding.txt", FUNDING), Document("talent.txt", TALENT)], real_embedder,
                settings.chunk_size, settings.chunk_overlap)
    return Pipeline(settings.model_copy(update={"index_dir": out}), embedder=real_embedder).load()


@pytest.mark.parametrize(("question", "doc", "quote", "short"), [
    ("When are applications accepted?", "funding.txt", "March 1 to April 30", "March 1 to April 30"),
    ("How many members does the expert panel have?", "funding.txt", "at least seven members", "seven"),
    ("What is the corporate income tax rate for high-tech enterprises?", "funding.txt", "15 percent", "15 percent"),
    ("How large is the housing subsidy for doctoral graduates?", "talent.txt", "300,000 yuan", "300,000 yuan"),
    ("Who is the director of the Ordos Laboratory?", "talent.txt", "Wang Jianguo", "Professor Wang Jianguo"),
    ("What does the Ordos Laboratory focus on?", "talent.txt", "coal chemistry", ""),  # open: no span guessed
    ("鄂尔多斯实验室主任是谁？", "talent.txt", "Professor Wang Jianguo", ""),  # Chinese question, English text
])
def test_english_text_answers_from_the_right_sentence(english_pipeline, question, doc, quote, short):  # type: ignore[no-untyped-def]
    a = english_pipeline.ask(question, 5)
    assert a.answerable, question
    cited = [c for c in a.citations if c.hit.chunk.doc_id == doc and quote in c.quote]
    assert cited, (question, [c.quote for c in a.citations])
    assert quote in a.text
    assert a.short_answer == short  # the English reader's span (never the Chinese rules' guess)
    if short:
        assert any(short in c.quote for c in a.citations if c.n == a.short_citation)


def test_english_title_is_a_section_not_part_of_the_first_sentence(english_pipeline):  # type: ignore[no-untyped-def]
    a = english_pipeline.ask("How much money does the government allocate each year for research?", 5)
    assert a.answerable and "500 million yuan" in a.text
    assert "Funding Measures The regional" not in a.text


@pytest.mark.parametrize("question", ["Who won the 2022 World Cup?", "What is the population of Baotou?"])
def test_questions_the_english_text_does_not_cover_are_refused(english_pipeline, question):  # type: ignore[no-untyped-def]
    a = english_pipeline.ask(question, 5)
    assert not a.answerable and a.citations == []
