"""Scanned renderings: 公文 text drawn on A4 pages at 150 dpi with a CJK font (no text layer), as a scanner
would return them: a multi-page PDF of JPEG page images, a multi-frame bilevel TIFF (CCITT G4), PNG or JPEG.
``| a | b |`` source lines are drawn as a ruled table. Deterministic: same text, same pixels."""

from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONTS = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
         "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
PAGE = (1240, 1754)  # A4 at 150 dpi
MARGIN = 110
SIZE = 30
PER_LINE = 34


def font_path() -> str:
    for p in FONTS:
        if Path(p).exists():
            return p
    try:  # any installed font that covers Chinese
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in sorted(out.splitlines()):
        path = line.split(":")[0].strip()
        if path:
            return path
    raise RuntimeError("no CJK font (fc-list :lang=zh is empty): apt-get install fonts-wqy-microhei")


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(), size)


def _wrap(text: str, width: int) -> list[str]:
    return [text[i : i + width] for i in range(0, len(text), width)] or [""]


def pages(text: str) -> list[Image.Image]:
    """The text laid out on as many A4 pages as it needs (title centred and larger, tables ruled)."""
    body, title_font = _font(SIZE), _font(SIZE + 8)
    step = int(SIZE * 1.6)
    out: list[Image.Image] = []
    img = Image.new("L", PAGE, 255)
    d = ImageDraw.Draw(img)
    y = MARGIN

    def room(h: int) -> None:
        nonlocal img, d, y
        if y + h > PAGE[1] - MARGIN:
            out.append(img)
            img = Image.new("L", PAGE, 255)
            d = ImageDraw.Draw(img)
            y = MARGIN

    lines = text.splitlines()
    for i, line in enumerate(lines):
        line = line.strip()
        if i == 0:
            for part in _wrap(line, 26):
                w = d.textlength(part, font=title_font)
                d.text(((PAGE[0] - w) / 2, y), part, fill=0, font=title_font)
                y += int((SIZE + 8) * 1.6)
            continue
        if not line:
            y += step // 2
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rh = int(SIZE * 2)
            room(rh)
            cw = (PAGE[0] - 2 * MARGIN) // len(cells)
            for c, cell in enumerate(cells):
                x0 = MARGIN + c * cw
                d.rectangle((x0, y, x0 + cw, y + rh), outline=0, width=2)
                d.text((x0 + 14, y + (rh - SIZE) // 2), cell, fill=0, font=body)
            y += rh
            continue
        centred = i == 1 and len(line) < 20  # the document number under the title
        for part in (_wrap(line, PER_LINE) if not centred else [line]):
            room(step)
            x = (PAGE[0] - d.textlength(part, font=body)) / 2 if centred else MARGIN
            d.text((x, y), part, fill=0, font=body)
            y += step
    out.append(img)
    return out


def scanned_pdf(text: str) -> bytes:
    """A PDF of page images only (JPEG, 150 dpi), as a scanner writes it."""
    imgs = pages(text)
    buf = io.BytesIO()
    fixed = time.gmtime(1704067200)  # 2024-01-01; PIL stamps the time of writing otherwise
    imgs[0].save(buf, format="PDF", save_all=True, resolution=150, append_images=imgs[1:], creationDate=fixed,
                 modDate=fixed)
    return buf.getvalue()


def image_bytes(text: str, fmt: str) -> bytes:
    """PNG or JPEG (one page) or a multi-frame bilevel TIFF (CCITT group 4, as office scanners write)."""
    imgs = pages(text)
    buf = io.BytesIO()
    if fmt == "TIFF":
        bw = [im.point(lambda v: 255 if v > 160 else 0, mode="1") for im in imgs]
        bw[0].save(buf, format="TIFF", save_all=True, append_images=bw[1:], compression="group4", dpi=(150, 150))
    else:
        if len(imgs) > 1:
            raise ValueError(f"{fmt} holds one page; this text needs {len(imgs)}: use a PDF or TIFF")
        imgs[0].save(buf, format=fmt, dpi=(150, 150), **({"quality": 85} if fmt == "JPEG" else {}))
    return buf.getvalue()
