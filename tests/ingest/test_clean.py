from rag.ingest.clean import clean

RAW = (
    "# 政策标题\n\n□本报记者 张三\n\n"
    "内蒙古与中国工程院共建研究院，每年安排1500\n\n万元专项经费，支持科研。\n\n"
    "重复段落出现了多次，只保留一次。\n\n重复段落出现了多次，只保留一次。\n\n"
    "企业是创新的主体。2023年，呼和浩特市着力强化\n\n\n"
    "呼和浩特市科拓生物现代化的益生菌制剂生产工厂。 武子喧摄\n\n"
    "企业科技创新主体地位。\n"
)


def test_rejoins_number_split_by_page_break_and_keeps_offsets():
    paras = clean(RAW)
    body = [p for p in paras if "1500万元" in p.text]
    assert len(body) == 1
    p = body[0]
    i = p.text.index("1500万元")
    s, e = p.span(i, i + len("1500万元"))
    assert RAW[s:e] == "1500\n\n万元"
    for k, ch in enumerate(p.text):
        assert RAW[p.offsets[k]] == ch


def test_drops_exact_repeats():
    texts = [p.text for p in clean(RAW)]
    assert texts.count("重复段落出现了多次，只保留一次。") == 1


def test_heading_becomes_section_and_byline_is_marked():
    paras = clean(RAW)
    assert paras[0].kind == "heading" and paras[0].text == "政策标题"
    assert any(p.kind == "byline" for p in paras)
    assert all(p.section == "政策标题" for p in paras[1:])


def test_sentence_broken_around_a_caption_is_rejoined_and_caption_kept():
    paras = clean(RAW)
    joined = [p for p in paras if "着力强化企业科技创新主体地位" in p.text]
    assert len(joined) == 1
    caps = [p for p in paras if p.kind == "caption"]
    assert caps and caps[0].text.endswith("武子喧摄")


def test_traditional_and_latin_text_pass_through():
    paras = clean("# 內蒙古「科技突圍」\n\n創新決勝未來。2024年，內蒙古實施科技工程。\n\n"
                  "Policy text in English. Second line.\n")
    assert paras[1].text.startswith("創新決勝未來")
    assert paras[2].text == "Policy text in English. Second line."


def test_english_title_line_stays_a_heading():
    """A Title Case line before body text is a heading, not the start of a sentence broken by a page break."""
    raw = ("Inner Mongolia Science and Technology Funding Measures\n\n"
           "The regional government will allocate 500 million yuan each year to support key\n\n"
           "research projects. Applications open in March.\n")
    paras = clean(raw)
    assert paras[0].kind == "heading" and paras[0].text == "Inner Mongolia Science and Technology Funding Measures"
    body = paras[1]  # the sentence broken across the blank line is still re-joined
    assert body.text.startswith("The regional government") and "key research projects." in body.text
    assert body.section == paras[0].text


def test_empty_input():
    assert clean("") == []
    assert clean("\n\n   \n") == []
