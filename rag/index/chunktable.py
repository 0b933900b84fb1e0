"""chunks.jsonl read in place: a read-only Mapping[chunk_id, Chunk] over a memory-mapped file.

Only ids, byte offsets and each document's chunk ids live in RAM; a Chunk is parsed when a query hits it
(a few per request). At 1M chunks that is ~24 MB of arrays instead of several GB of Python objects.
Sidecars written with the version:

- ``chunks.idx.npy``: int64 rows (chunk_id, offset, length), sorted by chunk_id;
- ``doc_ids.json`` (``{"doc_ids": [sorted], "counts": [chunks of each]}``) and ``doc_chunks.npy`` (int64 chunk
  ids grouped by document in that order): each document's chunks as arrays. The dict of lists they replace
  (``doc_chunks.json``, still read from older versions) took 78 MB at 250k documents, these ~26 MB.

An index without them is scanned once on load.
"""

from __future__ import annotations

import bisect
import json
import mmap
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from rag.core.errors import IndexCorruptError
from rag.core.types import Chunk

IDX_FILE = "chunks.idx.npy"
DOC_IDS_FILE = "doc_ids.json"
DOC_CHUNKS_FILE = "doc_chunks.npy"
LEGACY_DOCS_FILE = "doc_chunks.json"  # {doc_id: [chunk ids]}, written before the two above
CHUNK_SIDECARS = (IDX_FILE, DOC_IDS_FILE, DOC_CHUNKS_FILE, LEGACY_DOCS_FILE)  # rewritten with chunks.jsonl


class DocChunks(Mapping[str, list[int]]):
    """doc_id -> its chunk ids (ascending), over a sorted list of doc ids and one int64 array (CSR)."""

    def __init__(self, doc_ids: list[str], counts: Iterable[int], chunk_ids: np.ndarray) -> None:
        self._ids = doc_ids
        self._start = np.zeros(len(doc_ids) + 1, np.int64)
        np.cumsum(np.fromiter(counts, np.int64, len(doc_ids)), out=self._start[1:])
        self._cids = np.asarray(chunk_ids, np.int64)
        if int(self._start[-1]) != len(self._cids) or any(a >= b for a, b in zip(doc_ids, doc_ids[1:])):
            raise ValueError("document chunk lists do not match their ids")

    @classmethod
    def from_dict(cls, docs: Mapping[str, Iterable[int]]) -> DocChunks:
        ids = sorted(docs)
        lists = [sorted(int(c) for c in docs[d]) for d in ids]
        flat = np.fromiter((c for cs in lists for c in cs), np.int64, sum(map(len, lists)))
        return cls(ids, map(len, lists), flat)

    def save(self, folder: Path) -> None:
        counts = np.diff(self._start).tolist()
        (folder / DOC_IDS_FILE).write_text(json.dumps({"doc_ids": self._ids, "counts": counts}, ensure_ascii=False))
        np.save(folder / DOC_CHUNKS_FILE, self._cids)

    @classmethod
    def load(cls, folder: Path) -> DocChunks | None:
        """From the version's sidecars, or its older ``doc_chunks.json``; None when it has neither."""
        if (folder / DOC_IDS_FILE).exists() and (folder / DOC_CHUNKS_FILE).exists():
            meta = json.loads((folder / DOC_IDS_FILE).read_text(encoding="utf-8"))
            return cls(meta["doc_ids"], meta["counts"], np.load(folder / DOC_CHUNKS_FILE))
        if (folder / LEGACY_DOCS_FILE).exists():
            return cls.from_dict(json.loads((folder / LEGACY_DOCS_FILE).read_text(encoding="utf-8")))
        return None

    def _pos(self, doc_id: object) -> int:
        if not isinstance(doc_id, str):
            return -1
        i = bisect.bisect_left(self._ids, doc_id)
        return i if i < len(self._ids) and self._ids[i] == doc_id else -1

    def __getitem__(self, doc_id: str) -> list[int]:
        i = self._pos(doc_id)
        if i < 0:
            raise KeyError(doc_id)
        return self._cids[self._start[i] : self._start[i + 1]].tolist()  # type: ignore[no-any-return]

    def __contains__(self, doc_id: object) -> bool:
        return self._pos(doc_id) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


def write_sidecars(folder: Path, chunks: list[Chunk], offsets: list[tuple[int, int]]) -> None:
    """Called by store.save after writing chunks.jsonl; ``offsets`` = (offset, length) per line."""
    rows = np.array([(c.chunk_id, o, n) for c, (o, n) in zip(chunks, offsets)], dtype=np.int64).reshape(-1, 3)
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    np.save(folder / IDX_FILE, rows)
    docs: dict[str, list[int]] = {}
    for c in chunks:
        docs.setdefault(c.doc_id, []).append(c.chunk_id)
    DocChunks.from_dict(docs).save(folder)


class ChunkTable(Mapping[int, Chunk]):
    def __init__(self, folder: Path, cache_size: int = 4096) -> None:
        path = folder / "chunks.jsonl"
        self._folder = folder
        self._file = open(path, "rb")  # noqa: SIM115 - lives as long as the table
        size = path.stat().st_size
        self._mm: mmap.mmap | bytes = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        docs = DocChunks.load(folder) if (folder / IDX_FILE).exists() else None
        if docs is not None:
            rows, self.doc_chunks = np.load(folder / IDX_FILE), docs
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

    def _scan(self) -> tuple[np.ndarray, DocChunks]:
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
        return arr[np.argsort(arr[:, 0], kind="stable")], DocChunks.from_dict(docs)

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
