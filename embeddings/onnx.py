"""ONNX Runtime encoder for the query path: the installed sentence-transformers folder's own weights,
exported once to ``<model>/onnx/model.onnx`` (fp32, cached, tied to the weights' sha256).

A query is ~20 tokens: PyTorch eager spends most of its ~20 ms per query on per-op overhead, ONNX Runtime
runs the fused graph in a few ms (`python -m bench.run`, section embedding). Same weights, same mean
pooling + L2 normalisation as the sentence-transformers pipeline (checked in tests: cosine > 0.995).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

ONNX_DIR = "onnx"


def _weights_sha(st_path: Path) -> str:
    meta = st_path / "install.json"  # written (and verified) by embeddings.models install
    if meta.exists():
        digest = json.loads(meta.read_text()).get("files", {}).get("model.safetensors")
        if digest:
            return str(digest)
    h = hashlib.sha256()
    with open(st_path / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export(st_path: Path) -> Path:
    """``st_path/onnx/model.onnx``, exported if missing or made from other weights; atomic write."""
    out = st_path / ONNX_DIR / "model.onnx"
    stamp = st_path / ONNX_DIR / "export.json"
    sha = _weights_sha(st_path)
    if out.exists() and stamp.exists() and json.loads(stamp.read_text()).get("weights_sha256") == sha:
        return out
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(st_path), dtype=torch.float32, local_files_only=True).eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    model = Encoder().eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    ids = torch.tensor([[0, 10, 11, 12, 2]], dtype=torch.long)
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        torch.onnx.export(model, (ids, mask), str(tmp), input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                                        "last_hidden_state": {0: "batch", 1: "seq"}})
    os.replace(tmp, out)
    stamp.write_text(json.dumps({"weights_sha256": sha, "opset": 17}))
    logger.info("exported %s", out)
    return out


class OnnxQueryEncoder:
    """``encode(texts) -> (n, dim)`` float32 unit vectors with ONNX Runtime (texts carry their prompt)."""

    def __init__(self, st_path: Path, threads: int = 0) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = export(st_path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or (os.cpu_count() or 1)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        cfg = st_path / "sentence_bert_config.json"
        max_len = int(json.loads(cfg.read_text()).get("max_seq_length", 512)) if cfg.exists() else 512
        self.tokenizer = Tokenizer.from_file(str(st_path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_len)
        self.tokenizer.enable_padding()  # set once here; encode_batch itself is thread-safe

    def encode(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        (hidden,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
        m = mask[:, :, None].astype(np.float32)
        vecs = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vecs, dtype=np.float32)
