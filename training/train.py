"""Train the reader/cross-encoder LoRA delta: ``python -m training.train`` (``make train``).

640 steps (one pass) over the mixed examples of ``training.data.build`` (seeded), batch 16, 224-token windows,
AdamW with linear warmup/decay; the embedding table stays frozen (LoRA on attention and dense layers only).
Progress and an ETA go to the log; a checkpoint every ``--ckpt-every`` steps lets a stopped run resume where it
was. CUDA is used when torch sees a device. The held-out split (``data.heldout``) fits the refusal thresholds
in ``export fit``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from training import data, features
from training.model import Reader, ReaderHeads, lora_encoder, losses

logger = logging.getLogger("training")
ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / ".cache" / "models" / "multilingual-e5-small"
WORK = ROOT / ".cache" / "training" / "reader"
ARTIFACT = Path(__file__).resolve().parent / "artifacts" / "reader-e5-small-lora"


def args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base", type=Path, default=BASE)
    p.add_argument("--work", type=Path, default=WORK, help="checkpoints and features cache")
    p.add_argument("--out", type=Path, default=ARTIFACT)
    p.add_argument("--n-hans", type=int, default=5200)
    p.add_argument("--n-hant", type=int, default=1300)
    p.add_argument("--n-en", type=int, default=900)
    p.add_argument("--neg-share", type=float, default=0.2)
    p.add_argument("--max-answer-chars", type=int, default=0, help="keep Chinese questions whose gold answer has "
                   "at most this many characters (0 = all; stage 3 of `make train`: concise spans)")
    p.add_argument("--concise-share", type=float, default=1.0, help="with --max-answer-chars: the share of Chinese "
                   "questions that are concise, the rest drawn from longer answers (1 = concise only)")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=int, default=32)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--head-lr", type=float, default=2e-3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-len", type=int, default=224)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=640, help="stop after this many steps (0 = the epochs)")
    p.add_argument("--stop-after", type=int, default=500, help="end the run after this many steps of the "
                   "--max-steps schedule (the committed delta: step 500 of 640; 0 = run the whole schedule)")
    p.add_argument("--ckpt-every", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--init", type=Path, default=None, help="warm start: a saved delta (adapter + heads) to continue "
                   "from, with a fresh schedule over this run's examples (stage 2 of `make train`)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (1.3x faster on CPUs with avx512_bf16; "
                   "master weights and optimizer stay fp32)")
    return p


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def trainable(model: Reader) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.named_parameters() if v.requires_grad}


def main(argv: list[str] | None = None) -> None:
    a = args_parser().parse_args(argv)
    t_start = time.time()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    seed_all(a.seed)
    a.work.mkdir(parents=True, exist_ok=True)
    tok = features.load_tokenizer(str(a.base))
    examples = data.build(a.n_hans, a.n_hant, a.n_en, a.neg_share, a.seed, "train",
                          max_answer_chars=a.max_answer_chars,
                          concise_share=a.concise_share)
    feats = features.windows(tok, examples, a.max_len)
    n_rel = sum(f.relevant for f in feats)
    logger.info("%d windows (%d answer-bearing, %d null) from %d examples", len(feats), n_rel, len(feats) - n_rel,
                len(examples))
    plan = [b for e in range(a.epochs) for b in features.batches(feats, a.batch, a.seed + e, tok.pad_token_id)]
    if a.max_steps:
        plan = plan[:a.max_steps]

    model = Reader(lora_encoder(str(a.base), a.rank, a.alpha), ReaderHeads()).to(device)
    if a.init:
        warm_start(model, a.init)
    lora = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("encoder.")]
    heads = list(model.heads.parameters())
    opt = torch.optim.AdamW([{"params": lora, "lr": a.lr}, {"params": heads, "lr": a.head_lr}], weight_decay=0.01)
    warm = max(1, len(plan) // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (len(plan) - s) / max(1, len(plan) - warm)))
    n_train = sum(p.numel() for p in lora + heads)
    logger.info("trainable parameters: %d (LoRA r=%d on %s + heads); %d steps of %d on %s", n_train, a.rank,
                ",".join(["query", "key", "value", "dense"]), len(plan), a.batch, device)

    ckpt, step = a.work / "checkpoint.pt", 0
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device)
        model.load_state_dict(state["trainable"], strict=False)
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step = state["step"]
        torch.set_rng_state(state["rng"])
        logger.info("resumed from step %d", step)

    model.train()
    t0, done0, ema = time.time(), step, None
    last = min(len(plan), a.stop_after) if a.stop_after else len(plan)
    for i in range(step, last):
        step = i
        b = {k: torch.from_numpy(v).to(device) for k, v in plan[i].items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.bf16):
            start, end, rel = model(b["input_ids"], b["attention_mask"])
        span, relevance = losses(start.float(), end.float(), rel.float(), b)
        loss = span + relevance
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lora + heads, 1.0)
        opt.step()
        sched.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if (step + 1) % 5 == 0 or step + 1 == last:
            rate = (step + 1 - done0) / (time.time() - t0)
            eta = (last - step - 1) / max(rate, 1e-9)
            logger.info("step %d/%d loss %.3f (span %.3f rel %.3f) %.2f ex/s ETA %.1f min", step + 1, len(plan), ema,
                        span.item(), relevance.item(), rate * a.batch, eta / 60)
        if (step + 1) % a.ckpt_every == 0 or step + 1 == last:
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"trainable": {k: v for k, v in model.state_dict().items() if "lora_" in k or "heads." in k},
                        "opt": opt.state_dict(), "sched": sched.state_dict(), "step": step + 1,
                        "rng": torch.get_rng_state()}, tmp)
            os.replace(tmp, ckpt)

    save_delta(model, a, last, len(plan))
    wall = (time.time() - t_start) / 60
    if done0 == 0:  # a resumed run does not know the whole run's wall time
        (a.work / "wall_min.txt").write_text(f"{wall:.1f}")
    logger.info("done in %.1f min", wall)


def warm_start(model: Reader, delta: Path) -> None:
    """Load a saved delta (peft adapter + heads) into a fresh LoRA model before training goes on."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    result = set_peft_model_state_dict(model.encoder, load_file(str(delta / "adapter_model.safetensors")))
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    if missing:
        raise RuntimeError(f"{delta}: adapter lacks {len(missing)} LoRA tensors, e.g. {missing[0]}")
    model.heads.load_state_dict(load_file(str(delta / "heads.safetensors")))
    logger.info("warm start from %s", delta)


def save_delta(model: Reader, a: argparse.Namespace, steps: int = 0, schedule: int = 0) -> None:
    """The LoRA adapter (peft format) + heads as safetensors, plus the run's settings for the model card."""
    from safetensors.torch import save_file

    a.out.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(str(a.out), safe_serialization=True)  # adapter_model.safetensors + config
    (a.out / "README.md").unlink(missing_ok=True)  # peft's template card: MODEL_CARD.md is ours
    save_file({k: v.contiguous() for k, v in model.heads.state_dict().items()}, str(a.out / "heads.safetensors"))
    run = {k: (str(v.relative_to(ROOT)) if isinstance(v, Path) and v.is_relative_to(ROOT) else
               str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k not in ("base", "work", "out")}
    run["steps"], run["schedule"] = steps, schedule  # as run (the data may end before --max-steps)
    if a.init and (a.init / "train_args.json").exists():  # stage 2: the card shows both runs
        run["init_args"] = json.loads((a.init / "train_args.json").read_text(encoding="utf-8"))
    (a.out / "train_args.json").write_text(json.dumps(run, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
