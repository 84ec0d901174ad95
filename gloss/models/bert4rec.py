"""BERT4Rec (Sun et al. 2019): a bidirectional Transformer trained to recover masked items (Cloze task).

Training masks each item with probability `mask_prob` (at least one per sequence) and predicts it with
cross-entropy over the catalog. At inference a [MASK] token is appended after the history and its
output scores the next item. Id n_items + 1 is [MASK].
"""
from __future__ import annotations

import torch

from gloss.models.id_base import IDSequentialRecommender
from gloss.models.transformer import Encoder


def mask_items(ids: torch.Tensor, mask_prob: float, mask_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked ids, bool [B, T] of masked positions): each real item masked w.p. `mask_prob`, at least the last one per row."""
    real = ids != 0
    masked = (torch.rand(ids.shape, device=ids.device) < mask_prob) & real
    none = ~masked.any(dim=1) & real.any(dim=1)
    masked[none, -1] = True  # rows are left-padded: the last column is always a real item
    return ids.masked_fill(masked, mask_id), masked


class BERT4Rec(IDSequentialRecommender):
    name = "bert4rec"

    def __init__(self, hidden: int, blocks: int, heads: int, dropout: float, mask_prob: float, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.blocks, self.heads, self.dropout, self.mask_prob = hidden, blocks, heads, dropout, mask_prob

    def build(self, n_items: int) -> None:
        self.mask_id = n_items + 1
        self.encoder = Encoder(n_items + 2, self.max_len, self.hidden, self.blocks, self.heads, self.dropout, causal=False)

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        return states @ self.encoder.items.weight[1 : self.n_items + 1].T

    def training_loss(self, tokens: torch.Tensor) -> torch.Tensor:
        ids = tokens[:, -self.max_len :]
        inputs, masked = mask_items(ids, self.mask_prob, self.mask_id)
        return self.catalog_loss(self.encoder(inputs)[masked], ids[masked] - 1, self.encoder.items.weight[1 : self.n_items + 1])

    def next_item_logits(self, history: torch.Tensor) -> torch.Tensor:
        query = torch.full_like(history[:, :1], self.mask_id)
        return self.logits(self.encoder(torch.cat([history[:, -(self.max_len - 1) :], query], dim=1))[:, -1])
