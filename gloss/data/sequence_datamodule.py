"""`SequenceDataModule`: the split's sequences as left-padded item-id tensors for ID-based sequential models.

Item id = catalog index + 1; id 0 is padding. Each training row is the last `max_len + 1` items of one
user's training sequence (`Split.train_sequences()`, no val/test target inside), so a model sees every
prefix of it as a training target (sequence-to-sequence objective). Validation rows are the validation
users' histories followed by their validation target, for a next-item validation loss.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from gloss.data.dataset import GlossData

PAD = 0


def left_pad(sequences: Sequence[np.ndarray], length: int) -> torch.Tensor:
    """[n, length] int64 ids (catalog index + 1) of each sequence's last `length` items, padded with 0 on the left."""
    out = torch.zeros(len(sequences), length, dtype=torch.long)
    for row, s in enumerate(sequences):
        tail = np.asarray(s[-length:] if length else s[:0], dtype=np.int64) + 1
        if len(tail):
            out[row, length - len(tail) :] = torch.from_numpy(tail)
    return out


def trim_padding(ids: torch.Tensor) -> torch.Tensor:
    """Drop the leading columns that are padding in every row (models are padding-invariant, so this only saves work)."""
    real = (ids != PAD).any(dim=0)
    first = int(real.float().argmax()) if real.any() else ids.shape[1] - 1
    return ids[:, first:]


def rank_share(batches: list, rank: int, world_size: int) -> list:
    """Rank `rank`'s batches of an epoch's batch list (the same list on every rank: same seed): every world_size-th,
    the same number on every rank (DDP steps in lockstep; the remainder is left out of this epoch)."""
    per_rank = len(batches) // world_size
    return batches[rank::world_size][:per_rank]


def epoch_seed(seed: int, epoch: int) -> int:
    """A 32-bit seed for epoch `epoch` of a run seeded `seed`: a function of (seed, epoch) alone, so a resumed run's
    epoch draws what the uninterrupted run's did; different (seed, epoch) pairs give independent streams."""
    return int(np.random.SeedSequence((seed, epoch)).generate_state(1)[0])


def trainer_rank(datamodule: L.LightningDataModule) -> tuple[int, int]:
    """(global rank, world size) of the Trainer the DataModule is attached to; (0, 1) outside one."""
    trainer = datamodule.trainer
    return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)


class LengthBucketSampler(Sampler[list[int]]):
    """Random batches of similar-length rows: most Amazon sequences are far shorter than max_len, so
    `trim_padding` then removes most of each batch's padding (several times less work per epoch). Under DDP each
    rank takes its share of the same shuffled batch list (trainer.use_distributed_sampler=false).

    An epoch's batches are a function of (seed, epoch): Lightning calls `set_epoch` with its epoch before every
    training epoch (as for torch's DistributedSampler), so a resumed run sees the uninterrupted run's batches."""

    def __init__(self, lengths: torch.Tensor, batch_size: int, seed: int, pool: int = 50, rank: int = 0, world_size: int = 1):
        self.lengths, self.batch_size, self.pool = lengths, batch_size, pool
        self.rank, self.world_size = rank, world_size
        self.seed, self.epoch = seed, 0
        self.sampler = self  # Lightning calls set_epoch on a DataLoader's sampler and batch_sampler.sampler only

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        order = torch.randperm(len(self.lengths), generator=generator)
        out = []
        for chunk in order.split(self.batch_size * self.pool):  # sort within random pools of `pool` batches
            out.extend(chunk[self.lengths[chunk].argsort(stable=True)].split(self.batch_size))
        return [out[i] for i in torch.randperm(len(out), generator=generator)]

    def __iter__(self) -> Iterator[list[int]]:
        # a generator: the batches are drawn at the first next(), after set_epoch (Lightning creates a fit's first
        # iterator before it calls set_epoch for that epoch, which is not epoch 0 when resuming)
        for batch in rank_share(self.batches(), self.rank, self.world_size):
            yield batch.tolist()

    def __len__(self) -> int:
        n, pool = len(self.lengths), self.batch_size * self.pool
        return sum(-(-min(pool, n - start) // self.batch_size) for start in range(0, n, pool)) // self.world_size


class SequenceDataModule(L.LightningDataModule):
    def __init__(self, data: GlossData, max_len: int = 50, batch_size: int = 128, seed: int = 42):
        super().__init__()
        self.data, self.max_len, self.batch_size, self.seed = data, max_len, batch_size, seed
        train = [s for s in data.split.train_sequences() if len(s) >= 2]  # one item = no target
        self.train_tokens = left_pad(train, max_len + 1)
        val = data.split.val_examples()
        self.val_tokens = left_pad([data.split.sequences[u][: c + 1] for u, c in val], max_len + 1)

    def train_dataloader(self) -> DataLoader:
        sampler = LengthBucketSampler((self.train_tokens != PAD).sum(1), self.batch_size, self.seed, 50, *trainer_rank(self))
        return DataLoader(TensorDataset(self.train_tokens), batch_sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.val_tokens), batch_size=max(self.batch_size, 256))
