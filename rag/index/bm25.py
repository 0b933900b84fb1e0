"""BM25 over chunk tokens (bm25s), and the manifest block that records how it was built."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rag.core.text import TOKENIZER, tokenize_many
from rag.core.types import Chunk

# BM25 parameters and tokenizer, recorded in every version's manifest.
BM25_META = {"k1": 1.5, "b": 0.75, "tokenizer": TOKENIZER}


def same_tokenizer(manifest: dict[str, Any]) -> bool:
    """The version's BM25 tokens were made by this release's tokenizer (else they are re-made)."""
    return bool(manifest.get("bm25", {}).get("tokenizer") == TOKENIZER)


def build_bm25(chunks: list[Chunk], cache: dict[int, list[str]] | None = None) -> Any:
    """Fit BM25 over the chunks; tokens of chunks in ``cache`` (from the previous version's
    tokens.jsonl) are reused, so an incremental update only tokenises new text."""
    import bm25s

    cache = cache or {}
    todo = [c for c in chunks if c.chunk_id not in cache]
    fresh = dict(zip((c.chunk_id for c in todo), tokenize_many([c.embed_text() for c in todo])))
    tokens = [cache.get(c.chunk_id) or fresh.get(c.chunk_id, []) for c in chunks]
    bm = bm25s.BM25()
    bm.index(tokens, show_progress=False)
    bm.chunk_tokens = tokens  # written by store.save as tokens.jsonl
    return bm


def read_tokens(folder: Path) -> dict[int, list[str]]:
    """BM25 tokens per chunk id of a version (empty when the version has none)."""
    out: dict[int, list[str]] = {}
    path = folder / "tokens.jsonl"
    if path.exists():
        with open(path, encoding="utf-8") as f:
            for line in f:
                cid, toks = json.loads(line)
                out[int(cid)] = toks.split(" ") if toks else []
    return out
