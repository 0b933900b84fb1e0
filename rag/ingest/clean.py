"""Clean a noisy source text into paragraphs that keep character offsets into the original.

Real policy corpora come from PDF exports and web scrapes: page breaks land inside sentences
and numbers (``1500\\n\\n万元``), paragraphs repeat, photo captions and bylines sit between
paragraphs. We never rewrite the source: every paragraph is a list of spans of the original
text, so a citation can always be shown in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Characters that end a sentence (Chinese and Western), optionally followed by closing quotes.
TERMINAL = "。！？；!?…"
CLOSERS = "”’」』）)】》\"'"
_TERMINATED = re.compile(rf"[{re.escape(TERMINAL)}][{re.escape(CLOSERS)}]*$|[.:：][{re.escape(CLOSERS)}]*$")
_MD_HEADING = re.compile(r"^(#{1,6})\s*")
_BYLINE = re.compile(r"^[□●◎■◆]\s*\S")
_BYLINE_WORDS = re.compile(r"记者|記者|本报|本報|通讯员|通訊員|文/图|文／圖|摄影|攝影")
_CAPTION_END = re.compile(r"(摄|攝|供图|供圖|图片|圖片)\s*[)）]?\s*$")
_STRUCT_HEADING = re.compile(
    r"^(第[一二三四五六七八九十百零〇\d]+[编編章节節篇部分]|[一二三四五六七八九十]+、|（[一二三四五六七八九十]+）|镜头[一二三四五六七八九十]|鏡頭|【.{1,12}】$)"
)
# 公文 structure labels, outermost first: 第X编 > 章 > 节 > 条 > 款, then 一、 > （一） > 1. > （1）
_NUM = "[一二三四五六七八九十百千零〇两兩\\d]+"
_LABELS: list[tuple[int, re.Pattern[str]]] = [
    (1, re.compile(rf"^第{_NUM}[编編](?!号|號)")),
    (2, re.compile(rf"^第{_NUM}章")),
    (3, re.compile(rf"^第{_NUM}[节節](?![日假])")),
    (4, re.compile(rf"^第{_NUM}[条條](?![件例的第规規所之])")),
    (5, re.compile(rf"^第{_NUM}款")),
    (6, re.compile(r"^[一二三四五六七八九十]+[、．.]")),
    (7, re.compile(r"^[（(][一二三四五六七八九十]+[）)]")),
    (8, re.compile(r"^\d{1,2}(?:[、．]|\.(?!\d))")),
    (9, re.compile(r"^[（(]\d{1,2}[）)]")),
]
ARTICLE_LEVEL = 4
_LABEL_END = re.compile(r"[。；;：:，,！？!?\s]")
_SENTENCE_INSIDE = re.compile(r"[。！？；;!?]")
_ITEM_END = re.compile(r"[。；;！？!?][”’」』）)]*$")
_AUTHOR = re.compile(r"^[(（]\s*(作者|作者系|本文作者)")
_INNER_PUNCT = re.compile(r"[，,。；;：:！？!?、]")


@dataclass
class Paragraph:
    """A cleaned paragraph. ``text[i]`` comes from original offset ``offsets[i]``."""

    text: str
    offsets: list[int]
    kind: str = "body"  # body | heading | caption | byline | fragment
    section: str = ""

    @property
    def start(self) -> int:
        return self.offsets[0]

    @property
    def end(self) -> int:
        return self.offsets[-1] + 1

    def span(self, i: int, j: int) -> tuple[int, int]:
        """Original span of cleaned characters ``text[i:j]``."""
        return self.offsets[i], self.offsets[j - 1] + 1


@dataclass
class _Line:
    text: str
    start: int
    gap_before: bool  # a blank line (page/paragraph break) precedes this line
    kind: str = "body"
    offsets: list[int] = field(default_factory=list)


def _lines(raw: str) -> list[_Line]:
    out: list[_Line] = []
    gap = True
    pos = 0
    for line in raw.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        stripped = body.strip()
        if not stripped:
            gap = True
        else:
            lead = len(body) - len(body.lstrip())
            s = pos + lead
            out.append(_Line(stripped, s, gap, offsets=list(range(s, s + len(stripped)))))
            gap = False
        pos += len(line)
    return out


def _title_case(text: str) -> bool:
    """An English title: every word longer than three letters capitalised ("Hohhot Talent Programme")."""
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", text)
    big = [w for w in words if len(w) > 3]
    cjk = re.search(r"[\u3400-\u9fff]", text)
    return len(words) >= 2 and bool(big) and all(w[0].isupper() for w in big) and not cjk


def structure_label(text: str, heading: bool = False) -> tuple[int, str] | None:
    """The 公文 structure label a paragraph opens with, as (level, label): ``第三章 总则`` -> (2, "第三章"),
    ``第十二条 申请人…`` -> (4, "第十二条"), ``一、总体要求`` -> (6, "一、总体要求"), ``（二）加强领导。…`` ->
    (7, "（二）加强领导"). Numbered 编/章/节/条/款 are labelled by their number; list items by their text up to
    the first punctuation (a heading's by its whole text), at most 20 characters."""
    t = text.strip()
    for level, rx in _LABELS:
        m = rx.match(t)
        if m is None:
            continue
        if level <= 5:
            return level, m.group(0)
        tail = t[m.end() :]
        lead = tail[: len(tail) - len(tail.lstrip())]
        rest = t if heading else t[: m.end()] + lead + _LABEL_END.split(tail.lstrip(), maxsplit=1)[0]
        return level, rest.strip()[:20]
    return None


def is_article(text: str) -> bool:
    """A paragraph that opens an article (``第十二条 …``)."""
    lab = structure_label(text)
    return lab is not None and lab[0] == ARTICLE_LEVEL


def _looks_like_heading(line: _Line) -> bool:
    return line.kind == "heading" or (line.kind == "short" and (" " in line.text or len(line.text) <= 12))


def _classify(line: _Line) -> str:
    t = line.text
    if _MD_HEADING.match(t):
        return "heading"
    if _BYLINE.match(t) and (len(t) <= 40 and (_BYLINE_WORDS.search(t) or len(t) <= 8)):
        return "byline"
    if _AUTHOR.match(t) or (len(t) <= 30 and _BYLINE_WORDS.search(t) and not _INNER_PUNCT.search(t)):
        return "byline"
    if t[-1] in "，,、：:":
        return "body"  # an open clause: never a heading
    if _CAPTION_END.search(t) and len(t) <= 120:
        return "caption"
    if is_article(t):
        return "body"  # an article is text, never a heading, however short (第三条 本办法自发布之日起施行。)
    if _STRUCT_HEADING.match(t) and len(t) <= 40 and not _SENTENCE_INSIDE.search(t[:-1]):
        return "heading"  # (a label followed by sentences, `（一）加强领导。各地要…`, is body text)
    if _TERMINATED.search(t) or len(_INNER_PUNCT.findall(t)) >= 2 or len(t) > 60:
        return "body"
    if t[-1].isdigit() or (_INNER_PUNCT.search(t) and len(t) > 20):
        return "body"  # a number or clause cut by a page break: headings neither end in digits nor run long
    return "short"  # heading, caption or a stray fragment: decided with context


def _strip_markdown(line: _Line) -> None:
    m = _MD_HEADING.match(line.text)
    if m:
        n = m.end()
        line.text, line.offsets = line.text[n:], line.offsets[n:]


def _join(a: _Line, b: _Line) -> None:
    """Append ``b`` to ``a``; a space only between two Latin words."""
    if a.text[-1:].isascii() and a.text[-1:].isalnum() and b.text[:1].isascii() and b.text[:1].isalpha():
        a.text += " "
        a.offsets.append(a.offsets[-1] + 1)
    a.text += b.text
    a.offsets.extend(b.offsets)


def clean(raw: str) -> list[Paragraph]:
    """Return paragraphs in reading order, with headings resolved into ``section``.

    Steps: split lines; classify; re-join body text broken by page breaks (skipping captions
    and bylines that a layout put in between); resolve short lines into headings, captions or
    fragments; drop exact repeated paragraphs.
    """
    lines = _lines(raw.replace("\ufeff", " "))
    for ln in lines:
        ln.kind = _classify(ln)
        if ln.kind == "heading":
            _strip_markdown(ln)
    lines = [ln for ln in lines if ln.text]
    if sum(1 for ln in lines if is_article(ln.text)) >= 2:
        # a text with articles (办法, 条例): its numbered items （一）… 1.… are clauses of an article, not headings
        for ln in lines:
            lab = structure_label(ln.text)
            if ln.kind == "heading" and lab is not None and lab[0] >= 6 and _ITEM_END.search(ln.text):
                ln.kind = "body"

    # Re-join broken body text. An open sentence continues in the next body-like line; captions
    # and bylines that a layout put in between are kept, after the re-joined paragraph.
    merged: list[_Line] = []
    i = 0
    while i < len(lines):
        ln = lines[i]
        i += 1
        if (ln.kind == "short" and len(ln.text) > 30 and i < len(lines) and lines[i].kind == "body"
                and not _title_case(ln.text)):
            ln.kind = "body"  # a long unpunctuated line followed by body text: a broken sentence
        if ln.kind == "body":
            while not _TERMINATED.search(ln.text):
                j = i
                while j < len(lines) and lines[j].kind in ("caption", "byline"):
                    j += 1
                if j >= len(lines) or lines[j].kind not in ("body", "short") or _looks_like_heading(lines[j]):
                    break
                if structure_label(lines[j].text) is not None:
                    break  # a new article or item starts: never glued onto the previous one
                held = lines[i:j]
                _join(ln, lines[j])
                lines[i : j + 1] = held
        merged.append(ln)

    # Resolve "short" lines by context.
    paras: list[Paragraph] = []
    for i, ln in enumerate(merged):
        kind = ln.kind
        if kind == "short":
            nxt = next((m for m in merged[i + 1 :] if m.kind != "byline"), None)
            if nxt is None:
                kind = "fragment" if i > 0 else "heading"
            elif nxt.kind in ("short", "caption") and i > 0:
                kind = "caption"
            else:
                kind = "heading"
        paras.append(Paragraph(ln.text, ln.offsets, kind))

    # Drop exact repeats (whitespace-insensitive) and attach section context.
    seen: set[str] = set()
    out: list[Paragraph] = []
    section = ""
    for p in paras:
        key = re.sub(r"\s+", "", p.text)
        if key in seen:
            continue
        seen.add(key)
        if p.kind == "heading":
            section = p.text
        p.section = section
        out.append(p)
    return out


def title_of(paras: list[Paragraph], fallback: str) -> str:
    for p in paras:
        if p.kind == "heading":
            return p.text
        if p.kind == "body":
            break
    return fallback
