"""Nonsense questions are refused, not answered with unrelated citations (issue 21: xyzzy, keyboard mash,
punctuation only, emoji); real questions in either script or in English still get answers."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("query", ["xyzzy", "asdfghjkl qwertyuiop", "？？？。。。", "😀" * 10, "!!! ... ???"])
def test_nonsense_is_refused(seed_pipeline, query):
    a = seed_pipeline.ask(query, 5)
    assert not a.answerable and not a.citations and a.message
    assert "no word" in a.warnings[0]


@pytest.mark.parametrize("query", ["鄂尔多斯实验室的主任由谁担任？", "鄂爾多斯實驗室的主任由誰擔任？",
                                   "Which Tsinghua University professor serves as director of the Ordos Laboratory?"])
def test_real_questions_are_not_taken_for_nonsense(seed_pipeline, query):
    assert not seed_pipeline.unknown_words(query)
