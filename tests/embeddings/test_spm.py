"""The encoder's tokenizer as a SentencePiece model (embeddings/spm.py): the ids of tokenizer.json on real text,
the same vectors, a fraction of the memory, rebuilt when its file does not match its record."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def st_path(settings):  # type: ignore[no-untyped-def]
    from embeddings.factory import model_path

    p = model_path(settings.models_dir, settings.model_name)
    if not (p / "tokenizer.json").exists():
        pytest.skip("embedding model not installed: run `make model`")
    return p


def _texts() -> list[str]:
    from eval.data import load_cmrc, load_drcd, load_seed_gold

    out: list[str] = []
    for ds in (load_cmrc(limit=60), load_drcd(limit=60)):
        out += list(ds.corpus.values())[:60] + [q.query for q in ds.items[:60]]
    out += [q.query for q in load_seed_gold().items]
    seeds = Path(__file__).resolve().parents[2] / "seeds"
    out += [p.read_text(encoding="utf-8") for p in sorted(seeds.rglob("*.txt"))]
    return out + ["", " ", "  two  spaces  ", "\t\n\u3000", "Ｆｕｌｌ width １２３", "😀 ①②③ ﬁ", "a" * 3000]


def test_ids_match_tokenizer_json_on_real_text(st_path):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer

    from embeddings.spm import SpmTokenizer

    texts = _texts()
    assert len(texts) > 300
    ref = Tokenizer.from_file(str(st_path / "tokenizer.json"))
    ref.enable_truncation(max_length=512)
    want = [e.ids for e in ref.encode_batch(texts)]
    got = SpmTokenizer(st_path, 512).encode_batch(texts)
    assert got == want
    assert max(map(len, got)) == 512  # truncated like the original (the 3000-character text)


def test_encoder_uses_it_and_vectors_are_unchanged(st_path):  # type: ignore[no-untyped-def]
    from embeddings.onnx import HfTokenizer, OnnxEncoder
    from embeddings.spm import SpmTokenizer

    enc = OnnxEncoder(st_path, 2, "int8", 16)
    assert isinstance(enc.tokenizer, SpmTokenizer)
    texts = ["query: " + t for t in _texts()[:80]]
    a = enc.encode(texts)
    enc.tokenizer = HfTokenizer(st_path, 512)
    assert np.array_equal(a, enc.encode(texts))


def test_tampered_model_is_rebuilt_and_memory_is_small(st_path, tmp_path):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from embeddings.spm import SPM_DIR, SPM_FILE, _sha256, build

    local = tmp_path / "m"
    local.mkdir()
    shutil.copy(st_path / "tokenizer.json", local / "tokenizer.json")
    out = build(local)
    good = _sha256(out)
    out.write_bytes(out.read_bytes()[:-10] + b"0123456789")
    assert build(local) == out and _sha256(out) == good
    assert (local / SPM_DIR / (SPM_FILE + ".json")).exists()
    # resident memory of the loaded tokenizer, in a fresh process: the SentencePiece copy against tokenizer.json
    probe = ("import sys; from pathlib import Path\n"
             "def anon():\n"
             "    return next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('RssAnon')) / 1024\n"
             "from tokenizers import Tokenizer; from embeddings.spm import SpmTokenizer\n"
             "a = anon()\n"
             "t = SpmTokenizer(Path(sys.argv[1])) if sys.argv[2] == 'spm' else "
             "Tokenizer.from_file(sys.argv[1] + '/tokenizer.json')\n"
             "print(anon() - a)\n")
    mb = {k: float(subprocess.run([sys.executable, "-c", probe, str(local), k], capture_output=True, text=True,
                                  check=True, cwd=Path(__file__).resolve().parents[2]).stdout) for k in ("spm", "hf")}
    assert mb["spm"] < 80 and mb["hf"] > 2 * mb["spm"], mb
