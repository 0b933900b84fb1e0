"""chunks.jsonl read in place: a read-only Mapping[chunk_id, Chunk] over a memory-mapped file.

Only ids, byte offsets and each document's chunk ids live in RAM; a Chunk is parsed when a query hits it
(a few per request). At 1M chunks that is ~24 MB of arrays instead of several GB of Python objects.
The sidecar ``chunks.idx.npy`` (int64 rows: chunk_id, offset, length; sorted by chunk_id) and
``doc_chunks.json`` are written with the version; an index without them is scanned once on load.
"""

from __future__ import annotations

import json
import mmap
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from rag.core.errors import IndexCorruptError
from rag.core.types import Chunk

IDX_FILE = "chunks.idx.npy"
DOCS_FILE = "doc_chunks.json"


def write_sidecars(folder: Path, chunks: list[Chunk], offsets: list[tuple[int, int]]) -> None:
    """Called by store.save after writing chunks.jsonl; ``offsets`` = (offset, length) per line."""
    rows = np.array([(c.chunk_id, o, n) for c, (o, n) in zip(chunks, offsets)], dtype=np.int64).reshape(-1, 3)
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    np.save(folder / IDX_FILE, rows)
    docs: dict[str, list[int]] = {}
    for c in chunks:
        docs.setdefault(c.doc_id, []).append(c.chunk_id)
    (folder / DOCS_FILE).write_text(json.dumps(docs, ensure_ascii=False))


class ChunkTable(Mapping[int, Chunk]):
    def __init__(self, folder: Path, cache_size: int = 4096) -> None:
        path = folder / "chunks.jsonl"
        self._folder = folder
        self._file = open(path, "rb")  # noqa: SIM115 - lives as long as the table
        size = path.stat().st_size
        self._mm: mmap.mmap | bytes = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        if (folder / IDX_FILE).exists() and (folder / DOCS_FILE).exists():
            rows = np.load(folder / IDX_FILE)
            self.doc_chunks: dict[str, list[int]] = json.loads((folder / DOCS_FILE).read_text(encoding="utf-8"))
        else:
            rows, self.doc_chunks = self._scan()
        if rows.ndim != 2 or rows.shape[1] != 3 or (len(rows) and rows[-1, 1] + rows[-1, 2] > size + 1):
            raise ValueError(f"{IDX_FILE} does not match chunks.jsonl")
        self._ids = np.ascontiguousarray(rows[:, 0])
        self._off = np.ascontiguousarray(rows[:, 1])
        self._len = np.ascontiguousarray(rows[:, 2])
        self._cache: OrderedDict[int, Chunk] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def _scan(self) -> tuple[np.ndarray, dict[str, list[int]]]:
        rows: list[tuple[int, int, int]] = []
        docs: dict[str, list[int]] = {}
        pos = 0
        data = bytes(self._mm)
        for line in data.splitlines(keepends=True):
            if line.strip():
                d = json.loads(line)
                rows.append((int(d["chunk_id"]), pos, len(line)))
                docs.setdefault(d["doc_id"], []).append(int(d["chunk_id"]))
            pos += len(line)
        arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
        return arr[np.argsort(arr[:, 0], kind="stable")], docs

    def _pos(self, cid: int) -> int:
        i = int(np.searchsorted(self._ids, cid))
        if i >= len(self._ids) or int(self._ids[i]) != cid:
            return -1
        return i

    def __getitem__(self, cid: int) -> Chunk:
        cid = int(cid)
        with self._lock:
            c = self._cache.get(cid)
            if c is not None:
                self._cache.move_to_end(cid)
                return c
        i = self._pos(cid)
        if i < 0:
            raise KeyError(cid)
        o, n = int(self._off[i]), int(self._len[i])
        try:
            c = Chunk.from_json(json.loads(self._mm[o : o + n]))
            if c.chunk_id != cid:
                raise ValueError(f"line holds chunk {c.chunk_id}")
        except (ValueError, KeyError, TypeError) as e:  # overwritten after load: a 503 naming it, not a 500
            raise IndexCorruptError(f"chunks.jsonl of index version {self._folder.name} is damaged at chunk "
                                    f"{cid} ({type(e).__name__}): run `rag ingest PATH --rebuild`") from e
        with self._lock:
            self._cache[cid] = c
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return c

    def __contains__(self, cid: object) -> bool:
        return isinstance(cid, (int, np.integer)) and self._pos(int(cid)) >= 0

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids.tolist())

    def __len__(self) -> int:
        return len(self._ids)
