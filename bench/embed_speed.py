"""Passage-encoding throughput of multilingual-e5-small, fp32 vs int8, against this CPU's measured GEMM peaks.

``python -m bench.embed_speed [--passages 384] [--out bench/results/embed_speed]`` writes OUT.json and OUT.md.

Peaks are measured, not taken from a data sheet: the best of a few ONNX Runtime GEMMs on this CPU with the same
session options as the encoder (all cores), fp32 ``MatMul`` and int8 ``MatMulInteger`` (uint8 x int8 -> int32, the
kernel under dynamic quantisation; VNNI where the CPU has it), over the encoder's own shapes (tokens x 384 x 1536,
tokens x 1536 x 384, tokens x 384 x 384) and one square 2048 GEMM. numpy's fp32 matmul (its BLAS) is reported
beside them. Work per token is the encoder's multiply-adds: 2 x layers x (4 h^2 + 2 h ff) for the projections and
FFN plus 4 x layers x seq x h for attention (seq = the padded batch width), so padding counts as work done.

Passages are real chunks (CMRC 2018 dev + DRCD dev paragraphs through our chunker), the same sample for every
row; "sorted" = batches formed after sorting by token count (what ingest does), "unsorted" = in corpus order.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("bench.embed_speed")
ROOT = Path(__file__).resolve().parent.parent


def _gemm_model(m: int, k: int, n: int, int8: bool) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        b = numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "B")
        node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
        a_t, y_t = TensorProto.UINT8, TensorProto.INT32
    else:
        b = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "B")
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        a_t, y_t = TensorProto.FLOAT, TensorProto.FLOAT
    g = helper.make_graph([node], "gemm", [helper.make_tensor_value_info("A", a_t, [m, k])],
                          [helper.make_tensor_value_info("Y", y_t, [m, n])], [b])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _best_rate(fn: Any, ops: float, seconds: float = 1.5) -> float:
    fn()
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        fn()
        best = max(best, ops / (time.perf_counter() - t))
    return best / 1e9


def gemm_peaks(threads: int) -> dict[str, Any]:
    """Best GFLOP/s (fp32) and GOP/s (int8) of ONNX Runtime GEMMs on this CPU, and numpy fp32 for reference."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    shapes = [(4096, 384, 1536), (4096, 1536, 384), (4096, 384, 384), (2048, 2048, 2048)]
    out: dict[str, Any] = {"threads": threads, "shapes": shapes}
    rng = np.random.default_rng(1)
    for name, int8 in (("fp32", False), ("int8", True)):
        rates = {}
        for m, k, n in shapes:
            s = ort.InferenceSession(_gemm_model(m, k, n, int8), so, providers=["CPUExecutionProvider"])
            a = rng.integers(0, 256, (m, k), dtype=np.uint8) if int8 else rng.standard_normal((m, k), np.float32)
            rates[f"{m}x{k}x{n}"] = round(_best_rate(lambda s=s, a=a: s.run(None, {"A": a}), 2.0 * m * k * n), 1)
        out[f"ort_{name}"] = rates
        out[f"peak_{name}"] = max(rates.values())
    a, b = rng.standard_normal((2048, 2048), np.float32), rng.standard_normal((2048, 2048), np.float32)
    out["numpy_fp32_2048"] = round(_best_rate(lambda: a @ b, 2.0 * 2048**3), 1)
    return out


def sample_passages(n: int) -> list[str]:
    from eval.data import load_cmrc, load_drcd
    from rag.core.types import Document
    from rag.ingest.chunking import chunk_all

    docs = [Document(pid, t) for ds in (load_cmrc(), load_drcd()) for pid, t in ds.corpus.items()]
    chunks = chunk_all(docs, 300, 1)
    picked = random.Random(0).sample(chunks, min(n, len(chunks)))
    return ["passage: " + c.embed_text() for c in picked]


def _work(enc: Any, texts: list[str], bs: int, sort: bool, cfg: dict[str, int]) -> tuple[int, float]:
    """(real tokens, GFLOP) of encoding ``texts`` in batches of ``bs`` (padded width per batch)."""
    lens = [len(e) for e in enc.tokenizer.encode_batch(texts)]
    order = np.argsort(lens)[::-1] if sort else np.arange(len(texts))
    h, ff, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    flop = 0.0
    for s in range(0, len(texts), bs):
        width = max(lens[i] for i in order[s : s + bs])
        rows = len(order[s : s + bs]) * width
        flop += rows * (2 * layers * (4 * h * h + 2 * h * ff) + 4 * layers * width * h)
    return sum(lens), flop / 1e9


def throughput(model_dir: Path, texts: list[str], threads: int, peaks: dict[str, float],
               batches: tuple[int, ...] = (8, 32, 128)) -> list[dict[str, Any]]:
    from embeddings.onnx import OnnxEncoder

    cfg = json.loads((model_dir / "config.json").read_text())
    rows = []
    for precision in ("fp32", "int8"):
        for bs in batches:
            enc = OnnxEncoder(model_dir, threads, precision, batch_size=bs)
            enc.encode(texts[:bs])  # warm-up
            for sort in (True, False):
                t = time.perf_counter()
                enc.encode(texts, sort=sort)
                dt = time.perf_counter() - t
                ntok, gflop = _work(enc, texts, bs, sort, cfg)
                rows.append({"encoder": f"onnx {precision}", "batch": bs, "sorted": sort,
                             "passages_per_s": round(len(texts) / dt, 1), "tokens_per_s": round(ntok / dt),
                             "gflops": round(gflop / dt, 1), "of_peak": round(gflop / dt / peaks[precision], 3),
                             "load1": round(os.getloadavg()[0], 2)})
                log.info("%s", rows[-1])
            del enc
    rows.append(_torch_row(model_dir, texts, threads, peaks["fp32"], cfg))
    return rows


def _torch_row(model_dir: Path, texts: list[str], threads: int, peak: float, cfg: dict[str, int]) -> dict[str, Any]:
    """Today's fp32 ingest path: sentence-transformers (torch eager), batch 32, its own length sorting."""
    import torch
    from sentence_transformers import SentenceTransformer

    from embeddings.onnx import OnnxEncoder

    torch.set_num_threads(threads)
    m = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    m.encode(texts[:32], batch_size=32)
    t = time.perf_counter()
    with torch.inference_mode():
        m.encode(texts, batch_size=32)
    dt = time.perf_counter() - t
    ntok, gflop = _work(OnnxEncoder(model_dir, threads, "fp32"), texts, 32, True, cfg)
    return {"encoder": "torch fp32 (sentence-transformers)", "batch": 32, "sorted": True,
            "passages_per_s": round(len(texts) / dt, 1), "tokens_per_s": round(ntok / dt),
            "gflops": round(gflop / dt, 1), "of_peak": round(gflop / dt / peak, 3),
            "load1": round(os.getloadavg()[0], 2)}


def markdown(report: dict[str, Any]) -> str:
    p = report["peaks"]
    lines = [f"# Passage encoding throughput (multilingual-e5-small, {report['passages']} real chunks, "
             f"{report['avg_tokens']:.0f} tokens on average)", "",
             f"CPU: {report['cpu']}, {p['threads']} threads. Measured GEMM peaks (ONNX Runtime, best of "
             f"{', '.join('x'.join(map(str, s)) for s in p['shapes'])}): fp32 {p['peak_fp32']} GFLOP/s, int8 "
             f"{p['peak_int8']} GOP/s (numpy fp32 2048^3: {p['numpy_fp32_2048']} GFLOP/s). Load average (1 min) at "
             f"start {report['load_start']}, at end {report['load_end']}.", "",
             "| encoder | batch | length-sorted | passages/s | tokens/s | GFLOP/s (GOP/s) | of peak | load |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        lines.append(f"| {r['encoder']} | {r['batch']} | {'yes' if r['sorted'] else 'no'} | {r['passages_per_s']} | "
                     f"{r['tokens_per_s']} | {r['gflops']} | {r['of_peak']:.2f} | {r['load1']} |")
    lines += ["", f"Command: `{report['command']}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    from rag.core.config import Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passages", type=int, default=384)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "embed_speed")
    a = ap.parse_args(argv)
    s = Settings()
    model_dir = s.models_dir / s.model_name
    load_start = round(os.getloadavg()[0], 2)
    peaks = gemm_peaks(a.threads)
    log.info("peaks %s", peaks)
    texts = sample_passages(a.passages)
    rows = throughput(model_dir, texts, a.threads, {"fp32": peaks["peak_fp32"], "int8": peaks["peak_int8"]})
    flags = Path("/proc/cpuinfo").read_text()
    model = next((ln.split(":", 1)[1].strip() for ln in flags.splitlines() if ln.startswith("model name")), "?")
    isa = [f for f in ("avx512f", "avx512_vnni", "avx512_bf16", "amx_int8") if f" {f}" in flags]
    from embeddings.onnx import OnnxEncoder

    ntok = OnnxEncoder(model_dir, a.threads, "int8").tokens(texts)
    report = {"cpu": f"{model} ({', '.join(isa)})", "passages": len(texts), "avg_tokens": ntok / len(texts),
              "peaks": peaks, "rows": rows, "load_start": load_start, "load_end": round(os.getloadavg()[0], 2),
              "command": f"python -m bench.embed_speed --passages {a.passages} --threads {a.threads}"}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    a.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
