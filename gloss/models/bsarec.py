"""BSARec (Shin et al., AAAI 2024): "An Attentive Inductive Bias for Sequential Recommendation beyond the Self-Attention".

Each block mixes two branches over the sequence states X [B, T, H]:
- "beyond self-attention" (dsp), in the frequency domain: a low-pass filter LPF(X) keeps the lowest `c` frequency bins
  of an FFT along the time axis (rfft/irfft, norm="ortho"); HPF(X) = X - LPF(X); dsp = LPF(X) + beta * HPF(X) with a
  learnable per-channel beta [1, 1, H]; then dropout, residual, LayerNorm (post-LN, as in FMLP-Rec and the paper).
- causal multi-head self-attention, with the same dropout + residual + LayerNorm.
The block output is alpha * dsp + (1 - alpha) * attention, followed by a position-wise FFN (4H, GELU) with dropout,
residual and LayerNorm. Scores are dot products with the (tied) item embeddings; the loss is full-catalog softmax
cross-entropy at every real position, as SASRec's loss=ce (or sampled softmax, loss=sampled: id_base.catalog_loss).

Causality and padding. The paper's filter is an FFT over the whole (left-padded, length max_len) sequence, and its
code trains on the last position only (every prefix being a separate training sequence). Here every position is a
training target, so a whole-sequence FFT would let position t see items t+1.. -- its own target. Instead the
filter at position t is the paper's filter applied to the prefix x_0..x_t alone, left-padded to max_len with padding
states zeroed, read at that prefix's last slot. The FFT filter is a circular convolution, so this is a causal
convolution with a fixed kernel a(d) = LPF(unit impulse)[d], d = 0..max_len-1 (computed once with rfft/irfft):
LPF(X)_t = sum_{s <= t} a(t - s) x_s. Consequences:
- no position sees a later item (tested), so per-position CE has no leak, and the last position is exactly the
  paper's filter on the history padded to max_len (tested);
- padded states are zeroed before the filter, so they contribute nothing, and the FFT length is always max_len
  whatever the batch's width: outputs do not depend on how much left padding a sequence or its batch has (tested).
  This is the same as padding every history to max_len inside the model, without paying for the padding, so
  `trim_left_padding` still shortens batches.

`c` is the number of rfft bins kept (bin 0 = the mean); a sequence of max_len has max_len // 2 + 1 bins, and c at
or above that makes LPF the identity. (The authors' code keeps c // 2 + 1 bins for its `c`.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gloss.models.id_base import IDSequentialRecommender
from gloss.models.transformer import attention_mask, item_and_position_embeddings


def low_pass(x: torch.Tensor, c: int) -> torch.Tensor:
    """The paper's low-pass filter of [B, T, H] along time: the lowest `c` rfft bins kept (norm="ortho"), back to length T."""
    spectrum = torch.fft.rfft(x, dim=1, norm="ortho")
    keep = torch.arange(spectrum.shape[1], device=x.device) < c
    return torch.fft.irfft(spectrum * keep[None, :, None], n=x.shape[1], dim=1, norm="ortho")


def causal_low_pass_matrix(max_len: int, c: int) -> torch.Tensor:
    """[max_len, max_len] lower-triangular K with (K @ X)_t = the low-pass filter of the prefix X_0..X_t left-padded
    with zeros to max_len, at its last slot. K[t, s] = a(t - s) for s <= t, a = low_pass(unit impulse at slot 0)."""
    impulse = torch.zeros(1, max_len, 1, dtype=torch.float64)
    impulse[0, 0, 0] = 1.0
    a = low_pass(impulse, c)[0, :, 0]  # circular: the filter's output at i from an input at j is a((i - j) mod max_len)
    lag = torch.arange(max_len)[:, None] - torch.arange(max_len)[None, :]
    return torch.where(lag >= 0, a[lag.clamp(min=0)], 0.0).float()


class BSARecBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float, attention_dropout: float, c: int, alpha: float, max_len: int):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"model.hidden ({hidden}) must be a multiple of model.heads ({heads})")
        self.heads, self.attention_dropout, self.alpha = heads, attention_dropout, alpha
        self.register_buffer("lpf", causal_low_pass_matrix(max_len, c), persistent=False)  # a function of (max_len, c)
        # beta starts at 1 (not the paper code's random normal, squared): the dsp branch then starts as the identity,
        # every channel the same, and training moves each channel's high-frequency gain away from 1 where it helps. A
        # random init would begin with arbitrary per-channel gains (some near 0, i.e. pure low-pass) for no reason the
        # paper gives, and makes the initial network depend on one more random draw.
        self.beta = nn.Parameter(torch.ones(1, 1, hidden))
        self.qkv, self.proj = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * hidden, hidden))
        self.norm_dsp, self.norm_att, self.norm_ffn = nn.LayerNorm(hidden), nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)

    def frequency_mix(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """LPF(X) + beta * HPF(X) per position, causal (module docstring); padded positions ([B, T] real = False) are
        zeroed first and come out zero."""
        x = x * real[..., None]
        t = x.shape[1]
        lpf = self.lpf[-t:, -t:] @ x  # Toeplitz: any diagonal block is the same; the last one keeps the code obvious
        return lpf + self.beta * (x - lpf)

    def attention(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        drop = self.attention_dropout if self.training else 0.0
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        return self.proj(att.transpose(1, 2).reshape(b, t, h))

    def forward(self, x: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        dsp = self.norm_dsp(x + self.drop(self.frequency_mix(x, real)))
        att = self.norm_att(x + self.drop(self.attention(x, mask)))
        mixed = self.alpha * dsp + (1 - self.alpha) * att
        return self.norm_ffn(mixed + self.drop(self.ffn(mixed)))


class BSARecEncoder(nn.Module):
    """Item + position embeddings (LayerNorm, dropout), then `blocks` BSARec blocks -> [B, T, hidden]. Positions are
    counted from the right (the most recent item is position max_len - 1), as in gloss.models.transformer.Encoder."""

    def __init__(self, vocab: int, max_len: int, hidden: int, blocks: int, heads: int, dropout: float,
                 attention_dropout: float, c: int, alpha: float):
        super().__init__()
        self.max_len = max_len
        self.items, self.positions = item_and_position_embeddings(vocab, max_len, hidden)
        self.norm, self.drop = nn.LayerNorm(hidden), nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            BSARecBlock(hidden, heads, dropout, attention_dropout, c, alpha, max_len) for _ in range(blocks)
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        if t > self.max_len:
            raise ValueError(f"sequences of {t} items, but model.max_len is {self.max_len}")
        pos = torch.arange(self.max_len - t, self.max_len, device=ids.device)
        x = self.drop(self.norm(self.items(ids) + self.positions(pos)))
        real, mask = ids != 0, attention_mask(ids, causal=True)
        for block in self.blocks:
            x = block(x, real, mask)
        return x


class BSARec(IDSequentialRecommender):
    name = "bsarec"

    def __init__(self, hidden: int, blocks: int, heads: int, dropout: float, attention_dropout: float, c: int,
                 alpha: float, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"model.alpha must be in [0, 1], got {alpha}")
        if c < 1:
            raise ValueError(f"model.c (frequency bins kept) must be >= 1, got {c}")
        self.hidden, self.blocks, self.heads, self.dropout = hidden, blocks, heads, dropout
        self.attention_dropout, self.c, self.alpha = attention_dropout, c, alpha

    def build(self, n_items: int) -> None:
        self.encoder = BSARecEncoder(n_items + 1, self.max_len, self.hidden, self.blocks, self.heads, self.dropout,
                                     self.attention_dropout, self.c, self.alpha)

    def training_loss(self, tokens: torch.Tensor) -> torch.Tensor:
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        real = (inputs != 0) & (targets != 0)
        states = self.encoder(inputs)[real]
        return self.catalog_loss(states, targets[real] - 1, self.encoder.items.weight[1:])

    def next_item_logits(self, history: torch.Tensor) -> torch.Tensor:
        return self.encoder(history)[:, -1] @ self.encoder.items.weight[1:].T
