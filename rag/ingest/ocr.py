"""OCR of scanned pages and images, with weights that ship inside registry packages (no model hub at run time).

Engines (``RAG_OCR_ENGINE``):

* ``rapidocr`` (default): RapidOCR 3.x on onnxruntime; the PP-OCR detection, direction and recognition ONNX
  models are files inside the ``rapidocr`` wheel. One model reads simplified and traditional Chinese and
  Latin text.
* ``tesseract``: the Debian ``tesseract-ocr`` binary with ``tesseract-ocr-chi-sim``/``-chi-tra``
  (``RAG_OCR_LANG``, default ``chi_sim+chi_tra+eng``), run as a subprocess with a timeout.
* ``none``: no OCR; a scan is refused naming the setting.

``bench/ocr.py`` measures both on rendered pages (character error rate, seconds a page); rapidocr is the
default because it was both more accurate and faster there (README, issue 17).

Bounds: a page is OCR'd at ``OCR_DPI`` but never with more than ``RAG_OCR_MAX_PIXELS`` pixels (PDF pages are
rendered smaller; an image file over the limit is refused: ``OcrLimitError``); a file may need OCR on at
most ``RAG_OCR_MAX_PAGES`` pages (default 100: more is an ``OcrLimitError`` naming the count, split the file);
every page checks the file's time budget (``RAG_PARSE_TIMEOUT``).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from rag.core.errors import ConverterError, OcrLimitError, UnreadableFileError

if TYPE_CHECKING:
    from PIL.Image import Image

logger = logging.getLogger(__name__)

ENGINE_ENV = "RAG_OCR_ENGINE"
LANG_ENV = "RAG_OCR_LANG"
MAX_PAGES_ENV = "RAG_OCR_MAX_PAGES"
MAX_PIXELS_ENV = "RAG_OCR_MAX_PIXELS"
THREADS_ENV = "RAG_OCR_THREADS"  # ONNX Runtime threads of rapidocr; unset or 0 = its default (all cores)
DEFAULT_ENGINE = "rapidocr"
DEFAULT_LANG = "chi_sim+chi_tra+eng"
DEFAULT_MAX_PAGES = 100
DEFAULT_MAX_PIXELS = 40_000_000  # an A4 page at 600 dpi is ~35 MP; 200 dpi ~3.9 MP
OCR_DPI = 200
MIN_DPI = 50  # a PDF page that would need a coarser rendering to fit the pixel limit is refused
ENGINES = ("rapidocr", "tesseract", "none")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        logger.warning("%s=%r is not an integer: using %d", name, raw, default)
        return default


def max_pages() -> int:
    return _env_int(MAX_PAGES_ENV, DEFAULT_MAX_PAGES)


def max_pixels() -> int:
    return _env_int(MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS)


def engine_name() -> str:
    name = os.environ.get(ENGINE_ENV, "").strip().lower() or DEFAULT_ENGINE
    if name not in ENGINES:
        logger.warning("%s=%r is not one of %s: using %s", ENGINE_ENV, name, ENGINES, DEFAULT_ENGINE)
        return DEFAULT_ENGINE
    return name


def check_page_count(n: int, name: str) -> None:
    limit = max_pages()
    if n > limit:
        raise OcrLimitError(f"{name}: {n} pages need OCR, more than the limit of {limit} ({MAX_PAGES_ENV}); "
                            "split the file or send it with a text layer")


def check_pixels(width: int, height: int, name: str, page: int | None = None) -> None:
    limit = max_pixels()
    if width * height > limit:
        where = f" page {page}" if page else ""
        raise OcrLimitError(f"{name}{where}: the image is {width}x{height} = {width * height / 1e6:.0f} MP, over "
                            f"the OCR limit of {limit / 1e6:.0f} MP ({MAX_PIXELS_ENV}); send a smaller scan")


@dataclass
class OcrLine:
    """One recognised line (or word, for tesseract) with its box in pixels and a confidence in 0..1."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    conf: float

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def width(self) -> float:
        return self.x1 - self.x0


class Engine(Protocol):
    name: str

    def lines(self, img: Image, upright: bool = False) -> list[OcrLine]:
        """Recognised lines; ``upright``: the page is taken as is (no per-line 180-degree turn)."""
        ...


class RapidEngine:
    """RapidOCR 3.x (PP-OCR ONNX models inside the ``rapidocr`` wheel). One instance, calls serialised."""

    name = "rapidocr"

    def __init__(self) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as e:  # pragma: no cover - a broken install
            raise ConverterError(f"OCR engine rapidocr is not installed ({e}); run `make install`") from e
        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        params: dict[str, Any] = {"Global.log_level": "error"}
        threads = _env_int(THREADS_ENV, 0)
        if threads > 0:  # the API's parse processes run it on one (rag/ingest/isolated.py); else all cores
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
            params["EngineConfig.onnxruntime.inter_op_num_threads"] = threads
        self._ocr = RapidOCR(params=params)
        self._lock = threading.Lock()

    def lines(self, img: Image, upright: bool = False) -> list[OcrLine]:
        import numpy as np

        arr = np.asarray(img.convert("RGB"))
        with self._lock:
            out: Any = self._ocr(arr, use_cls=False) if upright else self._ocr(arr)
        if out.boxes is None or out.txts is None or out.scores is None:
            return []
        res = []
        for box, txt, score in zip(out.boxes, out.txts, out.scores):
            xs, ys = [float(p[0]) for p in box], [float(p[1]) for p in box]
            if txt.strip():
                res.append(OcrLine(txt.strip(), min(xs), min(ys), max(xs), max(ys), float(score)))
        return res


class TesseractEngine:
    """Debian's tesseract (chi_sim + chi_tra traineddata) as a subprocess; TSV output gives boxes and
    confidences."""

    name = "tesseract"

    def __init__(self, lang: str | None = None, timeout: float = 120.0) -> None:
        self.exe = shutil.which("tesseract")
        if self.exe is None:
            raise ConverterError("OCR engine tesseract is not installed: `apt-get install tesseract-ocr "
                                 "tesseract-ocr-chi-sim tesseract-ocr-chi-tra` or use RAG_OCR_ENGINE=rapidocr")
        self.lang = lang or os.environ.get(LANG_ENV, "").strip() or DEFAULT_LANG
        self.timeout = timeout

    def lines(self, img: Image, upright: bool = False) -> list[OcrLine]:
        import io

        buf = io.BytesIO()
        img.convert("L").save(buf, format="PNG")
        try:
            proc = subprocess.run([self.exe or "tesseract", "stdin", "stdout", "-l", self.lang, "--psm", "3",
                                   "tsv"], input=buf.getvalue(), capture_output=True, timeout=self.timeout,
                                  check=False)
        except subprocess.TimeoutExpired as e:
            raise ConverterError(f"tesseract took longer than {self.timeout:g} s on one page") from e
        if proc.returncode != 0:
            raise ConverterError(f"tesseract failed: {proc.stderr.decode(errors='replace')[:200]}")
        groups: dict[tuple[str, ...], list[list[str]]] = {}
        for row in proc.stdout.decode("utf-8", errors="replace").splitlines()[1:]:
            f = row.split("\t")
            if len(f) < 12 or f[0] != "5" or not f[11].strip():
                continue
            groups.setdefault((f[1], f[2], f[3], f[4]), []).append(f)
        res = []
        for words in groups.values():
            text = ""
            for w in words:
                t = w[11].strip()
                if text and text[-1].isascii() and text[-1].isalnum() and t[:1].isascii() and t[:1].isalnum():
                    text += " "
                text += t
            x0 = min(float(w[6]) for w in words)
            y0 = min(float(w[7]) for w in words)
            x1 = max(float(w[6]) + float(w[8]) for w in words)
            y1 = max(float(w[7]) + float(w[9]) for w in words)
            conf = sum(max(0.0, float(w[10])) for w in words) / len(words) / 100
            res.append(OcrLine(text, x0, y0, x1, y1, conf))
        return res


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def get_engine(name: str | None = None) -> Engine:
    """The OCR engine named (default ``RAG_OCR_ENGINE``), loaded once per process."""
    name = name or engine_name()
    if name == "none":
        raise UnreadableFileError(f"OCR is turned off ({ENGINE_ENV}=none)")
    with _engines_lock:
        if name not in _engines:
            _engines[name] = RapidEngine() if name == "rapidocr" else TesseractEngine()
        return _engines[name]


def _score(lines: list[OcrLine]) -> float:
    return sum(ln.conf * len(ln.text) for ln in lines)


def _vertical(lines: list[OcrLine]) -> bool:
    """Most text boxes taller than wide: the page is probably turned by 90 degrees."""
    tall = sum(ln.width * ln.height for ln in lines if ln.height > 1.5 * ln.width and len(ln.text) > 1)
    return tall > 0.5 * sum(ln.width * ln.height for ln in lines)


def _content(img: Image, margin: int = 24) -> Image | None:
    """The page cropped to its ink (dark pixels) plus a margin, or None for a blank page. The detector scales a
    page by its short side, so a sparse page (one line on A4) it missed is found once cropped. Only a fallback:
    cropping every page measured worse on traditional and sideways pages (bench/ocr.py)."""
    gray = img.convert("L")
    box = gray.point(lambda p: 255 if p < 160 else 0).getbbox()
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return img.crop((max(0, x0 - margin), max(0, y0 - margin), min(img.width, x1 + margin),
                     min(img.height, y1 + margin)))


def recognise(img: Image, engine: Engine | None = None) -> list[OcrLine]:
    """OCR one page. A page whose lines come out vertical or with low confidence is also read turned by 90 and
    270 degrees, and the reading with most confident characters wins (a scan fed in sideways); those readings
    take the page as it is turned (no per-line flip), so the upside-down one reads as noise and loses."""
    eng = engine or get_engine()
    lines = eng.lines(img)
    if not lines:
        # nothing found: a blank page, or a sparse one the detector missed at the page's scale (one line on A4)
        cropped = _content(img)
        if cropped is None:
            return []
        img = cropped
        lines = eng.lines(img)
    mean_conf = _score(lines) / max(1, sum(len(ln.text) for ln in lines))
    if not lines:
        return lines  # nothing detected: turning the page would find nothing either (a blank page)
    vertical = _vertical(lines)
    if vertical or mean_conf < 0.6:
        turned = [eng.lines(img.rotate(angle, expand=True, fillcolor="white"), upright=True) for angle in (90, 270)]
        best = max(turned, key=_score)
        # sideways lines may still be read one by one (vertical text), but in the wrong order: an upright reading
        # wins unless it is much worse; otherwise a turned reading must be clearly better than the first one
        if _score(best) > _score(lines) * (0.5 if vertical else 1.2):
            lines = best
    return lines


def layout(lines: Iterable[OcrLine]) -> str:
    """Recognised lines in reading order: boxes on one row left to right (cells apart by two spaces when
    there is a gap), rows top to bottom, a blank line where the vertical gap is larger than a line."""
    items = sorted(lines, key=lambda ln: (ln.y0 + ln.y1) / 2)
    if not items:
        return ""
    rows: list[list[OcrLine]] = []
    for ln in items:
        if rows:
            row = rows[-1]
            cy = sum((r.y0 + r.y1) / 2 for r in row) / len(row)
            h = max(r.height for r in row)
            if abs((ln.y0 + ln.y1) / 2 - cy) < 0.5 * min(h, ln.height):
                row.append(ln)
                continue
        rows.append([ln])
    out: list[str] = []
    prev_bottom, prev_h = None, 0.0
    for row in rows:
        row.sort(key=lambda r: r.x0)
        text = row[0].text
        for a, b in zip(row, row[1:]):
            gap = b.x0 - a.x1
            text += ("  " if gap > 0.8 * max(a.height, b.height) else "") + b.text
        top = min(r.y0 for r in row)
        h = max(r.height for r in row)
        if prev_bottom is not None and top - prev_bottom > 1.2 * max(h, prev_h):
            out.append("")
        out.append(text)
        prev_bottom, prev_h = max(r.y1 for r in row), h
    return "\n".join(out)


def ocr_image(img: Image, engine: Engine | None = None) -> str:
    return layout(recognise(img, engine))


def progress(items: Iterable[Any], total: int, name: str) -> Iterator[Any]:
    """A progress bar on a terminal for files with several OCR pages (tqdm; silent elsewhere), and a log
    line every 10 pages."""
    from tqdm import tqdm

    bar = tqdm(items, total=total, desc=f"OCR {name}", unit="page", leave=False, disable=None if total >= 3
               else True)
    for i, item in enumerate(bar, 1):
        if total >= 10 and i % 10 == 0:
            logger.info("%s: OCR page %d/%d", name, i, total)
        yield item


@functools.lru_cache(maxsize=1)
def available_engines() -> tuple[str, ...]:
    """Engines that can run here (for bench/ocr.py and the tests)."""
    out = []
    try:
        import rapidocr  # noqa: F401

        out.append("rapidocr")
    except ImportError:
        pass
    if shutil.which("tesseract"):
        out.append("tesseract")
    return tuple(out)
