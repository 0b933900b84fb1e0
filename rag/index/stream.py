"""Streamed ingest: loading, cleaning and chunking of the next files overlap embedding of the current segment.

A producer thread loads files in order (``rag.ingest.loaders``: decode, clean, metadata), chunks them and puts
them on a bounded queue; the caller's thread takes them off in segments of about ``segment_chunks`` chunks,
embeds each segment (length-sorted batches; ONNX Runtime and the tokenizer release the GIL, so the producer runs
meanwhile) and checkpoints it (``rag.index.spool``). At the end one new index version is written (BM25 fitted
once, vector store built once) and switched atomically, so readers see the previous version until then.

Resumable: after a ``kill -9`` the same command skips the files of the segments already on disk and continues
from the next one. Segment boundaries depend only on the files, so a resumed run embeds the same batches and
ends with the same index as an uninterrupted one. The whole run holds the index folder's write lock.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.base import Embedder
from rag.core.errors import InvalidInputError
from rag.core.types import Chunk, Document
from rag.index import store
from rag.index.bm25 import BM25_META, build_bm25, read_tokens, same_tokenizer
from rag.index.lock import index_lock
from rag.index.spool import Entry, Spool, run_key
from rag.index.vectors import build_store
from rag.ingest.chunking import assign_pages, chunk_all
from rag.ingest.embed import embed_chunks
from rag.ingest.loaders import load_file
from rag.ingest.validity import link

logger = logging.getLogger(__name__)


@dataclass
class StreamProgress:
    files_total: int
    files_done: int = 0  # loaded and embedded (or skipped), resumed ones included
    chunks: int = 0  # chunks embedded in this process
    resumed_files: int = 0
    started: float = field(default_factory=time.perf_counter)

    @property
    def passages_per_s(self) -> float:
        return self.chunks / max(time.perf_counter() - self.started, 1e-9)


@dataclass
class StreamReport:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (file, why it was skipped)
    version: str = ""
    chunks: int = 0  # in the new version
    embedded: int = 0  # chunks embedded by this process
    resumed_files: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # embed, wait (for the producer), finish


@dataclass
class StreamParams:
    chunk_size: int = 300
    overlap: int = 1
    batch_size: int = 32
    index_kind: str = "auto"
    vector_store: str = "faiss"
    segment_chunks: int = 512  # chunks per checkpoint (and per embed call)
    queue_docs: int = 256  # documents the producer may be ahead
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. {"collection": ...}


def ingest_files(index_dir: Path, embedder: Embedder, files: list[Path], params: StreamParams | None = None,
                 rebuild: bool = False, root: Path | None = None,
                 progress: Callable[[StreamProgress], None] | None = None) -> StreamReport:
    """Upsert ``files`` (unchanged ones are no-ops) as one new version; ``rebuild`` starts from nothing."""
    p = params or StreamParams()
    with index_lock(index_dir, purpose="rag ingest"):
        base = None if rebuild or not store.check_current(index_dir) else store.load(index_dir)
        if base is not None:
            store.check_model(base.manifest, embedder.name, embedder.dim)
        key = run_key(base.path.name if base else "", files, {
            "rebuild": rebuild, "model": embedder.name, "precision": getattr(embedder, "precision", ""),
            "chunk_size": p.chunk_size, "overlap": p.overlap, "segment_chunks": p.segment_chunks, "meta": p.meta})
        spool = Spool(index_dir, key)
        segs = spool.open()
        done: list[tuple[list[Entry], np.ndarray]] = [Spool.read(s) for s in segs]
        start = max((e.index for es, _ in done for e in es), default=-1) + 1
        prog = StreamProgress(len(files), start, resumed_files=start)
        rep = StreamReport(resumed_files=start)
        _embed_all(embedder, files, start, base.documents if base else {}, p, root, spool, len(segs), done, prog,
                   rep, progress)
        t = time.perf_counter()
        _finish(index_dir, embedder, base, files, done, p, rep)
        rep.timings["finish"] = round(time.perf_counter() - t, 2)
        spool.remove()
        return rep


def _produce(files: list[Path], start: int, base_docs: Any, p: StreamParams, root: Path | None,
             q: queue.Queue[Entry | BaseException | None], stop: threading.Event) -> None:
    try:
        for i in range(start, len(files)):
            if stop.is_set():
                return
            try:
                doc = load_file(files[i], meta=dict(p.meta), root=root)
            except (InvalidInputError, OSError) as e:
                q.put(Entry(i, failure=e.message if isinstance(e, InvalidInputError) else str(e)))
                continue
            old = base_docs.get(doc.doc_id)
            if old is not None and old.meta.get("sha256") == doc.meta.get("sha256") and \
                    old.meta.get("collection") == doc.meta.get("collection"):
                q.put(Entry(i, doc, unchanged=True))
                continue
            chunks = chunk_all([doc], p.chunk_size, p.overlap)
            assign_pages(doc, chunks)
            q.put(Entry(i, doc, chunks))
        q.put(None)
    except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
        q.put(e)


def _embed_all(embedder: Embedder, files: list[Path], start: int, base_docs: Any, p: StreamParams,
               root: Path | None, spool: Spool, n_seg: int, done: list[tuple[list[Entry], np.ndarray]],
               prog: StreamProgress, rep: StreamReport, progress: Callable[[StreamProgress], None] | None) -> None:
    q: queue.Queue[Entry | BaseException | None] = queue.Queue(maxsize=p.queue_docs)
    stop = threading.Event()
    worker = threading.Thread(target=_produce, args=(files, start, base_docs, p, root, q, stop),
                              name="ingest-producer", daemon=True)
    worker.start()
    seg: list[Entry] = []
    wait = embed = 0.0
    try:
        while True:
            t = time.perf_counter()
            item = q.get()
            wait += time.perf_counter() - t
            if isinstance(item, BaseException):
                raise item
            if item is not None:
                seg.append(item)
            if seg and (item is None or sum(len(e.chunks) for e in seg) >= p.segment_chunks):
                chunks = [c for e in seg for c in e.chunks]
                t = time.perf_counter()
                vecs = embed_chunks(embedder, chunks, p.batch_size) if chunks else np.zeros((0, embedder.dim))
                embed += time.perf_counter() - t
                spool.write(n_seg, seg, vecs)
                done.append((seg, vecs))
                n_seg += 1
                prog.files_done, prog.chunks = seg[-1].index + 1, prog.chunks + len(chunks)
                seg = []
                if progress:
                    progress(prog)
            if item is None:
                break
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.05)
    rep.embedded = prog.chunks
    rep.timings.update(embed=round(embed, 2), wait=round(wait, 2))


def _finish(index_dir: Path, embedder: Embedder, base: store.IndexData | None, files: list[Path],
            done: list[tuple[list[Entry], np.ndarray]], p: StreamParams, rep: StreamReport) -> None:
    """One new version: the base's chunks minus replaced documents, plus the new chunks (ids after the base's)."""
    latest: dict[str, tuple[Entry, np.ndarray]] = {}  # doc_id -> its last occurrence (a later file wins)
    for entries, vecs in done:
        row = 0
        for e in entries:
            if e.failure:
                rep.failures.append((str(files[e.index]), e.failure))
            elif e.doc is not None and e.unchanged:
                rep.unchanged.append(e.doc.doc_id)
            elif e.doc is not None:
                latest.pop(e.doc.doc_id, None)
                latest[e.doc.doc_id] = (e, vecs[row : row + len(e.chunks)])
            row += len(e.chunks)
    docs: dict[str, Document] = dict(base.documents) if base else {}
    for doc_id in latest:
        (rep.replaced if doc_id in docs else rep.added).append(doc_id)
    if not latest:
        if base is None:
            raise InvalidInputError("no indexable text found in the given documents")
        rep.version, rep.chunks = base.path.name, base.size
        return
    docs.update({doc_id: e.doc for doc_id, (e, _) in latest.items() if e.doc is not None})
    link(docs)
    kept = [c for c in (base.chunks.values() if base else []) if c.doc_id not in latest]
    kept_ids = np.array([c.chunk_id for c in kept], dtype=np.int64)
    kept_vecs = base.dense.reconstruct(kept_ids) if base is not None and kept else np.zeros((0, embedder.dim))
    next_id = int(max(base.chunks, default=-1)) + 1 if base else 0
    new: list[Chunk] = [c for e, _ in latest.values() for c in e.chunks]
    for i, c in enumerate(new):
        c.chunk_id = next_id + i
    if not kept and not new:
        raise InvalidInputError("no indexable text found in the given documents")
    chunks = kept + new
    vectors = np.vstack([kept_vecs, *(v for _, v in latest.values())]).astype(np.float32)
    manifest: dict[str, Any] = dict(base.manifest) if base else {
        "model": embedder.name, "dim": embedder.dim, "chunk_size": p.chunk_size, "chunk_overlap": p.overlap,
        "dense": {"store": p.vector_store, "metric": "cosine"}}
    manifest["bm25"] = dict(BM25_META)
    cache = read_tokens(base.path) if base is not None and same_tokenizer(base.manifest) else None
    bm = build_bm25(chunks, cache)
    ids = np.array([c.chunk_id for c in chunks], dtype=np.int64)
    dense = build_store(p.vector_store, embedder.dim, ids, vectors, p.index_kind)
    path = store.save(index_dir, manifest, chunks, list(docs.values()), dense, bm)
    rep.version, rep.chunks = path.name, len(chunks)
    logger.info("streamed ingest: +%d ~%d =%d, %d chunks", len(rep.added), len(rep.replaced), len(rep.unchanged),
                len(chunks))
