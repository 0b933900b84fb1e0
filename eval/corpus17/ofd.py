"""An OFD package (GB/T 33190-2016) of a text: ``OFD.xml`` -> ``Doc_0/Document.xml`` (page area, public
resources with the font, page list) -> ``Pages/Page_N/Content.xml`` with one ``TextObject`` per line (Boundary,
Font, Size, FillColor; ``TextCode`` with X, Y on the baseline and ``DeltaX`` glyph advances in the standard's
``g`` notation). Lines are wrapped to the A4 type area; the title is centred and larger. Zip members carry a
fixed timestamp, so the same text gives the same bytes."""

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape

NS = "http://www.ofdspec.org/2016"
HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
LEFT, TOP, WIDTH, BOTTOM = 25.0, 30.0, 160.0, 272.0
SIZE, TITLE_SIZE, STEP = 4.2, 5.6, 7.0
STAMP = (2024, 1, 1, 0, 0, 0)


def _lines(text: str) -> list[tuple[str, float, bool]]:
    """(line, font size, centred); "" is a paragraph gap."""
    per = int(WIDTH // SIZE)
    out: list[tuple[str, float, bool]] = []
    for i, raw in enumerate(text.splitlines()):
        line = raw.strip()
        if i == 0:
            out.append((line, TITLE_SIZE, True))
        elif not line:
            out.append(("", SIZE, False))
        elif i == 1 and len(line) < 24:
            out.append((line, SIZE, True))
        else:
            out += [(line[k : k + per], SIZE, False) for k in range(0, len(line), per)]
    return out


def _text_object(oid: int, line: str, size: float, centred: bool, y: float) -> str:
    width = len(line) * size
    x = LEFT + (WIDTH - width) / 2 if centred else LEFT
    delta = f' DeltaX="g {len(line) - 1} {size:g}"' if len(line) > 1 else ""
    return (f'<ofd:TextObject ID="{oid}" Boundary="{x:.2f} {y:.2f} {width:.2f} {size * 1.4:.2f}" Font="1" '
            f'Size="{size:g}"><ofd:FillColor Value="0 0 0"/><ofd:TextCode X="0" Y="{size:g}"{delta}>'
            f"{escape(line)}</ofd:TextCode></ofd:TextObject>")


def ofd_bytes(text: str, doc_id: str = "0" * 32) -> bytes:
    pages: list[list[str]] = [[]]
    oid = 10  # IDs 1-9: the font and the pages' own ids come from this counter too
    y = TOP
    for line, size, centred in _lines(text):
        if not line:
            y += STEP
            continue
        if y + STEP > BOTTOM:
            pages.append([])
            y = TOP
        oid += 1
        pages[-1].append(_text_object(oid, line, size, centred, y))
        y += STEP * (size / SIZE)
    title = escape(text.splitlines()[0].strip())
    members: dict[str, str] = {
        "OFD.xml": f'{HEAD}<ofd:OFD xmlns:ofd="{NS}" Version="1.1" DocType="OFD"><ofd:DocBody><ofd:DocInfo>'
                   f"<ofd:DocID>{doc_id}</ofd:DocID><ofd:Title>{title}</ofd:Title><ofd:Author>示例市</ofd:Author>"
                   "<ofd:CreationDate>2024-01-01</ofd:CreationDate><ofd:Creator>eval.corpus17</ofd:Creator>"
                   "</ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>",
        "Doc_0/PublicRes.xml": f'{HEAD}<ofd:Res xmlns:ofd="{NS}" BaseLoc="Res"><ofd:Fonts><ofd:Font ID="1" '
                               'FontName="SimSun" FamilyName="SimSun" Charset="unicode"/></ofd:Fonts></ofd:Res>',
    }
    refs = []
    for n, objs in enumerate(pages):
        oid += 2
        members[f"Doc_0/Pages/Page_{n}/Content.xml"] = (
            f'{HEAD}<ofd:Page xmlns:ofd="{NS}"><ofd:Content><ofd:Layer ID="{oid}" Type="Body">{"".join(objs)}'
            "</ofd:Layer></ofd:Content></ofd:Page>")
        refs.append(f'<ofd:Page ID="{oid - 1}" BaseLoc="Pages/Page_{n}/Content.xml"/>')
    members["Doc_0/Document.xml"] = (
        f'{HEAD}<ofd:Document xmlns:ofd="{NS}"><ofd:CommonData><ofd:MaxUnitID>{oid}</ofd:MaxUnitID><ofd:PageArea>'
        "<ofd:PhysicalBox>0 0 210 297</ofd:PhysicalBox></ofd:PageArea><ofd:PublicRes>PublicRes.xml</ofd:PublicRes>"
        f'</ofd:CommonData><ofd:Pages>{"".join(refs)}</ofd:Pages></ofd:Document>')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in ("OFD.xml", "Doc_0/Document.xml", "Doc_0/PublicRes.xml", *sorted(
                m for m in members if m.startswith("Doc_0/Pages/"))):
            info = zipfile.ZipInfo(name, STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, members[name].encode("utf-8"))
    return buf.getvalue()
