"""On-disk index: plain, self-describing files, written atomically as a new version.

Layout::

    INDEX_DIR/current -> versions/<stamp>      (symlink swapped atomically with os.replace)
    INDEX_DIR/versions/<stamp>/manifest.json   (format, model, dim, chunking params, counts)
                               chunks.jsonl    (one Chunk per line; chunk_id = FAISS id = BM25 row id)
                               chunks.idx.npy (offsets: chunks are read in place)
                               doc_ids.json + doc_chunks.npy (each document's chunk ids, as arrays)
                               documents.jsonl (original text, so citations can be shown in place)
                               dense.faiss     (IndexIDMap2 over inner-product index; an IVF one is
                                                memory-mapped on load: a query touches only its probed lists)
                               bm25/           (bm25s arrays: .npy + .json, no pickle)

A version is built in a temp folder and renamed into place, then ``current`` is swapped: a crash
at any point leaves the previous good version readable.

Integrity: ``manifest.json`` records the sha256 of every file of its version (``files``; milvus-lite's own
data folder excepted, which the database itself writes to); ``load`` checks them before opening anything, so
an overwritten or missing file is an ``IndexChecksumError`` naming it (503 in the API), never a 500 on every
query later. A version written before checksums existed still loads, with a warning. A ``current`` link that
points nowhere is an ``IndexCorruptError``, and ``apply_changes`` refuses to start a fresh index over it.
Writers hold the folder's lock (``rag.index.lock``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.core.errors import IndexChecksumError, IndexCorruptError, IndexNotFoundError, ModelMismatchError
from rag.core.types import Chunk, Document
from rag.index.chunktable import ChunkTable, write_sidecars
from rag.index.doctable import DocumentTable
from rag.index.lock import index_lock
from rag.index.vectors import VectorStore, load_store

logger = logging.getLogger(__name__)

FORMAT = 1
KEEP_VERSIONS = 3


@dataclass
class IndexData:
    """Everything the query path needs, loaded once and never mutated in place."""

    manifest: dict[str, Any]
    chunks: Mapping[int, Chunk]  # a ChunkTable when loaded from disk (parsed on access)
    documents: Mapping[str, Document]  # DocumentTable for the file store: texts read on demand
    dense: VectorStore
    bm25: Any  # bm25s.BM25
    bm25_ids: np.ndarray  # BM25 row -> chunk_id
    path: Path = field(default_factory=Path)
    doc_chunks: Mapping[str, list[int]] = field(default_factory=dict)  # a DocChunks when loaded from disk
    _bm25_order: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def bm25_row(self, chunk_ids: np.ndarray) -> np.ndarray:
        """BM25 rows of the given chunk ids (inverse of ``bm25_ids``, built on first use)."""
        if self._bm25_order is None:
            order = np.argsort(self.bm25_ids, kind="stable")
            self._bm25_order = (order, np.asarray(self.bm25_ids)[order])
        order, sorted_ids = self._bm25_order
        return np.asarray(order[np.searchsorted(sorted_ids, chunk_ids)])

    def __post_init__(self) -> None:
        if isinstance(self.chunks, ChunkTable):
            self.doc_chunks = self.chunks.doc_chunks
            return
        docs: dict[str, list[int]] = {}
        for cid, c in self.chunks.items():
            docs.setdefault(c.doc_id, []).append(cid)
        self.doc_chunks = docs

    @property
    def size(self) -> int:
        return len(self.chunks)


def current_path(index_dir: Path) -> Path:
    return index_dir / "current"


def exists(index_dir: Path) -> bool:
    return (current_path(index_dir) / "manifest.json").exists()


def dangling(index_dir: Path) -> bool:
    """``current`` is there but leads to no version (its folder deleted, or never written)."""
    cur = current_path(index_dir)
    return os.path.lexists(cur) and not (cur / "manifest.json").exists()


def _dangling_error(index_dir: Path) -> IndexCorruptError:
    cur = current_path(index_dir)
    try:
        target = os.readlink(cur)
    except OSError:
        target = "?"
    return IndexCorruptError(f"the index's `current` points to {target}, which holds no index version "
                             "(deleted or damaged): run `rag ingest PATH --rebuild` (uploads are refused until "
                             "then, so no document is silently dropped)")


def check_current(index_dir: Path) -> bool:
    """True when there is a current version, False when there is no index at all; a dangling ``current`` is
    an ``IndexCorruptError`` (a writer must not start a fresh index over it)."""
    if exists(index_dir):
        return True
    if dangling(index_dir):
        raise _dangling_error(index_dir)
    return False


# --- checksums ------------------------------------------------------------------------------------------------

CHECKSUM_SKIP = ("milvus.db",)  # folders a database writes to in place: not checksummed


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file of a version folder, by path relative to it (``CHECKSUM_SKIP`` left out)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and rel.name != "manifest.json" and not (set(rel.parts) & set(CHECKSUM_SKIP)):
            out[rel.as_posix()] = _sha256(p)
    return out


def verify(folder: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists exists and has its sha256, else an ``IndexChecksumError`` naming it."""
    files = manifest.get("files")
    if files is None:
        logger.warning("index version %s has no checksums (written by an older release): loaded unverified; "
                       "the next upload or `rag ingest` writes a version with them", folder.name)
        return
    if not isinstance(files, dict):
        raise IndexChecksumError(f"manifest of index version {folder.name} is damaged (files): "
                                 "run `rag ingest PATH --rebuild`")
    for rel, want in files.items():
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise IndexChecksumError(f"manifest of index version {folder.name} lists {rel!r}: damaged; "
                                     "run `rag ingest PATH --rebuild`")
        f = folder / rel
        if not f.is_file():
            raise IndexChecksumError(f"index file {rel} of version {folder.name} is missing: "
                                     "run `rag ingest PATH --rebuild`")
        if _sha256(f) != want:
            raise IndexChecksumError(f"index file {rel} of version {folder.name} does not match its checksum "
                                     "(overwritten or damaged): run `rag ingest PATH --rebuild`")


def save(index_dir: Path, manifest: dict[str, Any], chunks: list[Chunk], documents: list[Document],
         dense: VectorStore, bm25: Any) -> Path:
    """Write a complete new version and make it current. Returns the version folder.

    Takes the folder's write lock (re-entrant: callers doing a read-modify-write already hold it)."""
    with index_lock(index_dir):
        return _save(index_dir, manifest, chunks, documents, dense, bm25)


def _save(index_dir: Path, manifest: dict[str, Any], chunks: list[Chunk], documents: list[Document],
          dense: VectorStore, bm25: Any) -> Path:
    tmp = new_version(index_dir)
    ids = np.array([c.chunk_id for c in chunks], dtype=np.int64)
    dense.save(tmp)
    offsets, pos = [], 0
    with open(tmp / "chunks.jsonl", "wb") as fb:
        for c in chunks:
            line = (json.dumps(c.to_json(), ensure_ascii=False) + "\n").encode("utf-8")
            fb.write(line)
            offsets.append((pos, len(line)))
            pos += len(line)
    write_sidecars(tmp, chunks, offsets)
    with open(tmp / "documents.jsonl", "w", encoding="utf-8") as f:
        for d in documents:
            f.write(json.dumps(d.__dict__, ensure_ascii=False) + "\n")
    if bm25 is not None:
        bm25.save(str(tmp / "bm25"), show_progress=False)
        toks = getattr(bm25, "chunk_tokens", None)
        if toks is not None:
            with open(tmp / "tokens.jsonl", "w", encoding="utf-8") as f:
                for c, t in zip(chunks, toks):
                    f.write(json.dumps([c.chunk_id, " ".join(t)], ensure_ascii=False) + "\n")
    np.save(tmp / "bm25_ids.npy", ids)
    manifest = {**manifest, "format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "n_chunks": len(chunks), "n_documents": len(documents),
                "dense": {**manifest.get("dense", {}), "kind": dense.kind}}
    final = commit(index_dir, tmp, manifest)
    logger.info("index version %s: %d chunks, %d documents", final.name, len(chunks), len(documents))
    return final


def new_version(index_dir: Path) -> Path:
    """An empty temporary folder for the next version (``.tmp-<stamp>``; ``commit`` makes it current)."""
    versions = index_dir / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S") + f"-{time.time_ns() % 10**9:09d}"
    tmp = versions / f".tmp-{stamp}"
    tmp.mkdir()
    return tmp


def commit(index_dir: Path, tmp: Path, manifest: dict[str, Any]) -> Path:
    """Checksum and write ``manifest`` into the complete version folder ``tmp``, fsync it, rename it into
    place and switch ``current`` to it (the caller holds the index lock). Returns the version folder."""
    versions, stamp = tmp.parent, tmp.name.removeprefix(".tmp-")
    manifest = {**manifest, "files": checksums(tmp)}
    (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
    _fsync_tree(tmp)
    final = versions / stamp
    os.replace(tmp, final)
    link_tmp = index_dir / f".current-{stamp}"
    os.symlink(Path("versions") / stamp, link_tmp)
    os.replace(link_tmp, current_path(index_dir))  # the atomic switch
    _prune(versions, keep=final)
    return final


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def _prune(versions: Path, keep: Path) -> None:
    from rag.index.vectors import release, server_collection

    done = sorted(p for p in versions.iterdir() if not p.name.startswith("."))
    kept = [p for p in done[-KEEP_VERSIONS:]] + [keep]
    in_use = {c for c in map(server_collection, kept) if c}
    for old in done[:-KEEP_VERSIONS]:
        if old != keep:
            release(old, in_use)  # a Milvus server collection is not in the folder: drop it too
            shutil.rmtree(old, ignore_errors=True)
    for stale in versions.glob(".tmp-*"):  # left by a crash mid-write
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)


def read_manifest(index_dir: Path) -> dict[str, Any]:
    path = current_path(index_dir) / "manifest.json"
    if not path.exists():
        if dangling(index_dir):
            raise _dangling_error(index_dir)
        raise IndexNotFoundError(f"no index at {index_dir}: run `rag ingest PATH` to build one")
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as e:
        raise IndexCorruptError(f"{path} is unreadable ({e}): run `rag ingest PATH --rebuild`") from e


def check_model(manifest: dict[str, Any], model: str, dim: int) -> None:
    if manifest.get("model") != model or int(manifest.get("dim", -1)) != dim:
        raise ModelMismatchError(
            f"index was built with model {manifest.get('model')!r} ({manifest.get('dim')}-d) but the "
            f"service runs {model!r} ({dim}-d): set RAG_MODEL_NAME to match or re-run `rag ingest --rebuild`"
        )


def load(index_dir: Path) -> IndexData:
    import bm25s

    manifest = read_manifest(index_dir)
    path = current_path(index_dir).resolve()
    verify(path, manifest)
    try:
        chunks = ChunkTable(path)
        documents = DocumentTable(path)  # metadata in memory, each text read from the file when asked for
        dense = load_store(path)
        bm25_ids = np.load(path / "bm25_ids.npy", mmap_mode="r")
        bm25 = bm25s.BM25.load(str(path / "bm25"), mmap=True) if (path / "bm25").exists() else None
    except Exception as e:  # any unreadable component means the version is unusable
        raise IndexCorruptError(f"index at {path} is unreadable ({type(e).__name__}: {e}): "
                                "run `rag ingest PATH --rebuild`") from e
    if dense.ntotal != len(chunks) or len(bm25_ids) != len(chunks) or manifest.get("n_chunks") != len(chunks):
        raise IndexCorruptError(f"index at {path} is inconsistent (faiss {dense.ntotal}, chunks {len(chunks)}):"
                                " run `rag ingest PATH --rebuild`")
    return IndexData(manifest, chunks, documents, dense, bm25, bm25_ids, path)
