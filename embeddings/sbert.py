"""sentence-transformers embedder (multilingual-e5-small by default), bf16 on CPU where faster."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


class SentenceTransformerEmbedder:
    """Loads a local sentence-transformers folder; prompts come from its config (query/passage)."""

    def __init__(self, path: Path, dtype: str = "bfloat16", batch_size: int = 32, threads: int = 0) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        torch_dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]
        self.model = SentenceTransformer(str(path), device="cpu", model_kwargs={"dtype": torch_dtype},
                                         local_files_only=True)
        self.batch_size = batch_size
        getdim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(getdim() or 0)
        meta = json.loads((path / "install.json").read_text()) if (path / "install.json").exists() else {}
        self.name = str(meta.get("model", path.name))
        self.prompts = dict(self.model.prompts)
        # One forward pass at a time: torch already uses every core inside a call; concurrent calls
        # from server threads only thrash the caches (measured: p95 of /v1/ask x10 under 50 clients).
        self._lock = threading.Lock()
        # Single-query calls from concurrent requests wait here and are encoded together by whichever
        # caller holds the lock next (dynamic batching: one forward pass of n short queries costs far
        # less than n passes).
        self._pending: list[tuple[str, Future[np.ndarray]]] = []
        self._plock = threading.Lock()
        self.max_query_batch = 32
        logger.info("loaded %s (%d-d, %s) from %s", self.name, self.dim, dtype, path)

    def _encode(self, texts: list[str], prompt_name: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            return self._forward(texts, prompt_name)

    def _forward(self, texts: list[str], prompt_name: str) -> np.ndarray:
        import torch

        with torch.inference_mode():
            vecs = self.model.encode(
                texts, prompt_name=prompt_name if prompt_name in self.prompts else None,
                batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        if len(texts) != 1:
            return self._encode(texts, "query")
        fut: Future[np.ndarray] = Future()
        with self._plock:
            self._pending.append((texts[0], fut))
        while not fut.done():
            with self._lock:
                if fut.done():
                    break
                with self._plock:
                    batch = self._pending[: self.max_query_batch]
                    del self._pending[: self.max_query_batch]
                try:
                    vecs = self._forward([t for t, _ in batch], "query")
                except BaseException as e:  # every waiter gets the error, none hangs
                    for _, f in batch:
                        f.set_exception(e)
                    raise
                for (_, f), v in zip(batch, vecs):
                    f.set_result(v)
        return fut.result()[None, :]

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "passage")
