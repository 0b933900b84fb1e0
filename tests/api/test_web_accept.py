"""The page's file picker offers exactly the formats the loaders read (issue 17)."""

from __future__ import annotations

import re
from pathlib import Path

from rag.ingest.loaders import SUPPORTED

PAGE = Path(__file__).resolve().parents[2] / "api" / "web" / "index.html"


def test_upload_accept_list_matches_the_loaders():
    m = re.search(r'<input[^>]*type="file"[^>]*accept="([^"]*)"', PAGE.read_text(encoding="utf-8"), re.S)
    assert m, "no file input with an accept list in index.html"
    offered = {a.strip() for a in m.group(1).split(",") if a.strip().startswith(".")}
    assert offered == set(SUPPORTED), f"page offers {sorted(offered ^ set(SUPPORTED))} differently from the loaders"
