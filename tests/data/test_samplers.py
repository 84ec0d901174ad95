"""The length-grouped batch sampler reproduces, bit for bit, the batches both DataModules drew before they shared it.

The digests below were recorded from the two samplers the DataModules used before (SequenceDataModule's torch-drawn
`LengthBucketSampler`, 50-batch pools; PromptDataModule's numpy-drawn `_GroupedSampler`, 64-batch groups): every
batch, in order, for several seeds, epochs and DDP ranks. A change to either batch order fails here."""
from __future__ import annotations

import hashlib
import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gloss.data import Catalog, GlossData, split_leave_one_out
from gloss.data.prompt_datamodule import PromptDataModule, PromptEncoder
from gloss.data.prompts import PromptTemplate
from gloss.data.samplers import LengthGroupedBatchSampler
from gloss.data.sequence_datamodule import SequenceDataModule
from gloss.models.scratch_lm import title_tokenizer

SEEDS, EPOCHS, RANKS = (0, 42), (0, 1, 3), ((0, 1), (0, 2), (1, 2), (2, 3))  # (rank, world size)

# (DataModule, rows, batch size) -> digest of every batch over SEEDS x EPOCHS x RANKS
SAMPLER_DIGESTS = {
    ("sequence", 203, 8): "d5715f2b4b4e0cdc",
    ("sequence", 1000, 32): "21692caa1a6aac96",
    ("sequence", 5000, 8): "aa90d0102a20ae11",
    ("prompt", 203, 8): "54332cb93ee35a8a",
    ("prompt", 1000, 32): "cc9ac444c7408580",
    ("prompt", 5000, 8): "87be7d6afa4c9aab",
}
# the DataModules' own train_dataloader() batches over SEEDS x EPOCHS x RANKS (rank from the attached Trainer)
DATAMODULE_DIGESTS = {"sequence": "618fae7a6a9e0913", "prompt": "0a62468477497519"}


def sampler(kind: str, lengths: np.ndarray, batch_size: int, seed: int, rank: int, world_size: int):
    """The sampler as each DataModule configures it."""
    if kind == "sequence":
        return LengthGroupedBatchSampler(lengths, batch_size, seed, group=50, rng="torch", rank=rank, world_size=world_size)
    return LengthGroupedBatchSampler(lengths, batch_size, seed, group=64, rng="numpy", rank=rank, world_size=world_size)


def digest(make_batches) -> str:
    """make_batches(seed, epoch, rank, world_size) -> that epoch's batches (lists of row indices)."""
    h = hashlib.sha256()
    for seed, epoch, (rank, world_size) in itertools.product(SEEDS, EPOCHS, RANKS):
        h.update(json.dumps([[int(i) for i in b] for b in make_batches(seed, epoch, rank, world_size)]).encode())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("kind,n,batch_size", list(SAMPLER_DIGESTS))
def test_sampler_reproduces_each_datamodules_batches(kind, n, batch_size):
    lengths = np.random.default_rng(n).integers(1, 60, n)

    def batches(seed, epoch, rank, world_size):
        s = sampler(kind, lengths, batch_size, seed, rank, world_size)
        s.set_epoch(epoch)
        out = list(s)
        assert len(out) == len(s)
        return out

    assert digest(batches) == SAMPLER_DIGESTS[kind, n, batch_size]


def varied_data(n_users: int = 300, n_items: int = 50) -> GlossData:
    """Sequences of 3 to 30 items, so that rows have many different lengths."""
    rng = np.random.default_rng(0)
    sequences = [rng.integers(0, n_items, int(rng.integers(3, 31))).astype(np.int64) for _ in range(n_users)]
    catalog = Catalog([f"i{i}" for i in range(n_items)], [f"item {i} {'x' * (i % 7)}" for i in range(n_items)])
    return GlossData("varied", catalog, split_leave_one_out([f"u{u}" for u in range(n_users)], sequences, 0.1, 1), (5, 20))


def datamodule_batches(make_datamodule):
    def batches(seed, epoch, rank, world_size):
        dm = make_datamodule(seed)
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=world_size)
        loader_sampler = dm.train_dataloader().batch_sampler
        loader_sampler.set_epoch(epoch)
        return list(loader_sampler)

    return batches


def test_sequence_datamodule_batches_are_unchanged():
    data = varied_data()
    make = lambda seed: SequenceDataModule(data, max_len=20, batch_size=16, seed=seed)  # noqa: E731
    assert digest(datamodule_batches(make)) == DATAMODULE_DIGESTS["sequence"]


def test_prompt_datamodule_batches_are_unchanged(tmp_path):
    data = varied_data()
    tokenizer = title_tokenizer(data.catalog.titles, 300, tmp_path)
    template = PromptTemplate(instruction="", history_header="", item_format="{title}", item_separator="{eos}",
                              next_header="{eos}")
    encoder = PromptEncoder(tokenizer, template, data.catalog.titles, max_seq_length=64)

    def make(seed):
        dm = PromptDataModule(data, encoder, batch_size=4, eval_batch_size=8, packed=True, catalog_examples=True,
                              padding_free=False, seed=seed)
        dm.setup("fit")
        return dm

    assert digest(datamodule_batches(make)) == DATAMODULE_DIGESTS["prompt"]


def test_lengths_may_be_a_tensor_or_an_array():
    lengths = np.random.default_rng(0).integers(1, 40, 100)
    for rng in ("torch", "numpy"):
        a = list(LengthGroupedBatchSampler(lengths, 8, 0, group=4, rng=rng))
        b = list(LengthGroupedBatchSampler(torch.from_numpy(lengths), 8, 0, group=4, rng=rng))
        assert a == b and all(isinstance(i, int) for batch in a for i in batch)
