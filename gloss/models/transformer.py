"""A small pre-LayerNorm Transformer encoder over left-padded item-id sequences (SASRec, BERT4Rec).

Written out (not nn.TransformerEncoder) for one reason: the attention mask lets every position attend
to itself, so padded query rows are never fully masked (no NaN) while real positions never see padding.
That makes outputs independent of how much left padding a sequence has.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def attention_mask(ids: torch.Tensor, causal: bool) -> torch.Tensor:
    """[B, 1, T, T] bool, True = may attend: non-pad keys (and always itself), only earlier ones when causal."""
    t = ids.shape[1]
    allowed = (ids != 0)[:, None, None, :].expand(-1, 1, t, t)
    if causal:
        allowed = allowed & torch.ones(t, t, dtype=torch.bool, device=ids.device).tril()
    return allowed | torch.eye(t, dtype=torch.bool, device=ids.device)


def item_and_position_embeddings(vocab: int, max_len: int, hidden: int) -> tuple[nn.Embedding, nn.Embedding]:
    """Item (id 0 = padding, zero) and position embeddings, N(0, 0.02) instead of PyTorch's N(0, 1): the tied output
    logits then start near uniform, which trains much faster."""
    items, positions = nn.Embedding(vocab, hidden, padding_idx=0), nn.Embedding(max_len, hidden)
    nn.init.normal_(items.weight, std=0.02)
    nn.init.normal_(positions.weight, std=0.02)
    with torch.no_grad():
        items.weight[0].zero_()
    return items, positions


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv, self.proj = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        drop = self.dropout if self.training else 0.0
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(b, t, h)))
        return x + self.drop(self.ffn(self.norm2(x)))


class Encoder(nn.Module):
    """Item + position embeddings, `blocks` Transformer blocks, final LayerNorm -> [B, T, hidden].

    Positions are counted from the right (the most recent item is always position max_len - 1), so an
    unpadded sequence and the same sequence left-padded to max_len get the same outputs.
    """

    def __init__(self, vocab: int, max_len: int, hidden: int, blocks: int, heads: int, dropout: float, causal: bool):
        super().__init__()
        self.max_len, self.causal = max_len, causal
        self.items, self.positions = item_and_position_embeddings(vocab, max_len, hidden)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(hidden, heads, dropout) for _ in range(blocks))
        self.norm = nn.LayerNorm(hidden)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        pos = torch.arange(self.max_len - t, self.max_len, device=ids.device)
        x = self.drop(self.items(ids) * self.items.embedding_dim**0.5 + self.positions(pos))
        mask = attention_mask(ids, self.causal)
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)
