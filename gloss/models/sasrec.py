"""SASRec (Kang & McAuley 2018): a causal Transformer over the item sequence, next item at every position.

loss=ce ("SASRec+"): softmax cross-entropy over the whole catalog, which is known to beat the
original objective by a wide margin (Klenitskiy & Vasilev 2023). loss=bce: the original objective,
binary cross-entropy on the true next item vs one uniformly sampled negative per position.
loss=sampled: softmax over the true next item and a sample of negatives shared by the batch (id_base.catalog_loss), for
large catalogs. Output scores are dot products with the (shared) item embeddings.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gloss.models.id_base import IDSequentialRecommender
from gloss.models.transformer import Encoder


class SASRec(IDSequentialRecommender):
    name = "sasrec"
    losses = ("ce", "sampled", "bce")

    def __init__(self, hidden: int, blocks: int, heads: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.blocks, self.heads, self.dropout = hidden, blocks, heads, dropout

    def build(self, n_items: int) -> None:
        self.encoder = Encoder(n_items + 1, self.max_len, self.hidden, self.blocks, self.heads, self.dropout, causal=True)

    def training_loss(self, tokens: torch.Tensor) -> torch.Tensor:
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        real = (inputs != 0) & (targets != 0)  # positions with a history and a next item; most are padding
        states = self.encoder(inputs)[real]
        targets = targets[real]
        if self.loss != "bce":
            return self.catalog_loss(states, targets - 1, self.encoder.items.weight[1:])
        negatives = torch.randint(1, self.n_items + 1, targets.shape, device=targets.device)
        pos = (states * self.encoder.items(targets)).sum(-1)
        neg = (states * self.encoder.items(negatives)).sum(-1)
        return F.binary_cross_entropy_with_logits(torch.cat([pos, neg]), torch.cat([torch.ones_like(pos), torch.zeros_like(neg)]))

    def next_item_logits(self, history: torch.Tensor) -> torch.Tensor:
        return self.encoder(history)[:, -1] @ self.encoder.items.weight[1:].T
