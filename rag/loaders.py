"""Turn files into Documents. Text files are decoded with encoding detection (UTF-8, GBK, Big5...)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.errors import InvalidInputError
from rag.types import Document

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".text"}
SUPPORTED = sorted(TEXT_SUFFIXES)


@dataclass
class LoadFailure:
    path: str
    error: str


def decode(data: bytes, name: str = "") -> str:
    """Decode bytes: UTF-8 first (with BOM), then GB18030/Big5 guesses via charset-normalizer."""
    if b"\x00" in data[:4096]:
        raise InvalidInputError(f"{name or 'file'} looks binary (NUL bytes): upload text, not binary data")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is not None:
            return str(best)
    except ImportError:  # optional dependency: fall back to the common Chinese code pages
        pass
    for enc in ("gb18030", "big5"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise InvalidInputError(f"{name or 'file'}: cannot detect its text encoding; save it as UTF-8")


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_file(path: Path, doc_id: str | None = None) -> Document:
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise InvalidInputError(f"{path.name}: unsupported file type {path.suffix!r}; supported: {SUPPORTED}")
    text = decode(path.read_bytes(), path.name)
    return Document(doc_id or path.name, text, source=str(path),
                    meta={"sha256": content_hash(text), "type": path.suffix.lower().lstrip(".")})


def iter_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    if not root.exists():
        raise InvalidInputError(f"{root} does not exist: give a file or a folder of documents")
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            yield p


def load_path(root: Path) -> tuple[list[Document], list[LoadFailure]]:
    """Load every supported file under ``root``; failures are collected, the rest still load."""
    docs, failures = [], []
    for p in iter_files(root):
        try:
            docs.append(load_file(p))
        except (InvalidInputError, OSError) as e:
            msg = e.message if isinstance(e, InvalidInputError) else str(e)
            logger.warning("skipped %s: %s", p, msg)
            failures.append(LoadFailure(str(p), msg))
    return docs, failures
