"""Chinese-aware sentence splitting and sentence-packing chunker with source offsets; chunk ids and pages."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable

from rag.core.types import Chunk, Document, Sentence
from rag.ingest.clean import CLOSERS, Paragraph, clean, title_of

# A sentence ends at 。！？；!? (or '. ' in Latin text), plus any closing quotes/brackets.
_SENT_END = re.compile(rf"(?:[。！？；;!?…]+|(?<=[a-z0-9\)])\.(?=\s))[{re.escape(CLOSERS)}]*")
_SOFT_BREAK = re.compile(r"[，,、：:]")


def split_sentences(p: Paragraph, max_chars: int) -> list[Sentence]:
    """Split a paragraph into sentences; a sentence over ``max_chars`` is cut at commas, then hard."""
    out: list[Sentence] = []
    pos = 0
    bounds = [m.end() for m in _SENT_END.finditer(p.text)]
    if not bounds or bounds[-1] != len(p.text):
        bounds.append(len(p.text))
    for end in bounds:
        for s, e in _cut_long(p.text, pos, end, max_chars):
            seg = p.text[s:e]
            lead = len(seg) - len(seg.lstrip())
            trail = len(seg) - len(seg.rstrip())
            s, e = s + lead, e - trail
            if e > s:
                o_s, o_e = p.span(s, e)
                out.append(Sentence(p.text[s:e], o_s, o_e))
        pos = end
    return out


def _cut_long(text: str, s: int, e: int, max_chars: int) -> Iterable[tuple[int, int]]:
    while e - s > max_chars:
        window = text[s : s + max_chars]
        cuts = [m.end() for m in _SOFT_BREAK.finditer(window)]
        cut = s + (cuts[-1] if cuts and cuts[-1] > max_chars // 3 else max_chars)
        yield s, cut
        s = cut
    yield s, e


def _join(parts: list[Sentence], breaks: list[bool]) -> str:
    text = ""
    for sent, brk in zip(parts, breaks):
        if text:
            if brk:
                text += "\n"
            elif text[-1].isascii() and sent.text[:1].isascii():
                text += " "
        text += sent.text
    return text


def chunk_document(doc: Document, chunk_size: int = 300, overlap: int = 1) -> list[Chunk]:
    """Clean ``doc.text`` and pack its sentences into chunks of about ``chunk_size`` characters.

    Chunks never cross a section heading; captions become their own ``kind="caption"`` chunks;
    bylines and stray fragments are not indexed. ``overlap`` sentences repeat between neighbours.
    """
    paras = clean(doc.text)
    title = doc.title or title_of(paras, doc.doc_id)
    chunks: list[Chunk] = []
    buf: list[Sentence] = []
    brk: list[bool] = []
    section = ""

    def flush(kind: str = "body", keep: int = 0) -> None:
        nonlocal buf, brk
        if buf:
            chunks.append(
                Chunk(-1, doc.doc_id, _join(buf, brk), buf[0].start, buf[-1].end, title, section, kind,
                      list(buf))
            )
        if keep and len(buf) > keep:
            buf, brk = buf[-keep:], [False] + brk[len(brk) - keep + 1 :]
        else:
            buf, brk = [], []

    for p in paras:
        if p.kind in ("byline", "fragment"):
            continue
        if p.kind == "heading":
            flush()
            section = p.text
            continue
        sents = split_sentences(p, chunk_size)
        if p.kind == "caption":
            saved, saved_brk = buf, brk
            buf, brk = sents, [False] * len(sents)
            flush("caption")
            buf, brk = saved, saved_brk
            continue
        for i, s in enumerate(sents):
            if buf and sum(len(x.text) for x in buf) + len(s.text) > chunk_size:
                flush(keep=overlap)
            buf.append(s)
            brk.append(i == 0 and len(buf) > 1)
    flush()
    return chunks


def chunk_all(docs: list[Document], chunk_size: int, overlap: int, start_id: int = 0) -> list[Chunk]:
    chunks: list[Chunk] = []
    for d in docs:
        for c in chunk_document(d, chunk_size, overlap):
            c.chunk_id = start_id + len(chunks)
            chunks.append(c)
        if not d.title:
            d.title = chunks[-1].title if chunks and chunks[-1].doc_id == d.doc_id else d.doc_id
    return chunks


def assign_pages(doc: Document, chunks: list[Chunk]) -> None:
    starts = doc.meta.get("page_starts")
    if starts:
        for c in chunks:
            c.page = bisect.bisect_right(starts, c.start)
