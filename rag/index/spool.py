"""Checkpoints of a streamed ingest (``rag.index.stream``): what a killed run already embedded, on disk.

Layout (beside the versions, never read by the query path)::

    INDEX_DIR/.ingest/spool.json          the run's key: base version, files (path, size, mtime), parameters
                      seg-000000/         one segment = consecutive files, written whole or not at all
                             entries.jsonl    per file: its index, the Document (or the load failure), its chunks
                             vectors.npy      the chunks' vectors, in entry order

A segment is written into ``.tmp-seg-N`` and renamed into place after an fsync, so a ``kill -9`` leaves either
the whole segment or a temp folder that the next run deletes. A run whose key differs (other files, another
base version, other chunking or model) starts over: the spool describes exactly one ingest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.core.types import Chunk, Document

logger = logging.getLogger(__name__)

SPOOL_DIR = ".ingest"


@dataclass
class Entry:
    """One input file as the producer left it: a document and its chunks, or why it was skipped."""

    index: int
    doc: Document | None = None
    chunks: list[Chunk] = field(default_factory=list)
    failure: str = ""
    unchanged: bool = False  # same content and collection as in the base version: nothing to embed

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "doc": self.doc.__dict__ if self.doc else None, "failure": self.failure,
                "unchanged": self.unchanged, "chunks": [c.to_json() for c in self.chunks]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Entry:
        return cls(d["index"], Document(**d["doc"]) if d["doc"] else None,
                   [Chunk.from_json(c) for c in d["chunks"]], d["failure"], d["unchanged"])


def run_key(base_version: str, files: list[Path], params: dict[str, Any]) -> str:
    """sha256 over everything that decides the result: a resumed run must be the same run."""
    h = hashlib.sha256(json.dumps({"base": base_version, **params}, sort_keys=True).encode())
    for p in files:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class Spool:
    def __init__(self, index_dir: Path, key: str) -> None:
        self.dir, self.key = index_dir / SPOOL_DIR, key

    def open(self) -> list[Path]:
        """The complete segments of an interrupted run with this key (in order); else a fresh, empty spool."""
        meta = self.dir / "spool.json"
        if meta.exists() and json.loads(meta.read_text()).get("key") == self.key:
            for tmp in self.dir.glob(".tmp-seg-*"):  # a segment the killed run did not finish
                shutil.rmtree(tmp, ignore_errors=True)
            segs = sorted(self.dir.glob("seg-*"))
            if segs:
                logger.info("resuming an interrupted ingest: %d segments already embedded", len(segs))
            return segs
        if self.dir.exists():
            logger.info("discarding the checkpoints of a different ingest in %s", self.dir)
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        tmp = meta.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": self.key}))
        os.replace(tmp, meta)
        return []

    def write(self, n: int, entries: list[Entry], vectors: np.ndarray) -> Path:
        tmp, final = self.dir / f".tmp-seg-{n:06d}", self.dir / f"seg-{n:06d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        with open(tmp / "entries.jsonl", "w", encoding="utf-8") as f:
            for e in entries:
                f.write(json.dumps(e.to_json(), ensure_ascii=False) + "\n")
        np.save(tmp / "vectors.npy", np.ascontiguousarray(vectors, np.float32))
        for p in tmp.iterdir():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final

    @staticmethod
    def read(seg: Path) -> tuple[list[Entry], np.ndarray]:
        with open(seg / "entries.jsonl", encoding="utf-8") as f:
            entries = [Entry.from_json(json.loads(line)) for line in f if line.strip()]
        return entries, np.load(seg / "vectors.npy")

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
