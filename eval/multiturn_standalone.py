"""Held-out set 2's failing follow-ups asked as standalone first questions (issue 16): is a failure the
resolver's or the reader's?

``python -m eval.multiturn_standalone [--out FILE]`` asks each hand-written standalone form below (what a right
resolution would search; ``None``: the question as asked, for switches and self-contained turns) as a first turn
on the same seed pipeline and scorer as ``eval.multiturn``. A follow-up whose right standalone form is answered
wrong too is a reader error, not a resolution error (docs/eval/multiturn.md, "Round 4").
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from eval.data import ROOT
from eval.multiturn import HELDOUT2, ask, load, score

# (conversation, turn) -> the standalone forms to ask (None: the question as asked)
FORMS: dict[tuple[str, int], list[str | None]] = {
    ("g001", 2): ["内蒙古科技计划共支持了多少经费？", "内蒙古科技计划支持经费达到多少？"],
    ("g002", 2): ["内蒙古一机集团的做法激发了什么？"],
    ("g006", 2): ["简耘科技还出资建立了什么中心？"],
    ("g008", 2): ["呼和浩特市科技创新发展指数在内蒙古各盟市中排第几？"],
    ("g009", 2): ["呼和浩特市针对多少户规模以上科技领军企业推动研发活动全覆盖？",
                  "呼和浩特市培育了多少家科技领军企业？"],
    ("g011", 2): [None], ("g013", 2): [None], ("g025", 2): [None], ("g032", 2): [None], ("g034", 2): [None],
    ("g035", 2): [None],
    ("g016", 2): ["内蒙古科信科技创新推广有限公司负责技术经纪人管理的工作人员王静所在的公司是哪一年被认定为"
                  "自治区级技术转移服务机构的？",
                  "内蒙古科信科技创新推广有限公司是哪一年被认定为自治区级技术转移服务机构的？"],
    ("g021", 2): ["內蒙古關鍵工序數位化率要達到多少？"],
    ("g028", 2): ["How many technology brokers did Hohhot train in 2023?"],
    ("g029", 2): ["Whose role does the director of the Inner Mongolia Science and Technology Strategy Research Center "
                  "say Beijing-Inner Mongolia cooperation needs to make more use of?"],
    ("g030", 2): ["How many cooperation needs have been pushed to Beijing?"],
    ("g031", 2): ["And how many enterprises above designated size did Ordos help end zero R&D spending?"],
    ("g033", 2): ["What share of the first batch of Mengkeju collaborative innovation institutions are located in "
                  "Beijing?"],
}


def run(p: Any) -> list[dict[str, Any]]:
    convs = {c.cid: c for c in load(HELDOUT2)}
    out = []
    for (cid, turn), forms in FORMS.items():
        c = convs[cid]
        for form in forms:
            q = form or c.turns[turn - 1].question
            res, a = ask(p, q, [], False)
            r = score(c, turn - 1, res, a, False)
            out.append({"conv": cid, "turn": turn, "standalone": q, "correct": r["correct"], "short": r["short"],
                        "contains": r["contains"], "doc": r["doc"]})
    return out


def main() -> None:
    from embeddings.factory import create_embedder
    from eval.run import make_pipeline
    from rag.core.config import Settings
    from rag.ingest.loaders import load_path

    logging.basicConfig(level=logging.WARNING)
    ap = argparse.ArgumentParser(prog="python -m eval.multiturn_standalone")
    ap.add_argument("--out", default=str(ROOT / "eval" / "reports" / "multiturn" / "standalone.json"))
    args = ap.parse_args()
    settings = Settings()  # the served defaults, as eval.multiturn
    docs, _ = load_path(ROOT / "seeds")
    with tempfile.TemporaryDirectory() as tmp:
        emb = create_embedder(settings.embedder, settings.models_dir, settings.model_name, settings.dtype,
                              settings.batch_size)
        p = make_pipeline(settings, emb, docs, Path(tmp) / "seed")
        p.generator = p.generators.get(settings.reader, p.generator)
        rows = run(p)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, ensure_ascii=False, indent=1))
    for r in rows:
        print(f"{r['conv']} {r['correct']:.0f} {r['short']!r} {r['standalone']}")


if __name__ == "__main__":
    main()
