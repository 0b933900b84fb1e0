"""PowerPoint ``.pptx`` (python-pptx, from the capped inflation): each slide's title as a heading, its text
frames in order, tables as rows with their headers; ``page_starts`` per slide, so a chunk knows its slide."""

from __future__ import annotations

from typing import Any

from rag.ingest.loaders.base import Parsed, TextBudget, check_deadline, inflate_capped, stored_zip, table_rows


def _shape_text(shape: Any) -> list[str]:
    out: list[str] = []
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = [[c.text.strip() for c in r.cells] for r in shape.table.rows]
        return table_rows(rows)
    if getattr(shape, "shape_type", None) == 6 and hasattr(shape, "shapes"):  # a group: its members
        for s in shape.shapes:
            out.extend(_shape_text(s))
        return out
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        for p in shape.text_frame.paragraphs:
            t = p.text.strip()
            if t:
                out.append(t)
    return out


def load_pptx(data: bytes, name: str) -> Parsed:
    from pptx import Presentation

    prs = Presentation(stored_zip(inflate_capped(data, name, "PPTX")))
    budget = TextBudget(name, "PPTX")
    text, starts = "", []
    for n, slide in enumerate(prs.slides, 1):
        check_deadline()
        starts.append(len(text))
        title_shape = slide.shapes.title
        title = title_shape.text_frame.text.strip() if title_shape is not None and title_shape.has_text_frame \
            else ""
        parts = [f"## {' '.join(title.split())}" if title else f"## 第{n}页"]
        for shape in slide.shapes:
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            parts.extend(_shape_text(shape))
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame
            if notes is not None and notes.text.strip():
                parts.append(notes.text.strip())
        text += budget.add("\n\n".join(parts)) + "\n\n"
    return text, {"page_starts": starts, "pages": len(starts)}
