"""HTML pages: the main text as markdown (trafilatura, tables included), the page title."""

from __future__ import annotations

from rag.core.errors import UnreadableFileError
from rag.ingest.loaders.base import Parsed, check_deadline, decode


def load_html(data: bytes, name: str) -> Parsed:
    import trafilatura

    html = decode(data, name)
    text = trafilatura.extract(html, output_format="markdown", include_tables=True, favor_recall=True)
    if not text:
        raise UnreadableFileError(f"{name}: no main text found in the HTML page")
    check_deadline()
    meta = trafilatura.extract_metadata(html)
    extra = {"title": meta.title} if meta is not None and meta.title else {}
    return text, extra
