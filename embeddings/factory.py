"""Build an Embedder from settings."""

from __future__ import annotations

from pathlib import Path

from embeddings.base import Embedder
from rag.core.errors import InvalidInputError, ModelNotInstalledError

EMBEDDERS = ("sbert", "hash")


def model_path(models_dir: Path, model_name: str) -> Path:
    p = Path(model_name)
    return p if p.is_absolute() or p.exists() else models_dir / model_name


def create_embedder(kind: str, models_dir: Path, model_name: str, dtype: str = "auto",
                    batch_size: int = 32, threads: int = 0, query_backend: str = "auto") -> Embedder:
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
        return SentenceTransformerEmbedder(path, dtype=dtype, batch_size=batch_size, threads=threads,
                                           query_backend=query_backend)
    raise InvalidInputError(f"unknown embedder {kind!r}; choose one of {', '.join(EMBEDDERS)}")
