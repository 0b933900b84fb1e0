"""Chinese-aware sentence splitting and sentence-packing chunker with source offsets; chunk ids and pages."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable

from rag.core.types import Chunk, Document, Sentence
from rag.ingest.clean import ARTICLE_LEVEL, CLOSERS, Paragraph, clean, structure_label, title_of

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


FLUSH_LEVEL = 6  # a paragraph opening a 编/章/节/条/款 or an 一、 item starts a new chunk (no overlap across it)


class _Path:
    """The 公文 structure path while reading: a label of level ``n`` closes every open label of level >= n."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, str]] = []

    def enter(self, level: int, label: str) -> None:
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, label))

    def in_article(self) -> bool:
        return any(lv == ARTICLE_LEVEL for lv, _ in self.stack)

    def reset(self) -> None:
        self.stack = []

    def labels(self) -> tuple[str, ...]:
        return tuple(label for _, label in self.stack)


def _common_path(paths: list[tuple[str, ...]]) -> str:
    """The structure all of a chunk's sentences share: a chunk over items （一） and （二） is under their parent."""
    common = paths[0]
    for p in paths[1:]:
        n = 0
        while n < min(len(common), len(p)) and common[n] == p[n]:
            n += 1
        common = common[:n]
    return " > ".join(common)


def chunk_document(doc: Document, chunk_size: int = 300, overlap: int = 1) -> list[Chunk]:
    """Clean ``doc.text`` and pack its sentences into chunks of about ``chunk_size`` characters.

    Chunks never cross a section heading; captions become their own ``kind="caption"`` chunks;
    bylines and stray fragments are not indexed. ``overlap`` sentences repeat between neighbours.

    公文 structure: a paragraph opening an article (``第十二条``), a 款 or an ``一、`` item starts a new chunk with
    no overlap, so a chunk never spans two articles when they fit; every chunk carries the structure path at
    its sentences share (``Chunk.path``: ``第三章 > 第十二条``; items such as ``（一）`` only outside articles).
    """
    paras = clean(doc.text)
    title = doc.title or title_of(paras, doc.doc_id)
    chunks: list[Chunk] = []
    buf: list[Sentence] = []
    brk: list[bool] = []
    paths: list[tuple[str, ...]] = []
    section = ""
    path = _Path()

    def flush(kind: str = "body", keep: int = 0) -> None:
        nonlocal buf, brk, paths
        if buf:
            chunks.append(
                Chunk(-1, doc.doc_id, _join(buf, brk), buf[0].start, buf[-1].end, title, section, kind,
                      list(buf), path=_common_path(paths))
            )
        if keep and len(buf) > keep:
            buf, brk, paths = buf[-keep:], [False] + brk[len(brk) - keep + 1 :], paths[-keep:]
        else:
            buf, brk, paths = [], [], []

    for p in paras:
        if p.kind in ("byline", "fragment"):
            continue
        label = structure_label(p.text, heading=p.kind == "heading")
        if p.kind == "heading":
            flush()
            section = p.text
            if label is not None:
                path.enter(*label)
            elif chunks or buf:
                path.reset()  # an unnumbered heading after the text began (附件, a sheet name) closes the path
            continue
        if label is not None and not (path.in_article() and label[0] > ARTICLE_LEVEL + 1):
            if label[0] <= FLUSH_LEVEL:
                flush()
            path.enter(*label)
        sents = split_sentences(p, chunk_size)
        if p.kind == "caption":
            saved, saved_brk, saved_paths = buf, brk, paths
            buf, brk, paths = sents, [False] * len(sents), [path.labels()] * len(sents)
            flush("caption")
            buf, brk, paths = saved, saved_brk, saved_paths
            continue
        for i, s in enumerate(sents):
            if buf and sum(len(x.text) for x in buf) + len(s.text) > chunk_size:
                flush(keep=overlap)
            buf.append(s)
            brk.append(i == 0 and len(buf) > 1)
            paths.append(path.labels())
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
