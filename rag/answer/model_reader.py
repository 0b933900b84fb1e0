"""The trained reader + cross-encoder (``training/``), served from its ONNX export: no torch, no training code.

One model, two heads over multilingual-e5-small + a merged LoRA delta: start/end logits per token (token 0 is the
"no answer" slot, SQuAD2 style) and a relevance logit per (question, passage window). ``OnnxReader.read`` takes one
question and a batch of passages and returns, per passage, the best span (character offsets into that passage),
its score over the null score (``answer``) and the best window's relevance logit.

The model folder is written by ``python -m training.export install`` (``make model``): ``model.onnx``,
``model_int8.onnx``, ``tokenizer.json`` and ``export.json`` (sha256 of each ONNX file, the fitted calibration).
The chosen ONNX file is checked against its recorded sha256 at load.

With ``parallel`` (``RAG_READER_PARALLEL``) and two or more intra-op threads, the windows of one ``read`` are
sorted by length and cut into one contiguous group per thread (at most one per window, the cut that balances rows
x padded width), and the groups run at once on a second, single-threaded session (``session.run`` is thread-safe
and releases the GIL): small transformer GEMMs do not split well across two intra-op threads, the same finding as
the embedder's bulk path (``embeddings/onnx.py``). Sorting also cuts the padding. Each window's logits are its
own (the fp32 graph gives the single-call values to float rounding); the int8 graph quantises activations per
call (``DynamicQuantizeLinear`` over the whole batch), so its logits move by a few hundredths with the batch a
window shares, as they already do between questions.

With ``t2s`` (``RAG_READER_T2S``: off, always, mismatch) the model reads the question and passages converted to
simplified characters (``view``; "mismatch": only where the question's script differs from the passage's), and the
span is cut from the original at the same offsets: traditional questions over simplified documents gain, DRCD dev
does not (bench/results/reader_t2s.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.core.errors import ModelNotInstalledError
from rag.core.text import is_traditional, simplified_aligned, to_simplified

logger = logging.getLogger(__name__)

MAX_LEN = 256
STRIDE = 96
MAX_QUESTION_CHARS = 200
MAX_ANSWER_TOKENS = 40
T2S_MODES = ("off", "always", "mismatch")
CLS, SEP, PAD = 0, 2, 1  # XLM-R ids: <s> q </s></s> passage </s>


@dataclass
class Read:
    """The reader's view of one passage: best span (``start``/``end`` in the passage, -1 when none)."""

    text: str
    start: int
    end: int
    answer: float  # best span score minus the null score of its window (> calibration.min_answer: answered)
    relevance: float  # cross-encoder logit of the best window (> calibration.min_relevance: relevant)


@dataclass
class ReaderCalibration:
    """Refusal thresholds fitted on the held-out training split (``training.fit``, balanced accuracy)."""

    min_answer: float = 0.0
    min_relevance: float = 0.0
    min_score: float | None = None  # on answer + relevance; when set, the one decision used
    int8: bool = True


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class OnnxReader:
    """Batch reader over ONNX Runtime. ``int8`` None follows the calibration's choice."""

    name = "reader-e5-small"

    def __init__(self, model_dir: Path, int8: bool | None = None, threads: int = 0, max_len: int = MAX_LEN,
                 stride: int = STRIDE, verify: bool = True, parallel: bool = False, t2s: bool | str = False,
                 device: str = "cpu") -> None:
        model_dir = Path(model_dir)
        meta_path = model_dir / "export.json"
        if not meta_path.exists():
            raise ModelNotInstalledError(f"reader model not installed in {model_dir}: run `make model` "
                                         "(python -m training.export install)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        cal = meta.get("calibration") or {}
        self.calibration = ReaderCalibration(float(cal.get("min_answer", 0.0)), float(cal.get("min_relevance", 0.0)),
                                             float(cal["min_score"]) if "min_score" in cal else None,
                                             bool(cal.get("int8", True)))
        self.int8 = self.calibration.int8 if int8 is None else int8
        fname = "model_int8.onnx" if self.int8 else "model.onnx"
        path = model_dir / fname
        want = meta.get("onnx_sha256", {}).get(fname)
        if verify and (not path.exists() or _sha256(path) != want):
            raise ModelNotInstalledError(f"{path} is missing or does not match the sha256 recorded at export: "
                                         "run `make model` to export it again")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        # RAG_DEVICE auto/cuda: the fp32 graph on a GPU when onnxruntime-gpu is installed (int8 kernels are CPU ones)
        from embeddings.onnx import providers

        self.session = ort.InferenceSession(str(path), opts,
                                            providers=["CPUExecutionProvider"] if self.int8 else providers(device))
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.max_len, self.stride = max_len, stride
        self.sha256 = want
        self.threads = opts.intra_op_num_threads
        self.parallel = parallel
        self.t2s = ("always" if t2s else "off") if isinstance(t2s, bool) else t2s
        if self.t2s not in T2S_MODES:
            raise ValueError(f"t2s {t2s!r}: one of {', '.join(T2S_MODES)}")
        self._path = path
        self._single: Any = None  # the single-threaded session the groups share (built on the first parallel read)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _windows(self, question: str | list[str], passages: list[str]
                 ) -> tuple[list[list[int]], list[tuple[int, int, list[tuple[int, int]]]]]:
        """Token windows ``<s> q </s></s> ctx </s>``; per window (passage, first context position, offsets).
        ``question`` may be one per passage (the form ``view`` chose for it)."""
        qs = [question] * len(passages) if isinstance(question, str) else question
        qids = {x: self.tokenizer.encode(x[:MAX_QUESTION_CHARS], add_special_tokens=False).ids[:64] for x in set(qs)}
        encs = self.tokenizer.encode_batch(passages, add_special_tokens=False) if passages else []
        ids, meta = [], []
        for p, enc in enumerate(encs):
            q = qids[qs[p]]
            budget = self.max_len - len(q) - 4
            step = max(1, budget - self.stride)
            toks, offs = enc.ids, enc.offsets
            lo = 0
            while True:
                part = toks[lo:lo + budget]
                ids.append([CLS, *q, SEP, SEP, *part, SEP])
                meta.append((p, len(q) + 3, list(offs[lo:lo + budget])))
                if lo + budget >= len(toks):
                    break
                lo += step
        return ids, meta

    @staticmethod
    def _batch(ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        n = max(len(x) for x in ids)
        arr = np.full((len(ids), n), PAD, dtype=np.int64)
        mask = np.zeros((len(ids), n), dtype=np.int64)
        for i, x in enumerate(ids):
            arr[i, :len(x)] = x
            mask[i, :len(x)] = 1
        return arr, mask

    def _run(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.parallel and self.threads >= 2 and len(ids) >= 2:
            return self._run_groups(ids)
        arr, mask = self._batch(ids)
        start, end, rel = self.session.run(None, {"input_ids": arr, "attention_mask": mask})
        return start, end, rel

    @staticmethod
    def groups(lengths: list[int], n: int) -> list[list[int]]:
        """Window indices sorted longest first, cut into ``n`` contiguous groups minimising the largest group's
        rows x padded width (the width is its first window's length)."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        n = max(1, min(n, len(order)))
        srt = [lengths[i] for i in order]
        # cost[g][i]: best largest group cost splitting srt[i:] into g groups
        memo: dict[tuple[int, int], tuple[int, list[int]]] = {}

        def best(i: int, g: int) -> tuple[int, list[int]]:
            if (i, g) in memo:
                return memo[i, g]
            m = len(srt)
            if g == 1:
                res = ((m - i) * srt[i], [m])
            else:
                res = (1 << 62, [m])
                for j in range(i + 1, m - g + 2):  # first group srt[i:j], the rest in g - 1 groups
                    c, cuts = best(j, g - 1)
                    c = max(c, (j - i) * srt[i])
                    if c < res[0]:
                        res = (c, [j, *cuts])
            memo[i, g] = res
            return res

        out, lo = [], 0
        for hi in best(0, n)[1]:
            out.append(order[lo:hi])
            lo = hi
        return out

    def _single_session(self) -> Any:
        with self._lock:
            if self._single is None:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 1
                opts.inter_op_num_threads = 1
                self._single = ort.InferenceSession(str(self._path), opts, providers=["CPUExecutionProvider"])
                self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="reader")
        return self._single

    def _run_groups(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sess = self._single_session()
        assert self._pool is not None
        parts = self.groups([len(x) for x in ids], self.threads)

        def one(idx: list[int]) -> list[np.ndarray]:
            arr, mask = self._batch([ids[i] for i in idx])
            return list(sess.run(None, {"input_ids": arr, "attention_mask": mask}))

        futures = [self._pool.submit(one, idx) for idx in parts[1:]]
        results = [one(parts[0]), *(f.result() for f in futures)]
        width = max(len(x) for x in ids)
        start = np.full((len(ids), width), -1e4, dtype=np.float32)
        end = np.full((len(ids), width), -1e4, dtype=np.float32)
        rel: np.ndarray | None = None
        for idx, (s, e, r) in zip(parts, results):
            start[idx, :s.shape[1]] = s
            end[idx, :e.shape[1]] = e
            if rel is None:
                rel = np.zeros((len(ids), *r.shape[1:]), dtype=r.dtype)
            rel[idx] = r
        assert rel is not None
        return start, end, rel

    def view(self, question: str, passages: list[str]) -> tuple[list[str], list[str]]:
        """What the model reads, the question once per passage. ``t2s`` "always": the question and the passages in
        simplified characters (the training data is mostly simplified); "mismatch": only where the question's script
        differs from the passage's (a traditional question over a simplified document or the reverse). A passage is
        converted only when that keeps its length, so the tokeniser's offsets into it are offsets into the original
        and the span is cut from the document's own text."""
        if self.t2s == "off":
            return [question] * len(passages), passages
        qs, out = [], []
        simple_q = to_simplified(question)
        q_trad = is_traditional(question, simple_q)
        for p in passages:
            v = simplified_aligned(p)
            if v is None:
                logger.debug("t2s changes the length of a %d-character passage: read as given", len(p))
            if self.t2s == "mismatch" and (v is None or q_trad == is_traditional(p, v)):
                qs.append(question)
                out.append(p)
            else:
                qs.append(simple_q)
                out.append(p if v is None else v)
        return qs, out

    def read(self, question: str, passages: list[str]) -> list[Read]:
        """One ``Read`` per passage (batched: every window of every passage in one model call); the span text
        and offsets are always the given passage's (``view`` keeps the offsets)."""
        if not passages:
            return []
        ids, meta = self._windows(*self.view(question, passages))
        start, end, rel = self._run(ids)
        best: list[Read | None] = [None] * len(passages)
        for w, (p, c0, offs) in enumerate(meta):
            if not offs:
                continue
            s = start[w, c0:c0 + len(offs)]
            e = end[w, c0:c0 + len(offs)]
            null = float(start[w, 0] + end[w, 0])
            # best (i, j) with i <= j < i + MAX_ANSWER_TOKENS: a banded upper triangle of s_i + e_j
            scores = s[:, None] + e[None, :]
            band = np.triu(np.ones_like(scores, dtype=bool)) & ~np.triu(np.ones_like(scores, dtype=bool),
                                                                        MAX_ANSWER_TOKENS)
            scores = np.where(band, scores, -np.inf)
            i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
            a, b = offs[int(i)][0], offs[int(j)][1]
            text = passages[p][a:b]
            lead = len(text) - len(text.lstrip())  # sentencepiece's "▁" offsets may include a leading space
            cand = Read(text.strip(), a + lead, a + lead + len(text.strip()), float(scores[i, j]) - null,
                        float(rel[w]))
            cur = best[p]
            if cur is None:
                best[p] = cand
            else:
                if cand.answer > cur.answer:
                    cand.relevance = max(cand.relevance, cur.relevance)
                    best[p] = cand
                else:
                    cur.relevance = max(cur.relevance, cand.relevance)
        return [b if b is not None else Read("", -1, -1, -1e9, -1e9) for b in best]
