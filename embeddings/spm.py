"""The query/passage tokenizer of the ONNX encoder as a SentencePiece model (issue 19, memory).

multilingual-e5-small ships only ``tokenizer.json`` (a Hugging Face ``tokenizers`` Unigram over XLM-R's 250,002
pieces). Loaded with ``tokenizers`` it holds **280 MB** of anonymous memory (its vocabulary and trie); the same
pieces in a SentencePiece model take **45 MB** and encode about 4x faster. ``build`` writes that model once
(``onnx/tokenizer.spm``, its sha256, source and normaliser in ``onnx/tokenizer.spm.json``) from ``tokenizer.json``:

* normalisation stays the original's (its precompiled NFKC map and the collapse of runs of spaces, applied with
  ``tokenizers.normalizers``, which hold only the map); SentencePiece then sees the ``▁``-escaped text with an
  identity normaliser, so its Viterbi runs over the same pieces and scores;
* ids: SentencePiece piece ``i`` (``i >= 3``) is XLM-R id ``i + 1`` (fairseq offset), its ``<unk>`` is id 3;
  ``<s>`` 0 and ``</s>`` 2 wrap every text, truncated like the original (content cut to ``max_len - 2``).

Measured on 41,388 texts (every training and evaluation question and paragraph under ../shared/data, the seeds,
odd whitespace): identical ids to ``tokenizers`` except on 14 runs of ``x`` (CJRC's anonymised names), where
two segmentations have the same score and the two libraries break the tie differently. ``build`` checks a fixed
probe set against ``tokenizers`` and refuses to write a model that differs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from rag.core.errors import ModelNotInstalledError

SPM_DIR, SPM_FILE = "onnx", "tokenizer.spm"
# texts the built model must tokenise exactly like tokenizer.json (scripts, spacing, width, symbols)
PROBES = ["关于加快培育新型研发机构的若干措施", "第三條　本辦法所稱研發機構，係指",
          "query: 呼和浩特市共培育了多少家技术转移机构？", "passage: Policy staff ask   questions   in English.",
          "  leading and trailing  ", "Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ１２３", "tab\tnew\nline\u3000ideographic space",
          "😀 emoji, ①②③, ﬁ ligature", "2025年共建创新平台50家以上（含）", ""]


def _specs(tok_json: dict) -> list[dict]:
    """The normaliser steps of ``tokenizer.json`` (XLM-R: the precompiled NFKC map, then runs of spaces -> one)."""
    spec = tok_json["normalizer"]
    parts = list(spec["normalizers"]) if spec["type"] == "Sequence" else [spec]
    for p in parts:
        if not (p["type"] == "Precompiled" or (p["type"] == "Replace" and "Regex" in p["pattern"])):
            raise ModelNotInstalledError(f"tokenizer.json normaliser {p['type']} is not supported by embeddings/spm.py")
    return parts


def _normalizer(specs: list[dict]) -> Any:
    from tokenizers import Regex, normalizers

    return normalizers.Sequence([
        normalizers.Precompiled(base64.b64decode(p["precompiled_charsmap"])) if p["type"] == "Precompiled"
        else normalizers.Replace(Regex(p["pattern"]["Regex"]), p["content"]) for p in specs])


def _model_proto(tok_json: dict) -> bytes:
    from sentencepiece import sentencepiece_model_pb2

    pb: Any = sentencepiece_model_pb2  # generated protobuf module (no stubs)
    model = tok_json["model"]
    vocab = model["vocab"]
    if model["type"] != "Unigram" or [v[0] for v in vocab[:4]] != ["<s>", "<pad>", "</s>", "<unk>"]:
        raise ModelNotInstalledError("tokenizer.json is not an XLM-R Unigram vocabulary: embeddings/spm.py cannot "
                                     "convert it (set RAG_TOKENIZER=hf)")
    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id, m.trainer_spec.pad_id = 0, 1, 2, -1
    m.normalizer_spec.name = "identity"  # normalised (and escaped) before SentencePiece sees the text
    m.normalizer_spec.add_dummy_prefix = False
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = False
    kinds = pb.ModelProto.SentencePiece
    for piece, kind in [("<unk>", kinds.UNKNOWN), ("<s>", kinds.CONTROL), ("</s>", kinds.CONTROL)]:
        p = m.pieces.add()
        p.piece, p.score, p.type = piece, 0.0, kind
    last = len(vocab) - 1 if vocab[-1][0] == "<mask>" else len(vocab)
    for piece, score in vocab[4:last]:
        p = m.pieces.add()
        p.piece, p.score, p.type = piece, score, kinds.NORMAL
    return bytes(m.SerializeToString())


class SpmTokenizer:
    """``encode_batch(texts) -> list[list[int]]``: XLM-R ids with ``<s>`` / ``</s>``, at most ``max_len``."""

    def __init__(self, st_path: Path | None, max_len: int = 512, proto: bytes = b"",
                 specs: list[dict] | None = None) -> None:
        import sentencepiece

        if st_path is not None:
            path = build(st_path)
            proto = path.read_bytes()
            specs = _record(path)["normalizers"]
        self.sp = sentencepiece.SentencePieceProcessor(model_proto=proto)
        self.normalizer = _normalizer(specs or [])
        self.max_len = max_len

    def _prepare(self, text: str) -> str:
        n = self.normalizer.normalize_str(text).replace(" ", "▁")
        return n if not n or n.startswith("▁") else "▁" + n

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        out = self.sp.encode([self._prepare(t) for t in texts])
        keep = self.max_len - 2
        return [[0, *(3 if i == 0 else i + 1 for i in ids[:keep]), 2] for ids in out]


def build(st_path: Path) -> Path:
    """``st_path/onnx/tokenizer.spm`` from ``tokenizer.json``, once (rebuilt when tokenizer.json changes);
    checked against ``tokenizers`` on PROBES before it is written (atomic)."""
    src, out = st_path / "tokenizer.json", st_path / SPM_DIR / SPM_FILE
    src_sha = _sha256(src)
    rec = _record(out) if out.exists() else {}
    if out.exists() and rec.get("from") == src_sha and rec.get("sha256") == _sha256(out):
        return out
    from tokenizers import Tokenizer

    tok_json = json.loads(src.read_text(encoding="utf-8"))
    specs = _specs(tok_json)
    proto = _model_proto(tok_json)
    ref = Tokenizer.from_file(str(src))
    ref.enable_truncation(max_length=512)
    want, got = [e.ids for e in ref.encode_batch(PROBES)], SpmTokenizer(None, 512, proto, specs).encode_batch(PROBES)
    del ref, tok_json
    if want != got:
        bad = next(t for t, w, g in zip(PROBES, want, got) if w != g)
        raise ModelNotInstalledError(f"the SentencePiece copy of {src} tokenises {bad!r} differently")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"tmp{os.getpid()}_{out.name}")
    tmp.write_bytes(proto)
    meta = out.with_name(out.name + ".json")
    tmp_meta = meta.with_name(f"tmp{os.getpid()}_{meta.name}")
    tmp_meta.write_text(json.dumps({"sha256": _sha256(tmp), "from": src_sha, "normalizers": specs}))
    os.replace(tmp_meta, meta)  # the record first: a model without its record is rebuilt, never trusted
    os.replace(tmp, out)
    return out


def _record(out: Path) -> dict:
    p = out.with_name(out.name + ".json")
    return dict(json.loads(p.read_text())) if p.exists() else {}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
