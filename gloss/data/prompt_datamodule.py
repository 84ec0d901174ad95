"""Tokenized prompt/completion examples for causal-LM generators, and their LightningDataModule.

Loss is on the completion only (the next item's text + EOS); prompt tokens are labelled -100. Prompts are
truncated from the LEFT to `max_seq_length`, so the most recent items are the ones kept.

Two layouts:
- one example per (history, target) pair of `data.split.examples('train')` (the paper: one per user;
  every prefix with dataset.all_prefixes=true);
- packed (`packed=true`, templates whose items are EOS-separated, see PromptTemplate.packs): one sequence per
  user's training items, loss on every item after the first = every prefix in one forward pass, without
  repeating the history for each target.

Either layout is batched padded (one row per example, right padding) or, with `padding_free=true`, flattened: a
batch's examples concatenated into one row whose position ids restart at 0 for each example and no attention mask, so
transformers' SDPA / flash-attention kernels attend within each example only (a block-diagonal causal mask; the
model is called with use_cache=False, as GeneratorModule does, since transformers reads the boundaries only without
a cache) and no token is padding. Each example's first label is IGNORE (its logit would be predicted from the previous example), which
the padded layout never scores either: loss and gradients equal the padded batch's.
"""
from __future__ import annotations

import logging
from typing import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from gloss.data import GlossData
from gloss.data.padding import IGNORE, right_pad_examples
from gloss.data.prompts import PromptTemplate
from gloss.data.samplers import LengthGroupedBatchSampler, trainer_rank

log = logging.getLogger(__name__)


class PromptEncoder:
    """Histories (catalog indices) -> token ids for prompts and training examples."""

    def __init__(self, tokenizer, template: PromptTemplate, titles: Sequence[str], max_seq_length: int,
                 max_item_tokens: int | None = None, item_token_offset: int | None = None):
        """`item_token_offset`: close item i with the item token offset + i instead of EOS (an ItemAwareLlama's input;
        labels keep EOS). Needs the EOS-separated template."""
        if item_token_offset is not None and not template.packs():
            raise ValueError("item tokens need the EOS-separated template (PromptTemplate.packs())")
        self.tokenizer, self.template, self.titles = tokenizer, template, list(titles)
        self.max_seq_length, self.max_item_tokens = max_seq_length, max_item_tokens
        self.item_token_offset = item_token_offset
        self.eos_id: int = tokenizer.eos_token_id
        self._item_ids: list[list[int]] | None = None

    @property
    def item_ids(self) -> list[list[int]]:
        """Per catalog item: tokens of `template.item(title)` (capped at max_item_tokens) + EOS (or its item token)."""
        if self._item_ids is None:
            texts = [self.template.item(t) for t in self.titles]
            enc = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            cap, offset = self.max_item_tokens or None, self.item_token_offset
            self._item_ids = [ids[:cap] + [self.eos_id if offset is None else offset + i] for i, ids in enumerate(enc)]
        return self._item_ids

    def labels(self, ids: Sequence[int]) -> list[int]:
        """Training targets for `ids`: item tokens are predicted as the EOS they stand for."""
        if self.item_token_offset is None:
            return list(ids)
        return [self.eos_id if t >= self.item_token_offset else t for t in ids]

    def bos(self) -> list[int]:
        bos = self.tokenizer.bos_token_id
        return [] if bos is None else [bos]

    def prompt_ids(self, history: Sequence[int], room: int = 0) -> list[int]:
        """Token ids of the prompt, left-truncated so that `room` tokens still fit in max_seq_length."""
        if self.template.packs():
            keep = history[-self.template.max_history_items :] if self.template.max_history_items else history
            ids = self.bos() + [t for i in keep for t in self.item_ids[i]]
        else:
            text = self.template.prompt([self.titles[i] for i in history], eos=self.tokenizer.eos_token or "")
            ids = self.tokenizer(text)["input_ids"]
        budget = max(self.max_seq_length - room, 1)
        return ids[len(ids) - budget :] if len(ids) > budget else ids

    def completion_ids(self, target: int) -> list[int]:
        if self.template.packs():
            return list(self.item_ids[target])
        ids = self.tokenizer(self.template.completion(self.titles[target]), add_special_tokens=False)["input_ids"]
        return ids[: self.max_seq_length // 2] + [self.eos_id]

    def example(self, history: Sequence[int], target: int) -> tuple[list[int], list[int]]:
        """(input ids, labels): prompt labelled IGNORE, completion + EOS labelled with itself."""
        completion = self.completion_ids(target)
        prompt = self.prompt_ids(history, room=len(completion))
        return prompt + completion, [IGNORE] * len(prompt) + self.labels(completion)

    def packed(self, sequence: Sequence[int]) -> list[tuple[list[int], list[int]]]:
        """One user's items as item-aligned chunks of <= max_seq_length tokens; each chunk's first item is context
        only (it has no history in the chunk), later items are targets. Chunks overlap by one item."""
        chunks, start = [], 0
        while start < len(sequence) - 1:
            ids, labels, end = self.bos(), [IGNORE] * len(self.bos()), start
            while end < len(sequence):
                item = self.item_ids[sequence[end]]
                if end > start and len(ids) + len(item) > self.max_seq_length:
                    break
                ids += item
                labels += [IGNORE] * len(item) if end == start else self.labels(item)
                end += 1
            if end - start >= 2:
                chunks.append((ids[: self.max_seq_length], labels[: self.max_seq_length]))
            start = max(end - 1, start + 1)
        return chunks


def flatten_examples(batch: Sequence[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    """(input ids, labels) examples -> one padding-free row [1, total tokens]: input_ids, labels (each example's
    first one IGNORE) and position_ids restarting at 0 per example (transformers reads the example boundaries from
    them)."""
    ids = [t for example, _ in batch for t in example]
    labels = [t for _, lab in batch for t in [IGNORE] + list(lab[1:])]
    positions = [p for example, _ in batch for p in range(len(example))]
    return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]), "position_ids": torch.tensor([positions])}


def examples_in(batch: dict[str, torch.Tensor]) -> int:
    """How many examples a padded or flattened batch holds."""
    return int(batch["position_ids"].eq(0).sum()) if "position_ids" in batch else len(batch["input_ids"])


class PromptDataModule(L.LightningDataModule):
    def __init__(self, data: GlossData, encoder: PromptEncoder, batch_size: int, eval_batch_size: int, packed: bool,
                 catalog_examples: bool, padding_free: bool, seed: int):
        super().__init__()
        if packed and not encoder.template.packs():
            raise ValueError("packed=true needs a template whose items are EOS-separated (PromptTemplate.packs())")
        self.data, self.encoder, self.batch_size, self.eval_batch_size = data, encoder, batch_size, eval_batch_size
        self.packed, self.catalog_examples, self.padding_free, self.seed = packed, catalog_examples, padding_free, seed
        self.train: list[tuple[list[int], list[int]]] = []
        self.val: list[tuple[list[int], list[int]]] = []

    def train_examples(self) -> list[tuple[list[int], list[int]]]:
        split = self.data.split
        if self.packed:
            out = [chunk for seq in split.train_sequences() for chunk in self.encoder.packed(seq)]
        else:
            ex = split.examples("train")
            out = [self.encoder.example(h, t) for h, t in zip(split.histories(ex), split.targets(ex))]
        if self.catalog_examples:  # every title once per epoch: the model learns to spell the whole catalog
            bos = self.encoder.bos()
            out += [(bos + ids, [IGNORE] * len(bos) + self.encoder.labels(ids)) for ids in self.encoder.item_ids]
        return out

    def setup(self, stage: str | None = None) -> None:
        if not self.train:
            self.train = self.train_examples()
            ex = self.data.split.examples("val")
            self.val = [self.encoder.example(h, t) for h, t in zip(self.data.split.histories(ex), self.data.split.targets(ex))]
            n_tok = sum(len(ids) for ids, _ in self.train)
            log.info("prompt data: %d train sequences (%d tokens), %d val examples", len(self.train), n_tok, len(self.val))

    def _collate(self, batch):
        if self.padding_free:
            return flatten_examples(batch)
        pad = self.encoder.tokenizer.pad_token_id
        return right_pad_examples(batch, self.encoder.eos_id if pad is None else pad)

    def train_dataloader(self) -> DataLoader:
        rank, world_size = trainer_rank(self)
        sampler = LengthGroupedBatchSampler(np.array([len(ids) for ids, _ in self.train]), self.batch_size, self.seed,
                                            group=64, rng="numpy", rank=rank, world_size=world_size)
        return DataLoader(self.train, batch_sampler=sampler, collate_fn=self._collate)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=self.eval_batch_size, shuffle=False, collate_fn=self._collate)
