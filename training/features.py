"""Question+passage windows (SQuAD2 style, doc stride) with start/end token labels; 0 = [CLS] = no answer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.data import Example

MAX_LEN = 256
STRIDE = 96
MAX_QUESTION = 64


@dataclass
class Feature:
    input_ids: list[int]
    start: int  # token index of the answer's first token, 0 when this window does not hold it
    end: int
    relevant: int  # 1 when the window holds the answer


def load_tokenizer(model_dir: str):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def windows(tokenizer, examples: list[Example], max_len: int = MAX_LEN, stride: int = STRIDE,  # type: ignore[no-untyped-def]
            negatives_per_positive: int = 1, spare_share: float = 0.5) -> list[Feature]:
    """All windows of each unanswerable example, and for an answerable one the window(s) holding the answer
    plus (with probability ``spare_share``) up to ``negatives_per_positive`` of its windows that do not (same
    paragraph: hard negatives)."""
    qs = [e.question[:200] for e in examples]
    enc = tokenizer(qs, [e.context for e in examples], truncation="only_second", max_length=max_len,
                    stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)
    out: list[Feature] = []
    spare: dict[int, int] = {}
    answered: set[int] = set()
    rng = np.random.default_rng(len(examples))
    for i, ids in enumerate(enc["input_ids"]):
        ex = examples[enc["overflow_to_sample_mapping"][i]]
        seq = enc.sequence_ids(i)
        offs = enc["offset_mapping"][i]
        if ex.start < 0:
            out.append(Feature(ids, 0, 0, 0))
            continue
        a, b = ex.start, ex.start + len(ex.answer)
        ctx = [k for k, s in enumerate(seq) if s == 1]
        key = enc["overflow_to_sample_mapping"][i]
        if ctx and offs[ctx[0]][0] <= a and offs[ctx[-1]][1] >= b:
            if key in answered:  # overlapping windows repeat the same answer: one is enough
                continue
            answered.add(key)
            st = next(k for k in ctx if offs[k][1] > a)
            en = next(k for k in reversed(ctx) if offs[k][0] < b)
            out.append(Feature(ids, st, en, 1))
        elif rng.random() < spare_share:
            if spare.get(key, 0) < negatives_per_positive:
                spare[key] = spare.get(key, 0) + 1
                out.append(Feature(ids, 0, 0, 0))
    return out


def batches(features: list[Feature], batch_size: int, seed: int, pad_id: int = 1) -> list[dict[str, np.ndarray]]:
    """Length-grouped batches (less padding: PolicyQA windows are short), in a seeded random order."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(features))
    groups = [order[i:i + batch_size * 20] for i in range(0, len(order), batch_size * 20)]
    out = []
    for g in groups:
        g = sorted(g, key=lambda j: len(features[j].input_ids))
        for i in range(0, len(g), batch_size):
            fs = [features[j] for j in g[i:i + batch_size]]
            n = max(len(f.input_ids) for f in fs)
            ids = np.full((len(fs), n), pad_id, dtype=np.int64)
            mask = np.zeros((len(fs), n), dtype=np.int64)
            for r, f in enumerate(fs):
                ids[r, :len(f.input_ids)] = f.input_ids
                mask[r, :len(f.input_ids)] = 1
            out.append({"input_ids": ids, "attention_mask": mask,
                        "start": np.array([f.start for f in fs]), "end": np.array([f.end for f in fs]),
                        "relevant": np.array([f.relevant for f in fs], dtype=np.float32)})
    rng.shuffle(out)  # type: ignore[arg-type]
    return out
