"""Typed errors. The API maps each to an HTTP status in one table (api/main.py)."""

from __future__ import annotations


class RagError(Exception):
    """Base error; ``message`` says what went wrong and what to do next."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(RagError):
    """The caller sent something we cannot use (maps to 400/422)."""


class NotFoundError(RagError):
    """A document, chunk or collection does not exist (maps to 404)."""


class IndexNotFoundError(RagError):
    """No index at the configured path: run `rag ingest PATH` first (maps to 503)."""


class IndexCorruptError(RagError):
    """Index files unreadable or inconsistent: run `rag ingest PATH --rebuild` (maps to 503)."""


class IndexUnavailableError(IndexNotFoundError):
    """The index server (Milvus, ``RAG_BACKEND=milvus``) cannot be reached or did not answer in
    ``RAG_MILVUS_TIMEOUT`` seconds (maps to 503, naming the server and the reason)."""


class IndexMismatchError(IndexCorruptError):
    """The index was built by another tokenizer or analyzer than this release's, so BM25 would not see the same
    tokens: refused with the re-index command (maps to 503)."""


class ModelMismatchError(RagError):
    """The index was built with another embedding model or dimension (maps to 409)."""


class ModelNotInstalledError(RagError):
    """Embedding weights are missing: run `make model` (maps to 503)."""


class GeneratorError(RagError):
    """An answer generator (LLM) failed; callers degrade to extractive answers."""


class ConfigError(RagError):
    """A setting or a file it names is invalid (e.g. a keys file that does not parse): the server refuses to
    start, naming the file and line (maps to 500 if raised in a request)."""


class UnreadableFileError(InvalidInputError):
    """One uploaded or ingested file cannot be read (corrupt, over a limit, parser failure): 422, naming the
    file and the cause; the rest of a batch still goes in."""


class EncryptedFileError(UnreadableFileError):
    """The file is encrypted (a password-protected PDF): 422, send a decrypted copy."""


class ParseTimeoutError(UnreadableFileError):
    """Reading the file took longer than its time budget (``RAG_PARSE_TIMEOUT``): 422."""


class IndexChecksumError(IndexCorruptError):
    """A file of the current index version is missing or does not match the sha256 recorded in its manifest
    (maps to 503, naming the file)."""


class IndexBusyError(RagError):
    """Another process holds the index folder's write lock (e.g. a long `rag ingest`) and did not release it
    in time: retry later (maps to 503)."""


class UnsupportedFileError(InvalidInputError):
    """The file's type is not one the loaders read (its extension names none of them): 422, naming the type
    and the supported ones."""


class OcrLimitError(UnreadableFileError):
    """A scan needs more OCR than one file may take (``RAG_OCR_MAX_PAGES`` pages, ``RAG_OCR_MAX_PIXELS``
    pixels a page): 422, naming the limit; split the file or send a smaller scan."""


class ConverterError(UnreadableFileError):
    """An external converter (LibreOffice for .doc/.wps) is missing, failed or timed out: 422, naming the cause
    (``make install`` installs LibreOffice)."""


class JobQueueFullError(RagError):
    """Too many upload jobs are queued or running (``RAG_MAX_QUEUED_JOBS``): retry when some have finished
    (maps to 503)."""


class JobStoreUnavailableError(RagError):
    """The database holding the upload jobs (PostgreSQL, ``RAG_DATABASE_URL``) stopped answering while the server
    runs: retry when it is back (maps to 503, naming the database without its password)."""


class JobStateError(RagError):
    """An upload job cannot do what was asked in its state: cancelling one that ended or is writing to the
    index (maps to 409)."""
