"""The reader/cross-encoder: multilingual-e5-small + LoRA, with two small heads over the last hidden states.

- span head: Linear(384, 2) -> start/end logits per token (token 0, [CLS], is the null answer)
- relevance head: Linear(384, 1) over [CLS] -> does this window answer the question (reranking + refusal)
"""

from __future__ import annotations

import torch
from torch import nn

LORA_TARGETS = ["query", "key", "value", "dense"]


class ReaderHeads(nn.Module):
    def __init__(self, hidden: int = 384) -> None:
        super().__init__()
        self.span = nn.Linear(hidden, 2)
        self.relevance = nn.Linear(hidden, 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.span(h)
        neg = torch.finfo(logits.dtype).min
        keep = mask.bool()
        start = logits[..., 0].masked_fill(~keep, neg)
        end = logits[..., 1].masked_fill(~keep, neg)
        return start, end, self.relevance(h[:, 0]).squeeze(-1)


class Reader(nn.Module):
    """Encoder (a BertModel, LoRA-wrapped while training, merged for export) + heads."""

    def __init__(self, encoder: nn.Module, heads: ReaderHeads) -> None:
        super().__init__()
        self.encoder, self.heads = encoder, heads

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
        return self.heads(h, attention_mask)


def base_encoder(model_dir: str, attn: str | None = None) -> nn.Module:
    """The encoder; ``attn="eager"`` for the ONNX export (its attention graph is the one ONNX Runtime's transformer
    optimizer fuses into one ``Attention`` op per layer; the SDPA export's is not fused)."""
    from transformers import AutoModel

    if attn is None:
        return AutoModel.from_pretrained(model_dir, add_pooling_layer=False)
    return AutoModel.from_pretrained(model_dir, add_pooling_layer=False, attn_implementation=attn)


def lora_encoder(model_dir: str, rank: int, alpha: int, dropout: float = 0.05) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    enc = base_encoder(model_dir)
    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=LORA_TARGETS, bias="none")
    return get_peft_model(enc, cfg)


def losses(start: torch.Tensor, end: torch.Tensor, rel: torch.Tensor, batch: dict[str, torch.Tensor]
           ) -> tuple[torch.Tensor, torch.Tensor]:
    ce = nn.functional.cross_entropy
    span = (ce(start, batch["start"]) + ce(end, batch["end"])) / 2
    relevance = nn.functional.binary_cross_entropy_with_logits(rel, batch["relevant"])
    return span, relevance
