"""The Milvus backend's connection and collections: one index version = two collections behind one alias.

``<alias>_v<stamp>`` holds a row per chunk: ``chunk_id`` (INT64 primary key, the id BM25 and the vectors share),
``doc_id``, ``collection``, ``path`` (article path, 第三章 > 第十二条), ``status`` and the dates of the document
(validity), ``chunk`` (the Chunk as JSON: display text, offsets, sentences), ``lex`` (the project's own BM25
tokens, space-joined, after traditional->simplified folding: ``rag.core.text.tokenize``) under the standard
analyzer, ``sparse`` (Milvus' BM25 function over ``lex``) and ``vector`` (the unit dense vector, metric IP).
``<alias>_v<stamp>_docs`` holds the document records (JSON, split in parts of at most ``DOC_PART`` characters).
The version's manifest (model, dim, chunking, tokenizer, analyzer, counts) is the chunk collection's property
``rag.manifest``. The alias ``<alias>`` names the live version and is swapped only after a complete build.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from rag.core.errors import IndexMismatchError, IndexUnavailableError, RagError
from rag.core.text import TOKENIZER

logger = logging.getLogger(__name__)

# The standard analyzer splits on non-alphanumerics: every project token is one run of letters, digits or CJK
# characters except decimals (1.5), whose point becomes "p" so the analyzer keeps them whole.
ANALYZER: dict[str, Any] = {"tokenizer": "standard"}
LEX_ENCODING = "tokens-space-joined;decimal-point=p"
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}  # bm25s' defaults, as the file backend (rag.index.bm25)
MANIFEST_KEY = "rag.manifest"
DOC_PART = 16_000  # characters per document part (<= 64,000 bytes of UTF-8: under VARCHAR's 65,535)
MAX_TEXT = 65_535
KEEP_VERSIONS = 3
REINDEX = "re-index: RAG_BACKEND=milvus rag ingest PATH --rebuild"

T = TypeVar("T")
# Calls a query makes get RAG_MILVUS_TIMEOUT; writes (insert, flush, create, alias swaps) six times it, >= 60 s
READS = frozenset({"search", "query", "get", "query_iterator", "list_aliases", "describe_alias", "describe_collection",
                   "list_collections"})


def lex_text(tokens: list[str]) -> str:
    return " ".join(t.replace(".", "p") for t in tokens)


def version_name(alias: str) -> str:
    return f"{alias}_v{time.strftime('%Y%m%dT%H%M%S')}_{time.time_ns() % 10**9:09d}"


def docs_name(version: str) -> str:
    return f"{version}_docs"


def is_version(alias: str, name: str) -> bool:
    return re.fullmatch(re.escape(alias) + r"_v\d{8}T\d{6}_\d{9}", name) is not None


class Milvus:
    """A pymilvus client whose every call has a timeout and whose failures are ``IndexUnavailableError``."""

    def __init__(self, uri: str, token: str = "", timeout: float = 10.0) -> None:
        if not uri:
            raise IndexUnavailableError("RAG_BACKEND=milvus needs RAG_MILVUS_URI (http://host:19530, or a path "
                                        "ending in .db for milvus-lite in this process)")
        self.uri, self.timeout = uri, timeout
        self._token = token
        self._client: Any = None

    def _open(self) -> Any:
        if self._client is None:
            from pymilvus import MilvusClient

            self._client = MilvusClient(uri=self.uri, token=self._token, timeout=self.timeout)
        return self._client

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``client.<method>(*args, timeout=..., **kwargs)``; a failure names Milvus and the reason."""
        if method not in ("prepare_index_params", "create_schema"):  # local calls: no timeout
            kwargs.setdefault("timeout", self.timeout if method in READS else max(60.0, 6 * self.timeout))
        return self.run(method, lambda: getattr(self._open(), method)(*args, **kwargs), kwargs.get("timeout"))

    def run(self, what: str, fn: Callable[[], T], timeout: float | None = None) -> T:
        """``fn()``, its failure an ``IndexUnavailableError`` naming Milvus, ``what`` failed and why."""
        try:
            return fn()
        except RagError:
            raise
        except Exception as e:  # noqa: BLE001 - pymilvus and grpc raise many types: all mean "Milvus failed"
            details = getattr(e, "details", None)
            reason = getattr(e, "message", None) or (details() if callable(details) else None) or str(e)
            raise IndexUnavailableError(f"Milvus at {self.uri} failed on {what}: {str(reason)[:300]} "
                                        f"(RAG_MILVUS_URI; timeout {timeout or self.timeout:g} s)") from e

    def rows(self, name: str, fields: list[str], expr: str = "", batch: int = 1000) -> list[dict[str, Any]]:
        """Every row of ``name`` matching ``expr`` (a query iterator, strongly consistent)."""
        it = self.call("query_iterator", name, batch_size=batch, filter=expr, output_fields=fields,
                       consistency_level="Strong")
        out: list[dict[str, Any]] = []
        try:
            while got := self.run("query_iterator", it.next):
                out += got
        finally:
            self.run("query_iterator", it.close)
        return out

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                logger.debug("closing the Milvus client failed", exc_info=True)
            self._client = None

    def live(self, alias: str) -> str | None:
        """The collection the alias points at, None when there is no alias (no index yet): one round trip when
        it exists (every request of a replica asks)."""
        try:
            return str(self.call("describe_alias", alias)["collection_name"])
        except IndexUnavailableError:
            if alias in self.call("list_aliases").get("aliases", []):
                raise  # Milvus answers but the alias could not be read: a real failure
            return None


def create_version(m: Milvus, name: str, dim: int, manifest: dict[str, Any]) -> None:
    """The two empty collections of a new version (strong consistency: a write is read at once)."""
    from pymilvus import DataType, Function, FunctionType

    s = m.call("create_schema", auto_id=False, enable_dynamic_field=False)
    s.add_field("chunk_id", DataType.INT64, is_primary=True)
    s.add_field("doc_id", DataType.VARCHAR, max_length=1024)
    s.add_field("collection", DataType.VARCHAR, max_length=1024)
    s.add_field("path", DataType.VARCHAR, max_length=2048)
    s.add_field("status", DataType.VARCHAR, max_length=32)
    s.add_field("date_effective", DataType.VARCHAR, max_length=32)
    s.add_field("date_expires", DataType.VARCHAR, max_length=32)
    s.add_field("chunk", DataType.VARCHAR, max_length=MAX_TEXT)
    s.add_field("lex", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True, analyzer_params=ANALYZER)
    s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    s.add_function(Function(name="lex_bm25", function_type=FunctionType.BM25, input_field_names=["lex"],
                            output_field_names=["sparse"]))
    p = m.call("prepare_index_params")
    p.add_index(field_name="vector", index_type="AUTOINDEX" if m.uri.startswith("https") else "FLAT",
                metric_type="IP")
    p.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS)
    m.call("create_collection", name, schema=s, index_params=p, consistency_level="Strong",
           properties={MANIFEST_KEY: json.dumps(manifest, ensure_ascii=False)})
    d = m.call("create_schema", auto_id=False, enable_dynamic_field=False)
    d.add_field("key", DataType.VARCHAR, is_primary=True, max_length=1100)
    d.add_field("doc_id", DataType.VARCHAR, max_length=1024)
    d.add_field("part", DataType.INT64)
    d.add_field("data", DataType.VARCHAR, max_length=MAX_TEXT)
    d.add_field("v", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
    p = m.call("prepare_index_params")
    p.add_index(field_name="v", index_type="FLAT", metric_type="L2")
    m.call("create_collection", docs_name(name), schema=d, index_params=p, consistency_level="Strong")


def set_manifest(m: Milvus, name: str, manifest: dict[str, Any]) -> None:
    m.call("alter_collection_properties", name, properties={MANIFEST_KEY: json.dumps(manifest, ensure_ascii=False)})


def read_manifest(m: Milvus, name: str) -> dict[str, Any]:
    """The version's manifest, checked: a collection this service did not build, or built by another tokenizer
    or analyzer, is refused with the re-index command (BM25 would not see the same tokens)."""
    desc = m.call("describe_collection", name)
    raw = (desc.get("properties") or {}).get(MANIFEST_KEY)
    if not raw:
        raise IndexMismatchError(f"Milvus collection {name} has no {MANIFEST_KEY}: it was not built by this "
                                 f"service; {REINDEX}")
    manifest = dict(json.loads(raw))
    fields = {f["name"]: f.get("params") or {} for f in desc.get("fields", [])}
    got = fields.get("lex", {}).get("analyzer_params")
    analyzer = json.loads(got) if isinstance(got, str) else got
    built = manifest.get("bm25", {}).get("tokenizer")
    if built != TOKENIZER or manifest.get("lex_encoding") != LEX_ENCODING or analyzer != ANALYZER:
        raise IndexMismatchError(
            f"Milvus collection {name} was built with tokenizer {built!r}, analyzer {json.dumps(analyzer)} and "
            f"encoding {manifest.get('lex_encoding')!r}; this release uses {TOKENIZER!r}, {json.dumps(ANALYZER)} "
            f"and {LEX_ENCODING!r}, so BM25 would not see the same tokens: {REINDEX}")
    return manifest


def swap_alias(m: Milvus, alias: str, name: str) -> None:
    """Point ``alias`` at ``name`` in one call (alter_alias: readers of the alias switch at once)."""
    if m.live(alias) is None:
        m.call("create_alias", name, alias)
    else:
        m.call("alter_alias", name, alias)


def drop_version(m: Milvus, name: str) -> None:
    for c in (name, docs_name(name)):
        try:
            m.call("drop_collection", c)
        except IndexUnavailableError as e:  # pruning never fails a write; the collection stays, logged
            logger.warning("could not drop Milvus collection %s: %s", c, e.message)


def prune(m: Milvus, alias: str, keep: str) -> list[str]:
    """Drop every version but the newest ``KEEP_VERSIONS`` (and ``keep``, the live one). Returns the dropped."""
    names = sorted(n for n in m.call("list_collections") if is_version(alias, n))
    old = [n for n in names[:-KEEP_VERSIONS] if n != keep]
    for n in old:
        drop_version(m, n)
    return old
