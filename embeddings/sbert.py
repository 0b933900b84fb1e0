"""sentence-transformers embedder (multilingual-e5-small by default).

``precision`` (RAG_EMBED_PRECISION) picks the encoder:

* ``int8``: every query and passage through ONNX Runtime on the int8 export (embeddings/onnx.py); the torch
  copy of the weights is never loaded (unless a CUDA device is used for bulk passages, below).
* ``fp32``: queries and small passage batches (answer sentences, claims, a short upload) through ONNX Runtime
  fp32; bulk passage batches (ingest) through sentence-transformers, loaded on the first bulk batch so a
  serving process stays small and its first cross-lingual answer does not wait ~7 s for it.

``device`` (RAG_DEVICE): ``auto`` = CUDA when torch sees a device (bulk passages then go through torch on the
GPU, whatever the precision; queries stay on ONNX Runtime CPU, a few ms each), else CPU. The CPU path is the
default and the one tested here. dtype ``auto`` picks bf16 only where the CPU has AMX (measured slower than fp32
on AVX-512 alone); on CUDA, float16.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# Passage batches up to this many characters go through ONNX Runtime: same vectors as torch (cosine
# 0.9999999), as fast on 40 answer sentences (0.41 vs 0.35 s), slower on 128 whole chunks (9.1 vs 5.5 s).
ONNX_PASSAGE_CHARS = 8000


def resolve_dtype(dtype: str) -> str:
    """``auto``: bfloat16 where the CPU has AMX tiles, else float32. Measured on AVX-512 (with avx512_bf16)
    but no AMX: fp32 24.8 vs bf16 15.3 passages/s and 19 vs 22 ms per query (bench/results)."""
    if dtype != "auto":
        return dtype
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "float32"
    return "bfloat16" if "amx_bf16" in flags else "float32"


def resolve_device(device: str) -> str:
    """``auto``: ``cuda`` when torch sees a CUDA device, else ``cpu``. Without an NVIDIA driver
    (/proc/driver/nvidia) torch is not even imported, so a CPU server never pays for it."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device {device!r}: choose auto, cpu or cuda")
    if device == "cpu" or (device == "auto" and not Path("/proc/driver/nvidia").exists()):
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise ValueError("RAG_DEVICE=cuda but torch sees no CUDA device (a CPU-only torch? see README, GPU)")
    return "cpu"


class SentenceTransformerEmbedder:
    """Loads a local sentence-transformers folder; prompts come from its config (query/passage)."""

    def __init__(self, path: Path, dtype: str = "auto", batch_size: int = 32, threads: int = 0,
                 query_backend: str = "auto", precision: str = "fp32", device: str = "auto") -> None:
        from embeddings.onnx import PRECISIONS

        if precision not in PRECISIONS:
            raise ValueError(f"embedding precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        self.path, self.precision = path, precision
        self.device = resolve_device(device)
        self.dtype = "float16" if self.device == "cuda" and dtype == "auto" else resolve_dtype(dtype)
        self.threads = threads
        self.batch_size = batch_size
        meta = json.loads((path / "install.json").read_text()) if (path / "install.json").exists() else {}
        self.name = str(meta.get("model", path.name))
        self._model = None
        self._model_lock = threading.Lock()
        cfg = path / "config_sentence_transformers.json"
        pooling = path / "1_Pooling" / "config.json"
        if cfg.exists() and pooling.exists():  # dims and prompts without loading the weights
            self.prompts = dict(json.loads(cfg.read_text()).get("prompts", {}))
            self.dim = int(json.loads(pooling.read_text())["word_embedding_dimension"])
        else:
            self.prompts = dict(self.model.prompts)
            getdim = getattr(self.model, "get_embedding_dimension", None) or \
                self.model.get_sentence_embedding_dimension
            self.dim = int(getdim() or 0)
        # One forward pass at a time: torch already uses every core inside a call; concurrent calls
        # from server threads only thrash the caches (measured: p95 of /v1/ask x10 under 50 clients).
        self._lock = threading.Lock()
        # Single-query calls from concurrent requests wait here and are encoded together by whichever
        # caller holds the lock next (dynamic batching: one forward pass of n short queries costs far
        # less than n passes).
        self._pending: list[tuple[str, Future[np.ndarray]]] = []
        self._plock = threading.Lock()
        self.max_query_batch = 32
        self.query_backend, self._onnx = "torch", None
        if query_backend in ("auto", "onnx") or precision == "int8":
            try:
                from embeddings.onnx import OnnxEncoder

                self._onnx = OnnxEncoder(path, threads, precision, batch_size)
                self.query_backend = "onnx"
            except Exception as e:  # noqa: BLE001 - auto falls back to torch, with the reason logged
                if query_backend == "onnx" or precision == "int8":
                    raise
                logger.warning("ONNX query encoder unavailable (%s: %s): queries go through torch",
                               type(e).__name__, e)
        elif query_backend != "torch":
            raise ValueError(f"query_backend {query_backend!r}: choose auto, onnx or torch")
        if self._onnx is None:
            _ = self.model  # no fast path: load the torch model now, not on the first request
        logger.info("loaded %s (%d-d, %s, queries via %s; bulk passages via %s) from %s", self.name, self.dim,
                    precision, self.query_backend, self.bulk_backend, path)

    @property
    def bulk_backend(self) -> str:
        """Where bulk passage batches (ingest) run: ``onnx-int8`` on CPU, else torch on ``self.device``."""
        return "onnx-int8" if self.precision == "int8" and self.device == "cpu" else f"torch-{self.device}"

    @property
    def model(self):  # type: ignore[no-untyped-def]
        """The sentence-transformers model, loaded on first use: with the ONNX query path a server that
        only answers queries never holds the torch copy of the weights (~470 MB fp32)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    import torch
                    from sentence_transformers import SentenceTransformer

                    if self.threads:
                        torch.set_num_threads(self.threads)
                    torch_dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32,
                                   "float16": torch.float16}[self.dtype]
                    self._model = SentenceTransformer(str(self.path), device=self.device, local_files_only=True,
                                                      model_kwargs={"dtype": torch_dtype})
        return self._model

    def _encode(self, texts: list[str], prompt_name: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            return self._forward(texts, prompt_name)

    def _forward(self, texts: list[str], prompt_name: str) -> np.ndarray:
        if self._onnx is not None and (prompt_name == "query" or self.bulk_backend == "onnx-int8"
                                       or sum(map(len, texts)) <= ONNX_PASSAGE_CHARS):
            return self._onnx.encode([self.prompts.get(prompt_name, "") + t for t in texts])
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
