"""bench/readme.py: the README tables come from the result files, and only the text between the markers moves."""

from __future__ import annotations

import pytest

from bench.peers import ratios
from bench.readme import apply, peers_table


def _run() -> dict:
    ours = {"recall@5": 0.98, "hit@1": 0.9, "p50_ms": 10.0, "p95_ms": 20.0, "ingest_s": 50.0, "queries": 200}
    peer = {"recall@5": 0.96, "hit@1": 0.8, "p50_ms": 40.0, "p95_ms": 50.0, "ingest_s": 100.0, "queries": 200}
    return {"started": "2026-12-07T16:00:00Z", "finished": "2026-12-07T16:30:00Z", "cpus": 2,
            "load_avg_start": [0.5, 0.4, 0.3], "load_avg_end": [1.5, 1.0, 0.5], "model": "multilingual-e5-small",
            "ours": {"embedder": "sbert", "dtype": "float32", "query_backend": "onnx"},
            "sets": {"cmrc": {"chunks": 450, "ours": ours, "chatchat": peer,
                              "ratio_ours_over_chatchat": ratios(ours, peer)}}}


def test_ratios_are_ours_over_peer() -> None:
    r = ratios({"recall@5": 0.9, "hit@1": 0.5, "p50_ms": 10, "p95_ms": 30, "ingest_s": 5},
               {"recall@5": 0.6, "hit@1": 0.0, "p50_ms": 40, "p95_ms": 30, "ingest_s": 10})
    assert r == {"recall@5": 1.5, "hit@1": None, "p50_ms": 0.25, "p95_ms": 1.0, "ingest_s": 0.5}


def test_peers_table_rows_and_ratio_columns() -> None:
    table = peers_table(_run())
    rows = [line for line in table.splitlines() if line.startswith("| CMRC")]
    assert len(rows) == 2 and "ours (hybrid)" in rows[0] and "Chatchat" in rows[1]
    assert rows[1].rstrip(" |").endswith("1.02 | 1.12 | 0.25 | 0.40 | 0.50")
    assert "load average 0.50 at the start and 1.50 at the end" in table


def test_apply_replaces_only_between_markers() -> None:
    text = "intro\n<!-- bench:peers -->\nold table\n<!-- /bench:peers -->\nrest\n"
    out = apply(text, {"peers": "NEW"})
    assert out == "intro\n<!-- bench:peers -->\nNEW\n<!-- /bench:peers -->\nrest\n"
    assert apply(out, {"peers": "NEW"}) == out
    with pytest.raises(SystemExit, match="markers"):
        apply("no markers here", {"peers": "NEW"})
