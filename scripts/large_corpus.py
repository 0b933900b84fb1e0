"""The large Chinese corpus of ``scripts/ingest_large.py``: >= 50,000 documents from ../shared/data as .txt files.

1. every distinct paragraph (>= 40 characters after whitespace normalisation) of: CMRC 2018 dev + trial
   contexts, DRCD dev contexts, DuReader 2.0 demo (dev + train) document paragraphs, RGB zh
   (refine, int, fact) positive and negative passages;
2. if that is fewer than the target: **sentence-window documents** over the same paragraphs (see
   ``build_corpus``). All text is real; windows overlap their source paragraph.

Written once under a folder (subfolders of 1,000 files) and reused while its corpus.json matches.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
MIN_CHARS = 40
_SENT_END = re.compile(r"(?<=[。！？!?；;])")
CORPUS_FORMAT = 1


def _norm(text: str) -> str:
    return re.sub(r"[ \t\r\f\v\u3000\xa0]+", " ", text).strip()


def _squad(path: Path) -> Iterator[str]:
    d = json.loads(path.read_text(encoding="utf-8"))
    for art in d["data"]:
        for p in art["paragraphs"]:
            yield p["context"]


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _flatten(x: Any) -> Iterator[str]:
    if isinstance(x, str):
        yield x
    elif isinstance(x, list):
        for y in x:
            yield from _flatten(y)


def source_paragraphs(data: Path) -> dict[str, list[str]]:
    """Raw paragraphs per source, in file order."""
    out: dict[str, list[str]] = {}
    out["cmrc2018"] = [*_squad(data / "cmrc2018/cmrc2018_dev.squad.json"),
                       *_squad(data / "cmrc2018/cmrc2018_trial.squad.json")]
    out["drcd"] = list(_squad(data / "drcd/DRCD_dev.json"))
    out["dureader"] = [p for fn in ("search.dev.json", "search.train.json")
                       for q in _jsonl(data / "dureader2_demo" / fn)
                       for doc in q.get("documents", []) for p in doc.get("paragraphs", [])]
    out["rgb_zh"] = [p for fn in ("zh_refine.json", "zh_int.json", "zh_fact.json")
                     for q in _jsonl(data / "rgb_zh" / fn)
                     for key in ("positive", "negative") for p in _flatten(q.get(key, []))]
    return out


def _sentences(text: str) -> list[str]:
    parts: list[str] = []
    for line in text.split("\n"):
        parts += [s.strip() for s in _SENT_END.split(line) if s.strip()]
    return parts


def build_corpus(data: Path, target: int) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """[(name, text)] of at least ``target`` distinct documents (fewer only if the data can't give more)."""
    seen: set[str] = set()
    docs: list[tuple[str, str]] = []
    stats: dict[str, Any] = {"paragraphs": {}, "windows": {}}
    paras: list[tuple[str, str]] = []
    for src, items in source_paragraphs(data).items():
        n = 0
        for raw in items:
            t = _norm(raw)
            if len(t) < MIN_CHARS or t in seen:
                continue
            seen.add(t)
            paras.append((src, t))
            n += 1
        stats["paragraphs"][src] = n
    docs = [(f"{src}-p{i:06d}.txt", t) for i, (src, t) in enumerate(paras)]
    for size, stride in ((3, 2), (2, 1), (1, 1)):
        if len(docs) >= target:
            break
        added = 0
        for i, (src, t) in enumerate(paras):
            sents = _sentences(t)
            if len(sents) <= size:
                continue
            for s in range(0, len(sents) - size + 1, stride):
                w = "".join(sents[s : s + size])
                if len(w) < MIN_CHARS or w in seen:
                    continue
                seen.add(w)
                docs.append((f"{src}-w{size}-{i:06d}-{s:03d}.txt", w))
                added += 1
                if len(docs) >= target:
                    break
            if len(docs) >= target:
                break
        stats["windows"][f"{size}_sentences_stride_{stride}"] = added
    docs = docs[:target]
    stats["documents"] = len(docs)
    stats["distinct_paragraphs"] = len(paras)
    stats["chars"] = sum(len(t) for _, t in docs)
    stats["method"] = ("distinct paragraphs (>= 40 chars) of cmrc2018 dev+trial, drcd dev, dureader2_demo "
                       "dev+train, rgb_zh refine/int/fact positives+negatives; then sentence windows over "
                       "those paragraphs (3 sentences stride 2, then 2 stride 1, then single sentences)")
    return docs, stats


def write_corpus(folder: Path, target: int) -> dict[str, Any]:
    """Write the .txt files (in subfolders of 1,000) unless an identical corpus is already there."""
    meta_path = folder / "corpus.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("format") == CORPUS_FORMAT and meta.get("target") == target:
            return dict(meta)
    docs, stats = build_corpus(DATA, target)
    if folder.exists():
        shutil.rmtree(folder)
    for i, (name, text) in enumerate(docs):
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / name).write_text(text + "\n", encoding="utf-8")
    digest = hashlib.sha256("\n".join(n for n, _ in docs).encode()).hexdigest()[:16]
    meta = {"format": CORPUS_FORMAT, "target": target, "names_sha": digest, **stats}
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=1))
    return meta


def corpus_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*/*.txt"))
