"""ONNX Runtime encoder: the installed sentence-transformers folder's own weights, exported once to
``<model>/onnx/model.onnx`` (fp32) and quantised once to ``<model>/onnx/model_int8.onnx`` (int8), both cached
beside the installed weights (``RAG_MODELS_DIR``, outside git) and tied to the weights' sha256.

The fp32 graph is exported with eager attention and fused by ONNX Runtime's transformer optimizer (one
Attention op per layer; the embedding layer is left unfused). int8 is ONNX Runtime dynamic quantisation of that
graph, per output channel, of every MatMul, every Attention (QAttention) and the word-embedding Gather: weights
int8 (one scale per column), activations quantised per call. On a CPU with AVX-512 VNNI the MatMuls run as int8
dot products; the file shrinks 4x (470 -> 118 MB). Its quality against fp32 is measured on CMRC/DRCD dev and the
seed gold set by ``python -m bench.int8``.

A query is ~20 tokens: PyTorch eager spends most of its ~20 ms per query on per-op overhead, ONNX Runtime runs
the fused graph in a few ms. Same mean pooling + L2 normalisation as the sentence-transformers pipeline (tests:
cosine > 0.995 fp32). Every load checks the file's sha256 against the one recorded when it was written and the
graph's output width against the model config, so a truncated or foreign file is a ``ModelNotInstalledError``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.onnx_files import model_sha256, save_mapped
from rag.core.errors import ModelNotInstalledError

logger = logging.getLogger(__name__)

ONNX_DIR = "onnx"
PRECISIONS = ("fp32", "int8")
FILES = {"fp32": "model.onnx", "int8": "model_int8.onnx"}
# per-channel weights: MatMul, fused Attention and the word-embedding Gather
INT8_RECIPE = {"per_channel": True, "ops": ["MatMul", "Attention", "Gather"], "weight_type": "QInt8", "format": 4}
# fp32 export format 3: eager attention, fused by ONNX Runtime's transformer optimizer (one Attention op per layer,
# SkipLayerNorm, BiasGelu), the embeddings left unfused so int8 keeps the word-embedding table int8. Measured on
# 384 real chunks, 2 cores: fp32 15.2 against 13.4 passages/s unfused; int8 from the fused graph (QAttention) 29.8
# against 25.9 with min cosine to fp32 0.9947 against 0.9935 (with the embeddings fused too; leaving them unfused
# measured the same speed in a contended A/B run, min cosine 0.9930, and 143 against 418 MB of session memory).
# Format 4: the same graphs with their weights in a memory-mapped ``.data`` file beside each model
# (embeddings/onnx_files.py): the same outputs, about 400 MB less anonymous memory for the fp32 session.
EXPORT_FORMAT = 4


def providers(device: str = "auto") -> list[str]:
    """ONNX Runtime execution providers for a model that should use a GPU when there is one (the trained reader):
    CUDA first when ``device`` is ``auto`` or ``cuda`` and the installed ONNX Runtime has its CUDA provider
    (``pip install onnxruntime-gpu``; the CPU wheel has none), else the CPU alone."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device {device!r}: choose auto, cpu or cuda")
    if device != "cpu":
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if device == "cuda":
            raise ValueError("RAG_DEVICE=cuda but ONNX Runtime has no CUDA provider: install onnxruntime-gpu")
    return ["CPUExecutionProvider"]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _weights_sha(st_path: Path) -> str:
    meta = st_path / "install.json"  # written (and verified) by embeddings.models install
    if meta.exists():
        digest = json.loads(meta.read_text()).get("files", {}).get("model.safetensors")
        if digest:
            return str(digest)
    return sha256(st_path / "model.safetensors")


def _stamp(st_path: Path) -> dict:
    p = st_path / ONNX_DIR / "export.json"
    return dict(json.loads(p.read_text())) if p.exists() else {}


def _write_stamp(st_path: Path, stamp: dict) -> None:
    p = st_path / ONNX_DIR / "export.json"
    tmp = p.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(stamp, indent=1))
    os.replace(tmp, p)


def export(st_path: Path) -> Path:
    """``st_path/onnx/model.onnx``, exported if missing or made from other weights; atomic write."""
    out = st_path / ONNX_DIR / FILES["fp32"]
    sha = _weights_sha(st_path)
    stamp = _stamp(st_path)
    if out.exists() and stamp.get("weights_sha256") == sha and stamp.get("format") == EXPORT_FORMAT:
        if "sha256" not in stamp.get("files", {}).get("fp32", {}):  # exported before files were recorded
            stamp.setdefault("files", {})["fp32"] = {"sha256": model_sha256(out)}
            _write_stamp(st_path, stamp)
        return out
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(st_path), dtype=torch.float32, local_files_only=True,
                                     attn_implementation="eager").eval()  # fusable into one Attention op

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    model = Encoder().eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = out.with_suffix(f".raw{os.getpid()}")
    ids = torch.tensor([[0, 10, 11, 12, 2]], dtype=torch.long)
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        torch.onnx.export(model, (ids, mask), str(raw), input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                                        "last_hidden_state": {0: "batch", 1: "seq"}})
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    cfg = json.loads((st_path / "config.json").read_text())
    opts = FusionOptions("bert")
    # no EmbedLayerNormalization: it would swallow the word-embedding Gather, which int8 then could not quantise
    # (a 384 MB fp32 table: the int8 session took 418 MB of anonymous memory against 143 MB with the Gather int8)
    opts.enable_embed_layer_norm = False
    fused = optimizer.optimize_model(str(raw), model_type="bert", num_heads=int(cfg["num_attention_heads"]),
                                     hidden_size=int(cfg["hidden_size"]), optimization_options=opts)
    save_mapped(lambda p: fused.save_model_to_file(str(p), use_external_data_format=True), out)
    raw.unlink()
    _write_stamp(st_path, {"weights_sha256": sha, "opset": 17, "format": EXPORT_FORMAT,
                           "files": {"fp32": {"sha256": model_sha256(out)}}})
    logger.info("exported %s", out)
    return out


def quantize(st_path: Path) -> Path:
    """``st_path/onnx/model_int8.onnx`` from the fp32 export (a few minutes on 2 cores, once); atomic write."""
    src = export(st_path)
    out = st_path / ONNX_DIR / FILES["int8"]
    stamp = _stamp(st_path)
    rec = stamp.get("files", {}).get("int8", {})
    if out.exists() and rec.get("from") == stamp["files"]["fp32"]["sha256"] and rec.get("recipe") == INT8_RECIPE:
        return out
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logger.info("quantising %s to int8 (once; cached in %s)", src, out.parent)
    save_mapped(lambda p: quantize_dynamic(
        str(src), str(p), weight_type=QuantType.QInt8, per_channel=True, use_external_data_format=True,
        op_types_to_quantize=list(INT8_RECIPE["ops"]),  # type: ignore[call-overload]
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}), out)  # fused ops: no shape inference
    stamp = _stamp(st_path)
    stamp["files"]["int8"] = {"sha256": model_sha256(out), "from": stamp["files"]["fp32"]["sha256"],
                              "recipe": INT8_RECIPE}
    _write_stamp(st_path, stamp)
    return out


def model_file(st_path: Path, precision: str = "fp32") -> Path:
    """The ONNX file for ``precision``, built if missing, checked against its recorded sha256."""
    if precision not in PRECISIONS:
        raise ValueError(f"embedding precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    path = quantize(st_path) if precision == "int8" else export(st_path)
    want = _stamp(st_path).get("files", {}).get(precision, {}).get("sha256")
    if model_sha256(path) != want:
        raise ModelNotInstalledError(f"{path} does not match the sha256 recorded when it was written: delete "
                                     f"{path.parent} and run `make model` to build it again")
    return path


class OnnxEncoder:
    """``encode(texts) -> (n, dim)`` float32 unit vectors with ONNX Runtime (texts carry their prompt).

    Texts are tokenised, sorted by token count and run in batches of ``batch_size`` (less padding), then
    returned in input order."""

    def __init__(self, st_path: Path, threads: int = 0, precision: str = "fp32", batch_size: int = 32) -> None:
        import onnxruntime as ort

        self.precision, self.batch_size = precision, batch_size
        path = model_file(st_path, precision)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or (os.cpu_count() or 1)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        hidden = int(json.loads((st_path / "config.json").read_text())["hidden_size"])
        names = [i.name for i in self.session.get_inputs()]
        width = self.session.get_outputs()[0].shape[-1]
        if names != ["input_ids", "attention_mask"] or width != hidden:
            raise ModelNotInstalledError(f"{path}: inputs {names}, output width {width}; expected input_ids, "
                                         f"attention_mask -> {hidden}: run `make model` to rebuild it")
        self.dim = hidden
        cfg = st_path / "sentence_bert_config.json"
        max_len = int(json.loads(cfg.read_text()).get("max_seq_length", 512)) if cfg.exists() else 512
        self.tokenizer = load_tokenizer(st_path, max_len)
        self._path, self._threads = path, so.intra_op_num_threads
        self._bulk: Any = None  # the single-threaded session bulk batches share (built on first bulk call)
        self._bulk_lock = threading.Lock()

    def encode(self, texts: list[str], sort: bool = True) -> np.ndarray:
        enc = self.tokenizer.encode_batch(texts)
        lengths = np.array([len(e) for e in enc], dtype=np.int64)
        order = np.argsort(-lengths, kind="stable") if sort else np.arange(len(texts))
        out = np.zeros((len(texts), self.dim), np.float32)
        batches = [order[s : s + self.batch_size] for s in range(0, len(texts), self.batch_size)]
        if self._threads > 1 and len(batches) >= 2 * self._threads:
            # Bulk: one batch per core on a single-threaded session (ORT runs are thread-safe and release the
            # GIL). Measured on 2 cores, 384 real chunks, int8: 29.1 passages/s against 25.3 with one batch
            # at a time on 2 intra-op threads (small GEMMs do not split well across cores).
            with ThreadPoolExecutor(self._threads) as pool:
                list(pool.map(lambda idx: self._run(self._bulk_session(), enc, lengths, idx, out), batches))
        else:
            for idx in batches:
                self._run(self.session, enc, lengths, idx, out)
        return out

    def _run(self, session: Any, enc: list[list[int]], lengths: np.ndarray, idx: np.ndarray, out: np.ndarray) -> None:
        width = int(lengths[idx].max())
        ids = np.ones((len(idx), width), np.int64)  # XLM-R <pad> = 1
        mask = np.zeros((len(idx), width), np.int64)
        for row, i in enumerate(idx):
            ids[row, : lengths[i]] = enc[i]
            mask[row, : lengths[i]] = 1
        (hidden,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
        m = mask[:, :, None].astype(np.float32)
        vecs = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        out[idx] = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)

    def _bulk_session(self) -> Any:
        if self._bulk is None:
            with self._bulk_lock:
                if self._bulk is None:
                    import onnxruntime as ort

                    so = ort.SessionOptions()
                    so.intra_op_num_threads = 1
                    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                    self._bulk = ort.InferenceSession(str(self._path), so, providers=["CPUExecutionProvider"])
        return self._bulk

    def tokens(self, texts: list[str]) -> int:
        """Non-padding tokens the model reads for ``texts`` (for tokens/s)."""
        return sum(len(e) for e in self.tokenizer.encode_batch(texts))


class HfTokenizer:
    """``tokenizer.json`` through Hugging Face ``tokenizers`` (280 MB resident for XLM-R's vocabulary): the
    fallback when embeddings/spm.py cannot convert a model's tokenizer."""

    def __init__(self, st_path: Path, max_len: int) -> None:
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(st_path / "tokenizer.json"))
        self.tok.enable_truncation(max_length=max_len)  # set once here; encode_batch is thread-safe

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts)]


def load_tokenizer(st_path: Path, max_len: int) -> Any:
    """The SentencePiece copy of the tokenizer (embeddings/spm.py: same ids, 45 against 280 MB), else
    ``tokenizers`` with the reason logged."""
    from embeddings.spm import SpmTokenizer

    try:
        return SpmTokenizer(st_path, max_len)
    except (ModelNotInstalledError, ImportError) as e:
        logger.warning("SentencePiece tokenizer unavailable (%s): using tokenizer.json (280 MB more memory)", e)
        return HfTokenizer(st_path, max_len)
