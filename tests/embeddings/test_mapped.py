"""Export format 4: the encoder's weights live in a memory-mapped ``.data`` file (embeddings/onnx_files.py), so a
serving process does not copy the 470 MB fp32 model (mostly the word-embedding table) into its own memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_weights_are_mapped_not_copied(settings, precision: str) -> None:  # type: ignore[no-untyped-def]
    from embeddings.factory import model_path
    from embeddings.onnx import model_file
    from embeddings.onnx_files import data_file

    st = model_path(settings.models_dir, settings.model_name)
    path = model_file(st, precision)
    assert data_file(path).stat().st_size > 50 * path.stat().st_size  # the graph small, the weights beside it
    probe = ("import sys; from pathlib import Path\n"
             "def rss(kind):\n"
             "    return next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith(kind)) / 1024\n"
             "from embeddings.onnx import OnnxEncoder\n"
             "import onnxruntime, numpy\n"
             "a = rss('RssAnon')\n"
             "enc = OnnxEncoder(Path(sys.argv[1]), 2, sys.argv[2], 8)\n"
             "v = enc.encode(['query: 呼和浩特市共培育了多少家技术转移机构？', 'query: hydrogen capacity by 2025'])\n"
             "assert v.shape == (2, 384)\n"
             "print(rss('RssAnon') - a)\n")
    out = subprocess.run([sys.executable, "-c", probe, str(st), precision], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    anon = float(out.stdout.strip().splitlines()[-1])
    # one copy of the fp32 weights alone is 470 MB; the session + tokenizer measured 190 MB mapped
    assert anon < 300, anon
