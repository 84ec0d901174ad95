"""Training batches for the DataModules: length-grouped random batches, a function of (seed, epoch), shared out
between DDP ranks.

An epoch's batches depend on (seed, epoch) alone: Lightning calls `set_epoch` with its (0-based) epoch before every
training epoch (as for torch's DistributedSampler), so a resumed run sees the uninterrupted run's batches. Under DDP
every rank draws the same batch list and takes its share (`rank_share`; trainer.use_distributed_sampler=false).
"""
from __future__ import annotations

from typing import Callable, Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import Sampler

RNGS = ("torch", "numpy")


def epoch_seed(seed: int, epoch: int) -> int:
    """A 32-bit seed for epoch `epoch` of a run seeded `seed`: a function of (seed, epoch) alone, so a resumed run's
    epoch draws what the uninterrupted run's did; different (seed, epoch) pairs give independent streams."""
    return int(np.random.SeedSequence((seed, epoch)).generate_state(1)[0])


def rank_share(batches: list, rank: int, world_size: int) -> list:
    """Rank `rank`'s batches of an epoch's batch list (the same list on every rank: same seed): every world_size-th,
    the same number on every rank (DDP steps in lockstep; the remainder is left out of this epoch)."""
    per_rank = len(batches) // world_size
    return batches[rank::world_size][:per_rank]


def trainer_rank(datamodule: L.LightningDataModule) -> tuple[int, int]:
    """(global rank, world size) of the Trainer the DataModule is attached to; (0, 1) outside one."""
    trainer = datamodule.trainer
    return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Random batches of rows of similar length: the rows are shuffled, sorted by length within consecutive groups of
    `group` batches, cut into batches, and the batches shuffled. Little padding per batch, still a random order.

    `rng` is the generator that draws an epoch's two permutations (rows, then batches): "torch" (a torch.Generator
    seeded with epoch_seed(seed, epoch)) or "numpy" (np.random.default_rng((seed, epoch + 1))). The two give different,
    equally random orders; each DataModule keeps the one its runs were drawn with, so they stay reproducible."""

    def __init__(self, lengths: np.ndarray | torch.Tensor, batch_size: int, seed: int, group: int, rng: str,
                 rank: int = 0, world_size: int = 1):
        if rng not in RNGS:
            raise ValueError(f"rng must be one of {RNGS}, got {rng!r}")
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.group, self.rng = batch_size, seed, group, rng
        self.rank, self.world_size, self.epoch = rank, world_size, 0
        self.sampler = self  # Lightning calls set_epoch on a DataLoader's sampler and batch_sampler.sampler only

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def permutation(self) -> Callable[[int], np.ndarray]:
        """This epoch's stream of random permutations: each call draws the next one."""
        if self.rng == "torch":
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            return lambda n: torch.randperm(n, generator=generator).numpy()
        return np.random.default_rng((self.seed, self.epoch + 1)).permutation

    def batches(self) -> list[list[int]]:
        """The epoch's batches, before the DDP ranks take their shares."""
        permutation = self.permutation()
        order, size = permutation(len(self.lengths)), self.batch_size * self.group
        batches = []
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        return [batches[i] for i in permutation(len(batches))]

    def __iter__(self) -> Iterator[list[int]]:
        # a generator: the batches are drawn at the first next(), after set_epoch (Lightning creates a fit's first
        # iterator before it calls set_epoch for that epoch, which is not epoch 0 when resuming)
        yield from rank_share(self.batches(), self.rank, self.world_size)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size) // self.world_size
