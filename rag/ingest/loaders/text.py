"""Plain text (``.txt .md .markdown .text``): UTF-8, else GB18030/Big5/... detected."""

from __future__ import annotations

from rag.ingest.loaders.base import Parsed, decode


def load_text(data: bytes, name: str) -> Parsed:
    return decode(data, name), {}
