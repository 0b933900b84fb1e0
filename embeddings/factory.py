"""Build an Embedder from settings."""

from __future__ import annotations

from pathlib import Path

from embeddings.base import Embedder
from rag.core.errors import InvalidInputError, ModelNotInstalledError

EMBEDDERS = ("sbert", "hash")
PRECISIONS = ("fp32", "int8")  # embeddings.onnx.PRECISIONS, without importing onnxruntime here


def model_path(models_dir: Path, model_name: str) -> Path:
    p = Path(model_name)
    return p if p.is_absolute() or p.exists() else models_dir / model_name


def create_embedder(kind: str, models_dir: Path, model_name: str, dtype: str = "auto",
                    batch_size: int = 32, threads: int = 0, query_backend: str = "auto",
                    precision: str | None = None, device: str | None = None) -> Embedder:
    """``precision`` / ``device`` None: the settings' ``embed_precision`` / ``device`` (RAG_EMBED_PRECISION,
    RAG_DEVICE), so every caller (API, CLI, eval, bench) encodes the same way unless it asks otherwise."""
    if kind == "hash":
        from embeddings.fake import HashEmbedder

        return HashEmbedder()
    if kind == "sbert":
        from embeddings.models import verify
        from embeddings.sbert import SentenceTransformerEmbedder

        path = model_path(models_dir, model_name)
        if not (path / "modules.json").exists():
            raise ModelNotInstalledError(f"embedding model not found at {path}: run `make model`")
        verify(path)
        if precision is None or device is None:
            from rag.core.config import get_settings

            s = get_settings()
            precision, device = precision or s.embed_precision, device or s.device
        if precision not in PRECISIONS:
            raise InvalidInputError(f"embedding precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        return SentenceTransformerEmbedder(path, dtype=dtype, batch_size=batch_size, threads=threads,
                                           query_backend=query_backend, precision=precision, device=device)
    raise InvalidInputError(f"unknown embedder {kind!r}; choose one of {', '.join(EMBEDDERS)}")
