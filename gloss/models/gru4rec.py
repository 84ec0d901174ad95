"""GRU4Rec (Hidasi et al. 2016), trained with cross-entropy over the whole catalog at every position (or sampled
softmax, loss=sampled: id_base.catalog_loss).

The GRU runs over packed sequences, so the hidden state starts at zero on the first real item whatever
the left padding. Scores are dot products with the (shared) item embeddings.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from gloss.models.id_base import IDSequentialRecommender


class GRU4Rec(IDSequentialRecommender):
    name = "gru4rec"

    def __init__(self, hidden: int, layers: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.layers, self.dropout = hidden, layers, dropout

    def build(self, n_items: int) -> None:
        self.items = nn.Embedding(n_items + 1, self.hidden, padding_idx=0)
        self.drop = nn.Dropout(self.dropout)
        self.gru = nn.GRU(self.hidden, self.hidden, self.layers, batch_first=True, dropout=self.dropout if self.layers > 1 else 0.0)
        self.out = nn.Linear(self.hidden, self.hidden)
        nn.init.normal_(self.items.weight, std=0.02)  # as in the Transformers: near-uniform initial logits
        with torch.no_grad():
            self.items.weight[0].zero_()

    def item_table(self) -> nn.Embedding:
        return self.items

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T, hidden] states of left-padded `ids` (pad rows: zeros)."""
        t = ids.shape[1]
        lengths = (ids != 0).sum(1).clamp(min=1)
        shift = (t - lengths)[:, None]
        cols = torch.arange(t, device=ids.device)[None, :]
        right = ids.gather(1, (cols + shift) % t)  # left-padded -> right-padded
        packed = pack_padded_sequence(self.drop(self.items(right)), lengths.cpu(), batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=t)
        states = states.gather(1, ((cols - shift) % t)[..., None].expand(-1, -1, self.hidden))  # back to left-padded
        return self.out(self.drop(states))

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        return states @ self.items.weight[1:].T

    def training_loss(self, tokens: torch.Tensor) -> torch.Tensor:
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        real = (inputs != 0) & (targets != 0)
        return self.catalog_loss(self.encode(inputs)[real], targets[real] - 1, self.items.weight[1:])

    def next_item_logits(self, history: torch.Tensor) -> torch.Tensor:
        return self.logits(self.encode(history)[:, -1])
