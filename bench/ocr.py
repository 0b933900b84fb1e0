"""OCR quality and speed on pages rendered here: character error rate (edit distance over reference length,
whitespace ignored) and seconds per page, for each installed engine on the same pages.

``python -m bench.ocr [--engines rapidocr tesseract] [--pages 24] [--out bench/results/ocr.json]``

Pages (A4 at 150 dpi, WenQuanYi Micro Hei): policy paragraphs from seeds/ in simplified Chinese, the same
turned into traditional by OpenCC, ruled tables, pages turned by 90/270 degrees (a sideways scan) and
degraded scans (downsampled, blurred, noise). Timing includes each engine's page rotation checks.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cer(ref: str, hyp: str) -> float:
    """Character error rate: Levenshtein distance / len(ref), whitespace removed from both."""
    r, h = "".join(ref.split()), "".join(hyp.split())
    if not r:
        return float(bool(h))
    prev = list(range(len(h) + 1))
    for i, rc in enumerate(r, 1):
        cur = [i] + [0] * len(h)
        for j, hc in enumerate(h, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rc != hc))
        prev = cur
    return prev[-1] / len(r)


def seed_paragraphs() -> list[str]:
    paras: list[str] = []
    for p in sorted((ROOT / "seeds").glob("*.txt")):
        for para in p.read_text(encoding="utf-8").split("\n"):
            para = para.strip()
            if 40 <= len(para) <= 400 and not para.startswith("#"):
                paras.append(para)
    return paras


def make_pages(n: int) -> list[tuple[str, str, object]]:
    """``n`` pages as (kind, reference text, PIL image)."""
    import opencc
    from PIL import ImageFilter

    from tests.ingest import docmaker as dm

    rnd = random.Random(17)
    paras = seed_paragraphs()
    s2t = opencc.OpenCC("s2t")
    kinds = ["simplified"] * 8 + ["traditional"] * 6 + ["table"] * 4 + ["rotated"] * 4 + ["degraded"] * 2
    kinds = (kinds * (n // len(kinds) + 1))[:n]
    pages = []
    for i, kind in enumerate(kinds):
        start = rnd.randrange(max(1, len(paras) - 3))
        body = paras[start : start + 3]
        body = [p[:300] for p in body]
        if kind == "traditional":
            body = [s2t.convert(p) for p in body]
        table = None
        if kind == "table":
            body = body[:1]
            table = [["项目", "补贴标准", "申请期限", "责任单位"]] + [
                [f"第{k + 1}类补贴", f"每人每月{rnd.randrange(2, 30) * 100}元", f"{rnd.randrange(1, 5)}年",
                 rnd.choice(["市人社局", "自治区财政厅", "旗县人民政府", "市科技局"])] for k in range(6)]
            if i % 2:
                body = [s2t.convert(p) for p in body]
                table = [[s2t.convert(c) for c in row] for row in table]
        size = rnd.choice([26, 28, 30, 32])
        rotate = (90 if i % 2 else 270) if kind == "rotated" else 0
        img = dm.render_page(body, font_size=size, chars_per_line=int(1040 / size), table=table, rotate=rotate)
        if kind == "degraded":
            img = img.resize((img.width * 2 // 3, img.height * 2 // 3)).filter(ImageFilter.GaussianBlur(0.8))
            px = img.load()
            for _ in range(img.width * img.height // 200):
                px[rnd.randrange(img.width), rnd.randrange(img.height)] = rnd.choice((0, 255))
        ref = "".join(body) + ("".join("".join(r) for r in table) if table else "")
        pages.append((kind, ref, img))
    return pages


def run(engines: list[str], n: int) -> dict[str, object]:
    from rag.ingest import ocr

    pages = make_pages(n)
    results: dict[str, object] = {"pages": len(pages), "kinds": sorted({k for k, _, _ in pages}), "engines": {}}
    for name in engines:
        t0 = time.perf_counter()
        engine = ocr.get_engine(name)
        load_s = time.perf_counter() - t0
        rows = []
        for kind, ref, img in pages:
            t = time.perf_counter()
            text = ocr.ocr_image(img, engine)  # type: ignore[arg-type]
            rows.append({"kind": kind, "cer": cer(ref, text), "seconds": time.perf_counter() - t,
                         "chars": len("".join(ref.split()))})
        by_kind = {}
        for kind in results["kinds"]:  # type: ignore[attr-defined]
            rs = [r for r in rows if r["kind"] == kind]
            by_kind[kind] = sum(r["cer"] * r["chars"] for r in rs) / sum(r["chars"] for r in rs)
        total_chars = sum(r["chars"] for r in rows)
        results["engines"][name] = {  # type: ignore[index]
            "cer": sum(r["cer"] * r["chars"] for r in rows) / total_chars,
            "cer_by_kind": by_kind,
            "seconds_per_page": sum(r["seconds"] for r in rows) / len(rows),
            "load_seconds": load_s,
            "rows": rows,
        }
    return results


def table(results: dict[str, object]) -> str:
    kinds = results["kinds"]
    head = "| engine | CER all | " + " | ".join(f"CER {k}" for k in kinds) + " | s/page | load s |"  # type: ignore
    lines = [head, "|" + "---|" * (len(kinds) + 4)]  # type: ignore[arg-type]
    for name, r in results["engines"].items():  # type: ignore[attr-defined]
        lines.append(f"| {name} | {r['cer']:.3f} | " + " | ".join(f"{r['cer_by_kind'][k]:.3f}" for k in kinds)
                     + f" | {r['seconds_per_page']:.2f} | {r['load_seconds']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    from rag.ingest import ocr

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--engines", nargs="+", default=list(ocr.available_engines()))
    ap.add_argument("--pages", type=int, default=24)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "ocr.json"))
    a = ap.parse_args()
    results = run(a.engines, a.pages)
    print(f"{results['pages']} rendered pages ({', '.join(results['kinds'])})")  # type: ignore[arg-type]
    print(table(results))
    Path(a.out).write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
