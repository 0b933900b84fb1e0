"""Images (``.png .jpg .jpeg .tif .tiff .bmp .webp``): OCR'd page by page (a multi-page TIFF is one page a
frame; a table becomes rows with their headers); the pixel limit is checked from the header, before any pixel
is decoded."""

from __future__ import annotations

import io
import warnings

from rag.core.errors import OcrLimitError, UnreadableFileError
from rag.ingest import ocr
from rag.ingest.loaders.base import Parsed, check_deadline, pace, tables_as_rows


def load_image(data: bytes, name: str) -> Parsed:
    from PIL import Image, ImageSequence

    if ocr.engine_name() == "none":
        raise UnreadableFileError(f"{name}: an image needs OCR, which is turned off ({ocr.ENGINE_ENV}=none)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as e:
            raise OcrLimitError(f"{name}: the image is too large to OCR ({e})") from e
    with img:
        frames = getattr(img, "n_frames", 1)
        ocr.check_page_count(frames, name)
        engine = ocr.get_engine()
        text, starts = "", []
        paced = pace(name, frames)
        for n, frame in enumerate(ocr.progress(ImageSequence.Iterator(img), frames, name), 1):
            paced(n - 1)
            check_deadline()
            ocr.check_pixels(frame.width, frame.height, name, n if frames > 1 else None)
            starts.append(len(text))
            laid, _ = tables_as_rows(ocr.ocr_image(frame.convert("RGB"), engine), gap=2)
            text += laid.strip("\n") + "\n\n"
    if not text.strip():
        raise UnreadableFileError(f"{name}: OCR found no text in the image")
    extra: dict[str, object] = {"ocr_pages": list(range(1, len(starts) + 1)), "ocr_engine": engine.name}
    if len(starts) > 1:
        extra.update(page_starts=starts, pages=len(starts))
    return text, extra
