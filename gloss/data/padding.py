"""Padding of id sequences into batch tensors, for the DataModules and the models alike.

- `left_pad_item_ids`: item-id histories (catalog index + 1, 0 = `PAD`) of the ID models, left-padded to a fixed
  length, so the most recent item is always in the last column; `trim_left_padding` drops the columns that are padding
  in every row.
- `left_pad_prompts`: token-id prompts left-padded to the longest, with their attention mask (generation and
  likelihood scoring: every prompt's last token is in the last column).
- `right_pad_examples`: (input ids, labels) training examples right-padded to the longest, padding masked out of
  attention and loss (label `IGNORE`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

PAD = 0  # the padding item id of the ID models (item ids are catalog index + 1)
IGNORE = -100  # the label of a token without loss (prompt tokens, padding): torch's cross-entropy ignore_index


def left_pad_item_ids(sequences: Sequence[np.ndarray], length: int) -> torch.Tensor:
    """[n, length] int64 ids (catalog index + 1) of each sequence's last `length` items, padded with PAD on the left."""
    out = torch.full((len(sequences), length), PAD, dtype=torch.long)
    for row, s in enumerate(sequences):
        tail = np.asarray(s[-length:] if length else s[:0], dtype=np.int64) + 1
        if len(tail):
            out[row, length - len(tail) :] = torch.from_numpy(tail)
    return out


def trim_left_padding(ids: torch.Tensor) -> torch.Tensor:
    """Drop the leading columns that are PAD in every row (models are padding-invariant, so this only saves work)."""
    real = (ids != PAD).any(dim=0)
    first = int(real.float().argmax()) if real.any() else ids.shape[1] - 1
    return ids[:, first:]


def left_pad_prompts(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) [n, longest]: each prompt's tokens at the right end, `pad_id` (mask 0) before them."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = torch.tensor(p)
        mask[row, width - len(p) :] = 1
    return ids, mask


def right_pad_examples(batch: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """A training batch of (input ids, labels) -> input_ids, attention_mask and labels [n, longest]: padding is
    `pad_id`, mask 0 and label IGNORE."""
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, lab) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(lab)] = torch.tensor(lab)
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
