"""`SequenceDataModule`: the split's sequences as left-padded item-id tensors for ID-based sequential models.

Item id = catalog index + 1; id 0 is padding. Each training row is the last `max_len + 1` items of one
user's training sequence (`Split.train_sequences()`, no val/test target inside), so a model sees every
prefix of it as a training target (sequence-to-sequence objective). Validation rows are the validation
users' histories followed by their validation target, for a next-item validation loss.

Training batches group rows of similar length (`LengthGroupedBatchSampler`): most Amazon sequences are far shorter
than max_len, so the models' `trim_left_padding` then removes most of each batch's padding (several times less work
per epoch).
"""
from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader, TensorDataset

from gloss.data.dataset import GlossData
from gloss.data.padding import PAD, left_pad_item_ids
from gloss.data.samplers import LengthGroupedBatchSampler, trainer_rank


class SequenceDataModule(L.LightningDataModule):
    def __init__(self, data: GlossData, max_len: int, batch_size: int, seed: int):
        super().__init__()
        self.data, self.max_len, self.batch_size, self.seed = data, max_len, batch_size, seed
        train = [s for s in data.split.train_sequences() if len(s) >= 2]  # one item = no target
        self.train_tokens = left_pad_item_ids(train, max_len + 1)
        val = data.split.val_examples()
        self.val_tokens = left_pad_item_ids([data.split.sequences[u][: c + 1] for u, c in val], max_len + 1)

    def train_dataloader(self) -> DataLoader:
        rank, world_size = trainer_rank(self)
        sampler = LengthGroupedBatchSampler((self.train_tokens != PAD).sum(1), self.batch_size, self.seed, group=50,
                                            rng="torch", rank=rank, world_size=world_size)
        return DataLoader(TensorDataset(self.train_tokens), batch_sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.val_tokens), batch_size=max(self.batch_size, 256))
