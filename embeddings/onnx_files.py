"""ONNX model files whose weights sit in a separate file that ONNX Runtime memory-maps (export format 4).

Saved as one file, a model's weights are copied into the process when the session loads: the fp32 encoder took
about 420 MB of anonymous memory, every server paying for the whole 250,002-row word-embedding table although a
query reads a few rows of it. With the weights in ``<model>.data`` beside the model, ONNX Runtime maps them from
the file instead (measured on the fp32 encoder, same outputs to the last bit: session anonymous memory 559 -> 143
MB, file pages touched by queries a few tens of MB; the rest stays on disk).

``save_mapped`` writes such a pair atomically enough for readers: both files go to a temporary folder under their
final names (the model names its data file), then the data file is moved into place first and the model last. A
process that has the previous pair mapped keeps reading the old inode; a crash between the two moves leaves a model
whose recorded sha256 no longer matches, which ``embeddings.onnx.model_file`` rebuilds or reports.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

DATA_SUFFIX = ".data"


def data_file(model: Path) -> Path:
    return model.with_name(model.name + DATA_SUFFIX)


def model_sha256(model: Path) -> str:
    """sha256 over the model file, then its data file when it has one (so both are checked at load)."""
    h = hashlib.sha256()
    for p in (model, data_file(model)):
        if p == model or p.exists():
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def save_mapped(write: Callable[[Path], None], out: Path) -> None:
    """``write(path)`` saves a model with its weights in ``path.name + '.data'``; the pair is moved to ``out``."""
    tmp = out.parent / f".tmp{os.getpid()}_{out.stem}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write(tmp / out.name)
        if not data_file(tmp / out.name).exists():
            raise RuntimeError(f"{out.name}: the model was written without its external data file")
        os.replace(data_file(tmp / out.name), data_file(out))
        os.replace(tmp / out.name, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
