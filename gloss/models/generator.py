"""GLoSS: a causal LM generates the next item's title (beam search), a retriever maps each generated
title to catalog items, and the hits are fused into one ranking.

- `GeneratorModule` (LightningModule): any Hugging Face causal LM — a 4-bit NF4 + LoRA LLaMA-3 (the paper) or
  the compact Llama trained from scratch on the dataset (the offline default). AdamW, linear schedule with
  warmup, completion-only loss; `generate` runs batched beam search.
- `GenerativeRecommender` (Recommender): builds the backbone, trains it with a Lightning Trainer
  (RankingEvalCallback logs val/ndcg@5 etc., checkpoints in run_dir/checkpoints, `ckpt_path=last` resumes),
  saves what generation needs in run_dir/generator, and ranks histories by generate -> retrieve -> fuse
  [-> `rerank`: the LM re-scores those hits plus the last item's neighbours by its likelihood of their titles].
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from gloss.data import GlossData
from gloss.data.prompt_datamodule import PromptDataModule, PromptEncoder, left_pad
from gloss.data.prompts import PromptTemplate
from gloss.training import fit_on_validation
from gloss.models.base import Ranking, Recommender, RunContext
from gloss.models.beam_search import beam_search
from gloss.models.rerank import rerank_scores
from gloss.retrieval import Retriever, fuse

log = logging.getLogger(__name__)


class GeneratorModule(L.LightningModule):
    def __init__(self, model, tokenizer, lr: float = 1e-4, weight_decay: float = 0.01, warmup_steps: int = 300,
                 generation: dict | None = None):
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.generation = {"num_beams": 5, "num_return_sequences": 5, "max_new_tokens": 50, "length_penalty": 1.0,
                           "batch_size": 32, "backend": "prefill_once", "contrast": 0.0, **(generation or {})}
        if self.generation["contrast"] and self.generation["backend"] != "prefill_once":
            raise ValueError("generation.contrast needs generation.backend=prefill_once (gloss.models.beam_search)")
        self.strict_loading = False  # LoRA checkpoints hold only the trainable (adapter) weights

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch).loss
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["input_ids"]))
        return loss

    def on_train_epoch_start(self) -> None:
        if hasattr(self.model, "start_epoch"):  # ItemAwareLlama's curriculum (text first, then item vectors)
            self.model.start_epoch(self.current_epoch)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("val/loss", self.model(**batch).loss, prog_bar=True, batch_size=len(batch["input_ids"]))

    def configure_optimizers(self):
        from transformers import get_linear_schedule_with_warmup

        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        sched = get_linear_schedule_with_warmup(opt, self.warmup_steps, max(self.trainer.estimated_stepping_batches, 1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """With frozen (e.g. 4-bit) base weights, checkpoint only what trains: the LoRA adapters."""
        trainable = {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}
        if len(trainable) < sum(1 for _ in self.model.parameters()):
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    @property
    def null_prompt(self) -> list[int]:
        """The history-free prompt of context-contrastive scores: BOS alone (EOS without one)."""
        tok = self.tokenizer
        return [tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id]

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], progress: bool = False) -> list[list[str]]:
        """Token-id prompts -> num_return_sequences decoded completions each (best first)."""
        g, tok, pad = self.generation, self.tokenizer, self.pad_id
        order = np.argsort([len(p) for p in prompts], kind="stable")  # similar lengths batch together
        out: list[list[str]] = [[] for _ in prompts]
        batches = range(0, len(prompts), g["batch_size"])
        for start in tqdm(batches, desc="generate", disable=not progress, mininterval=10):
            rows = order[start : start + g["batch_size"]]
            ids, mask = left_pad([prompts[r] for r in rows], pad)
            ids, mask = ids.to(self.device), mask.to(self.device)
            seqs = self._beam_search(ids, mask, pad)
            texts = tok.batch_decode(seqs.reshape(-1, seqs.shape[-1]).cpu(), skip_special_tokens=True)
            n_ret = g["num_return_sequences"]
            for i, r in enumerate(rows):
                out[r] = texts[i * n_ret : (i + 1) * n_ret]
        return out

    def _beam_search(self, ids: torch.Tensor, mask: torch.Tensor, pad: int) -> torch.Tensor:
        """[B, num_return_sequences, T] generated tokens (prompt excluded)."""
        g, eos = self.generation, self.tokenizer.eos_token_id
        if g["backend"] == "hf":  # transformers' generate (the paper's tooling); re-encodes the prompt per beam
            seqs = self.model.generate(input_ids=ids, attention_mask=mask, num_beams=g["num_beams"],
                                       num_return_sequences=g["num_return_sequences"], max_new_tokens=g["max_new_tokens"],
                                       length_penalty=g["length_penalty"], do_sample=False, eos_token_id=eos,
                                       pad_token_id=pad, use_cache=True)
            return seqs[:, ids.shape[1] :].reshape(ids.shape[0], g["num_return_sequences"], -1)
        seqs, _ = beam_search(self.model, ids, mask, g["num_beams"], g["max_new_tokens"], eos, pad, g["length_penalty"],
                              g["contrast"], self.null_prompt)
        return seqs[:, : g["num_return_sequences"]]


def plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


class GenerativeRecommender(Recommender):
    name = "gloss"
    uses_retriever = True

    def __init__(
        self,
        backbone: Callable[..., tuple[Any, Any]],
        retriever: Retriever,
        template: dict | None = None,
        max_seq_length: int = 1024,
        max_item_tokens: int | None = None,
        packed: bool = False,
        catalog_examples: bool = False,
        batch_size: int = 4,
        eval_batch_size: int = 16,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 300,
        trainer: dict | None = None,
        generation: dict | None = None,
        query_format: str = "Title: {title}",
        fusion: str = "top1_per_query",
        retrieval_depth: int = 20,
        val_max_users: int | None = 500,
        patience: int | None = None,
        exclude_seen: bool = False,
        rerank: dict | None = None,
        train: bool = True,
    ):
        self.backbone, self.retriever = backbone, retriever
        self.template = PromptTemplate(**(plain(template) or {}))
        self.max_seq_length, self.max_item_tokens = max_seq_length, max_item_tokens
        self.packed, self.catalog_examples = packed, catalog_examples
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.trainer_overrides = plain(trainer) or {}
        self.generation = plain(generation) or {}
        self.query_format, self.fusion, self.retrieval_depth = query_format, fusion, retrieval_depth
        self.val_max_users, self.patience, self.exclude_seen = val_max_users, patience, exclude_seen
        self.rerank = {"generated": 5, "neighbours": 10, "contrast": 0.5, "batch_size": 32, **plain(rerank)} if rerank else None
        self.train = train  # false: generation only, e.g. from a saved generator (model.backbone.pretrained=<run>/generator)
        self.module: GeneratorModule | None = None
        self.encoder: PromptEncoder | None = None
        self.fit_metrics: dict[str, float] = {}
        self.texts: list[str] = []
        self._neighbours: np.ndarray | None = None  # [n_items, depth]: every catalog item's nearest items (rerank)

    def build(self, data: GlossData, seed: int) -> None:
        model, tokenizer = self.backbone(data=data, seed=seed)
        self.module = GeneratorModule(model, tokenizer, self.lr, self.weight_decay, self.warmup_steps, self.generation)
        item_tokens = model.config.vocab_size if getattr(model.config, "num_items", 0) else None  # an ItemAwareLlama
        self.encoder = PromptEncoder(tokenizer, self.template, data.catalog.titles, self.max_seq_length, self.max_item_tokens,
                                     item_tokens)

    def fit(self, data: GlossData, ctx: RunContext) -> None:
        L.seed_everything(ctx.seed, workers=True)
        self.build(data, ctx.seed)
        self.index_catalog(data)
        if not self.train:
            self.module.eval()
            return
        datamodule = PromptDataModule(data, self.encoder, self.batch_size, self.eval_batch_size, self.packed,
                                      self.catalog_examples, ctx.seed)
        trainer = fit_on_validation(self.module, datamodule, self, data, ctx, self.trainer_overrides,
                                    self.val_max_users, self.patience, strict=False)  # LoRA ckpts: adapters only
        self.fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.save(Path(ctx.run_dir) / "generator")

    def index_catalog(self, data: GlossData) -> None:
        self.texts, self._neighbours = data.catalog.texts, None
        self.retriever.index(self.texts)

    def neighbours(self, depth: int) -> np.ndarray:
        """[n_items, depth] nearest catalog items of every item (its own title as the query, so the dense query
        embeddings are the cached catalog ones), searched once per index, not once per ranking call."""
        if self._neighbours is None or self._neighbours.shape[1] < depth:
            self._neighbours = self.retriever.search(self.texts, depth)[0]
        return self._neighbours[:, :depth]

    def save(self, folder: Path) -> None:
        """Everything generation needs: model (full weights, or PEFT adapter), tokenizer, prompt/generation settings."""
        self.module.model.save_pretrained(folder)
        self.module.tokenizer.save_pretrained(folder)
        settings = {"template": self.template.__dict__, "max_seq_length": self.max_seq_length,
                    "max_item_tokens": self.max_item_tokens, "generation": self.module.generation,
                    "query_format": self.query_format, "fusion": self.fusion, "rerank": self.rerank}
        (folder / "gloss_generation.json").write_text(json.dumps(settings, indent=2))

    def queries(self, histories: Sequence[np.ndarray], progress: bool = False) -> list[list[str]]:
        """Per history: the generated titles (beam order) as retrieval queries."""
        room = self.module.generation["max_new_tokens"]
        prompts = [self.encoder.prompt_ids(h, room=room) for h in histories]
        generated = self.module.generate(prompts, progress=progress)
        return [[self.query_format.format(title=self.template.title_of(t)) for t in row] for row in generated]

    def recommend(self, histories: Sequence[np.ndarray], k: int) -> Ranking:
        if self.module is None:
            raise RuntimeError("call fit() before recommend()")
        self.module.eval()
        progress = len(histories) > 2000
        queries = self.queries(histories, progress=progress)
        if self.rerank is None:
            return self.rank(queries, histories, k)
        generated = self.rank(queries, histories, max(k, self.rerank["generated"])).items[:, : self.rerank["generated"]]
        return self.rerank_pool(histories, self.candidate_pool(histories, generated), k, progress)

    def candidate_pool(self, histories: Sequence[np.ndarray], generated: np.ndarray) -> list[list[int]]:
        """Per user: the generated titles' hits (fused order), then the last item's nearest catalog neighbours
        (retrieved with its own title, the item itself left out) up to `rerank.neighbours` of them."""
        n = self.rerank["neighbours"]
        near = self.neighbours(n + 1) if n else None
        pools = []
        for u, h in enumerate(histories):
            banned = set(h.tolist()) if self.exclude_seen else set()
            pool = [int(i) for i in generated[u] if i >= 0 and i not in banned]
            if n and len(h):
                last = int(h[-1])
                pool += [int(i) for i in near[last] if i >= 0 and i != last and i not in banned][:n]
            pools.append(list(dict.fromkeys(pool)))
        return pools

    def rerank_pool(self, histories: Sequence[np.ndarray], pools: list[list[int]], k: int, progress: bool) -> Ranking:
        """Sort each pool by the LM's (contrasted) log-likelihood of the items' titles after the user's prompt."""
        enc = self.encoder
        room = self.max_item_tokens + 1 if self.max_item_tokens else self.max_seq_length // 2
        prompts = [enc.prompt_ids(h, room=room) for h in histories]
        scores = rerank_scores(self.module.model, prompts, pools, lambda i: enc.labels(enc.completion_ids(i)),
                               self.module.pad_id, self.module.null_prompt,
                               self.rerank["contrast"], self.rerank["batch_size"], progress)
        items = np.full((len(pools), k), -1, dtype=np.int64)
        best = np.zeros((len(pools), k), dtype=np.float32)
        for u, (pool, s) in enumerate(zip(pools, scores)):
            order = np.argsort(-s, kind="stable")[:k]
            items[u, : len(order)], best[u, : len(order)] = np.asarray(pool)[order], s[order]
        return Ranking(items, best)

    def rank(self, queries: list[list[str]], histories: Sequence[np.ndarray], k: int) -> Ranking:
        """Retrieve each query's top items and fuse them (top1_per_query = GLoSS: beam i's top-1 at rank i)."""
        q = max(len(row) for row in queries)
        flat = [row[i] if i < len(row) else "" for row in queries for i in range(q)]
        depth = min(k, self.retrieval_depth) if self.fusion == "top1_per_query" else self.retrieval_depth
        depth = max(depth, math.ceil(k / q))
        ids, scores = self.retriever.search_unique(flat, depth)
        ids, scores = ids.reshape(len(queries), q, depth), scores.reshape(len(queries), q, depth)
        items, fused = fuse(ids, scores, k, self.fusion, histories if self.exclude_seen else None)
        return Ranking(items, fused)
