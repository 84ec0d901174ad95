"""Shared machinery of the ID-based sequential models (SASRec, BERT4Rec, GRU4Rec, BSARec).

An `IDSequentialRecommender` is both a `TrainableRecommender` (score the whole catalog from the last position) and
the LightningModule that gloss.training fits on a `SequenceDataModule` (conf/datamodule/sequence.yaml) with the
configured Trainer and callbacks. Its run folder keeps `model.ckpt` (hyper-parameters, catalog size, weights).
Subclasses define `build`, `training_loss` and `next_item_logits`; `catalog_loss` is their next-item loss over the
catalog: full softmax cross-entropy (loss=ce) or sampled softmax (loss=sampled: `negatives` items shared by the batch,
drawn uniformly or by training popularity with logQ correction), for catalogs where a [positions x items] logit
matrix per step is too slow or too big (docs/idmodels.md).
"""
from __future__ import annotations

import math
from abc import abstractmethod
from pathlib import Path
from typing import Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gloss.data import GlossData
from gloss.data.padding import left_pad_item_ids, trim_left_padding
from gloss.errors import GlossError
from gloss.models.base import ScoringRecommender, TrainableRecommender

WEIGHTS = "model.ckpt"
SAMPLERS = ("uniform", "popularity")
SPARSE_LOSSES = ("sampled", "bce")  # losses that touch only some items' rows per step (model.sparse_items)


class IDSequentialRecommender(ScoringRecommender, TrainableRecommender, L.LightningModule):
    losses: tuple[str, ...] = ("ce", "sampled")  # SASRec adds its original "bce"

    def __init__(self, max_len: int, lr: float, weight_decay: float, exclude_seen: bool, loss: str, negatives: int,
                 negative_sampling: str, sparse_items: bool):
        L.LightningModule.__init__(self)
        self.save_hyperparameters()  # this and the subclass's arguments, into every checkpoint
        if loss not in self.losses:
            raise GlossError(f"model.loss must be one of {', '.join(self.losses)}, got {loss!r}")
        if loss == "sampled" and (isinstance(negatives, bool) or not isinstance(negatives, int) or negatives < 1):
            raise GlossError(f"model.negatives must be an integer >= 1 with model.loss=sampled, got {negatives!r}")
        if negative_sampling not in SAMPLERS:
            raise GlossError(f"model.negative_sampling must be one of {', '.join(SAMPLERS)}, got {negative_sampling!r}")
        if sparse_items and loss not in SPARSE_LOSSES:
            raise GlossError(f"model.sparse_items=true needs model.loss=sampled (or bce), got {loss!r}: the full softmax "
                             "touches every item, so its gradient is dense")
        if sparse_items and weight_decay:
            raise GlossError(f"model.sparse_items=true updates the item table with SparseAdam, which has no weight decay; "
                             f"set model.weight_decay=0 (got {weight_decay})")
        self.max_len, self.lr, self.weight_decay, self.exclude_seen = max_len, lr, weight_decay, exclude_seen
        self.loss, self.negatives, self.negative_sampling = loss, negatives, negative_sampling
        self.sparse_items = bool(sparse_items)
        self.n_items = 0

    # --- what a model defines ---------------------------------------------------------------------
    @abstractmethod
    def build(self, n_items: int) -> None:
        """Create the layers for a catalog of `n_items` (ids 1..n_items, 0 = padding)."""

    @abstractmethod
    def training_loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Loss on a batch of left-padded training sequences [B, <= max_len + 1]."""

    def item_table(self) -> nn.Embedding:
        """The item embedding (row 0 = padding, rows 1..n_items = catalog), shared by inputs and output scores."""
        return self.encoder.items

    @abstractmethod
    def next_item_logits(self, history: torch.Tensor) -> torch.Tensor:
        """[B, n_items] scores (column j = catalog index j) of the next item after left-padded histories [B, <= max_len]."""

    # --- the next-item loss over the catalog -----------------------------------------------------------
    def catalog_loss(self, states: torch.Tensor, targets: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of `targets` ([N] catalog indices) from `states` [N, H] against output embeddings `items`
        [n_items, H]. loss=ce: over the whole catalog. loss=sampled: over the target and `negatives` items drawn
        once for the batch (one [N, negatives] matmul). A negative equal to the row's target is masked out, and each
        negative's logit gets -log(negatives * q(item)) (logQ correction): the sample's sum of exp(logits) is then an
        unbiased estimate of the rest of the catalog's, so the loss tends to loss=ce as negatives grow, and with the
        whole catalog as negatives it is loss=ce exactly."""
        if self.loss != "sampled":
            return F.cross_entropy(states @ items.T, targets)
        negatives, log_kq = self.sample_negatives(targets.device)
        if self.sparse_items:  # rows looked up through the (sparse) embedding: the gradient touches only these rows
            table = self.item_table()
            positive = (states * table(targets + 1)).sum(-1, keepdim=True)
            negative = states @ table(negatives + 1).T - log_kq
        else:
            positive = (states * items[targets]).sum(-1, keepdim=True)
            negative = states @ items[negatives].T - log_kq
        negative = negative.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
        return F.cross_entropy(torch.cat([positive, negative], dim=1), torch.zeros_like(targets))

    def sample_negatives(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(catalog indices [K], log(K * q(index)) [K]). `negatives` >= the catalog: every item once, no correction.
        Drawn with replacement from torch's global generator (seeded by the run's seed)."""
        n, k = self.n_items, self.negatives
        if k >= n:
            return torch.arange(n, device=device), torch.zeros(n, device=device)
        if self.negative_sampling == "uniform":
            return torch.randint(0, n, (k,), device=device), torch.full((k,), math.log(k / n), device=device)
        drawn = torch.multinomial(self.sampling_probs, k, replacement=True)
        return drawn, (k * self.sampling_probs[drawn]).log()

    def set_sampling_counts(self, counts: np.ndarray) -> None:
        """Popularity sampling's q: training interactions per item + 1 (every item can be drawn, log q is finite)."""
        q = torch.as_tensor(counts, dtype=torch.float32) + 1.0
        self.register_buffer("sampling_probs", q / q.sum(), persistent=False)  # not a weight: rebuilt from the data

    # --- Lightning ----------------------------------------------------------------------------------
    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(trim_left_padding(batch[0]))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        tokens = trim_left_padding(batch[0])
        loss = F.cross_entropy(self.next_item_logits(tokens[:, :-1]).float(), tokens[:, -1] - 1)
        self.log("val/loss", loss, prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if not self.sparse_items:
            return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        table = self.item_table().weight
        return SparseDenseAdam([p for p in self.parameters() if p is not table], [table], lr=self.lr,
                               weight_decay=self.weight_decay)

    # --- Recommender ----------------------------------------------------------------------------------
    def build_for(self, data: GlossData, seed: int, run_dir: Path | None = None) -> None:
        self.n_items = len(data.catalog)
        self.build(self.n_items)
        self.item_table().sparse = self.sparse_items
        if self.loss == "sampled" and self.negative_sampling == "popularity" and run_dir is None:
            self.set_sampling_counts(data.training_counts())
        if run_dir is None:
            return
        path = Path(run_dir) / WEIGHTS
        if not path.is_file():
            raise GlossError(f"{path}: no saved {self.name} weights in this run folder")
        try:  # a run folder is data: tensors and plain values only, never a pickled object
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise GlossError(f"{path}: not a gloss weights file of tensors and plain values ({type(e).__name__}); "
                             "refused") from e
        if saved["n_items"] != self.n_items:
            raise GlossError(f"{path}: weights for {saved['n_items']} items, but dataset {data.name} has {self.n_items}")
        self.load_state_dict(saved["state_dict"])

    @property
    def lightning_module(self) -> L.LightningModule:
        return self

    def datamodule_inputs(self) -> dict:
        """Training rows as long as the model's context (also when it is one of GLoSS+'s sources)."""
        return {"max_len": self.max_len}

    def save(self, run_dir: Path) -> None:
        state = {k: v.cpu() for k, v in self.state_dict().items()}
        torch.save({"hyper_parameters": dict(self.hparams), "n_items": self.n_items, "state_dict": state}, Path(run_dir) / WEIGHTS)

    @torch.no_grad()
    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        self.eval()
        history = trim_left_padding(left_pad_item_ids(histories, self.max_len)).to(self.device)
        return self.next_item_logits(history).float().cpu().numpy()


class SparseDenseAdam(torch.optim.Optimizer):
    """AdamW on the dense parameters and SparseAdam (lazy Adam: moments and weights of the rows a batch touched) on
    the item table, as one optimizer for Lightning (model.sparse_items). At 210k items the table's dense gradient and
    AdamW update cost more than the rest of a sampled-softmax step (docs/scale.md); this update touches a few thousand
    rows. Not the same optimizer as AdamW: rows not in a batch keep their moments unchanged (no decay) that step."""

    def __init__(self, dense: list[nn.Parameter], sparse: list[nn.Parameter], lr: float, weight_decay: float):
        self.dense = torch.optim.AdamW(dense, lr=lr, weight_decay=weight_decay)
        self.sparse = torch.optim.SparseAdam(sparse, lr=lr)
        self.defaults = self.dense.defaults
        self._optimizer_step_pre_hooks, self._optimizer_step_post_hooks = {}, {}
        self._optimizer_state_dict_pre_hooks, self._optimizer_state_dict_post_hooks = {}, {}
        self._optimizer_load_state_dict_pre_hooks, self._optimizer_load_state_dict_post_hooks = {}, {}

    @property
    def param_groups(self) -> list[dict]:  # the sub-optimizers' own dicts: an lr scheduler's edit reaches them
        return self.dense.param_groups + self.sparse.param_groups

    @property
    def state(self) -> dict:
        return {**self.dense.state, **self.sparse.state}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.dense.step()
        self.sparse.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.dense.zero_grad(set_to_none)
        self.sparse.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        return {"dense": self.dense.state_dict(), "sparse": self.sparse.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.dense.load_state_dict(state_dict["dense"])
        self.sparse.load_state_dict(state_dict["sparse"])
