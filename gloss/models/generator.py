"""GLoSS: a causal LM generates the next item's title (beam search), a retriever maps each generated
title to catalog items, and the hits are fused into one ranking.

- `GeneratorModule` (LightningModule): any Hugging Face causal LM — a 4-bit NF4 + LoRA LLaMA-3 (the paper) or
  the compact Llama trained from scratch on the dataset (the offline default). AdamW, linear schedule with
  warmup, completion-only loss; `generate` runs batched beam search.
- `GenerativeRecommender` (TrainableRecommender): builds the backbone (trained by gloss.training on a
  PromptDataModule), saves what generation needs in run_dir/generator (read back by eval.py / predict.py), and
  ranks histories by generate -> retrieve -> fuse
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

from gloss.data import GlossData
from gloss.data.prompt_datamodule import PromptEncoder, left_pad
from gloss.data.prompts import PromptTemplate
from gloss.errors import GlossError
from gloss.models.base import Ranking, TrainableRecommender
from gloss.models.beam_search import beam_search
from gloss.models.rerank import rerank_scores
from gloss.progress import Progress
from gloss.retrieval import Retriever, fuse

log = logging.getLogger(__name__)
GENERATOR_DIR, SETTINGS = "generator", "gloss_generation.json"  # in a run folder


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
    def generate(self, prompts: list[list[int]]) -> list[list[str]]:
        """Token-id prompts -> num_return_sequences decoded completions each (best first); a long loop reports its
        progress to the log (gloss.progress)."""

        g, tok, pad = self.generation, self.tokenizer, self.pad_id
        order = np.argsort([len(p) for p in prompts], kind="stable")  # similar lengths batch together
        out: list[list[str]] = [[] for _ in prompts]
        batches = range(0, len(prompts), g["batch_size"])
        with Progress(len(prompts), "generate") as report:
            for start in batches:
                rows = order[start : start + g["batch_size"]]
                ids, mask = left_pad([prompts[r] for r in rows], pad)
                ids, mask = ids.to(self.device), mask.to(self.device)
                seqs = self._beam_search(ids, mask, pad)
                texts = tok.batch_decode(seqs.reshape(-1, seqs.shape[-1]).cpu(), skip_special_tokens=True)
                n_ret = g["num_return_sequences"]
                for i, r in enumerate(rows):
                    out[r] = texts[i * n_ret : (i + 1) * n_ret]
                report.update(len(rows))
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


class GenerativeRecommender(TrainableRecommender):
    name = "gloss"
    uses_retriever = True

    def __init__(
        self,
        backbone: Callable[..., tuple[Any, Any]],
        retriever: Retriever,
        *,
        template: dict | None,
        max_seq_length: int,
        max_item_tokens: int | None,
        lr: float,
        weight_decay: float = 0.01,
        warmup_steps: int,
        generation: dict | None = None,
        query_format: str = "Title: {title}",
        fusion: str = "top1_per_query",
        retrieval_depth: int = 20,
        exclude_seen: bool = False,
        rerank: dict | None = None,
    ):
        self.backbone, self.retriever = backbone, retriever
        self.template = PromptTemplate(**(plain(template) or {}))
        self.max_seq_length, self.max_item_tokens = max_seq_length, max_item_tokens
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.generation = plain(generation) or {}
        self.query_format, self.fusion, self.retrieval_depth = query_format, fusion, retrieval_depth
        self.exclude_seen = exclude_seen
        self.rerank = {"generated": 5, "neighbours": 10, "contrast": 0.5, "batch_size": 32, **plain(rerank)} if rerank else None
        self.module: GeneratorModule | None = None
        self.encoder: PromptEncoder | None = None
        self.texts: list[str] = []
        self._neighbours: np.ndarray | None = None  # [n_items, depth]: every catalog item's nearest items (rerank)

    def build_for(self, data: GlossData, seed: int, run_dir: Path | None = None) -> None:
        """Backbone (random, or with `run_dir` its saved generator/ whose gloss_generation.json settings then replace
        this config's), prompt encoder, and the catalog index of the retriever."""
        if run_dir is None:
            model, tokenizer = self.backbone(data=data, seed=seed)
        else:
            folder = Path(run_dir) / GENERATOR_DIR
            self.apply_settings(folder / SETTINGS)
            model, tokenizer = self.backbone(data=data, seed=seed, pretrained=str(folder))
        self.module = GeneratorModule(model, tokenizer, self.lr, self.weight_decay, self.warmup_steps, self.generation)
        item_tokens = model.config.vocab_size if getattr(model.config, "num_items", 0) else None  # an ItemAwareLlama
        self.encoder = PromptEncoder(tokenizer, self.template, data.catalog.titles, self.max_seq_length, self.max_item_tokens,
                                     item_tokens)
        self.index_catalog(data)

    @property
    def lightning_module(self) -> GeneratorModule:
        return self.module

    def datamodule_inputs(self) -> dict:
        return {"encoder": self.encoder}

    def index_catalog(self, data: GlossData) -> None:
        self.texts, self._neighbours = data.catalog.texts, None
        self.retriever.index(self.texts)

    def neighbours(self, depth: int) -> np.ndarray:
        """[n_items, depth] nearest catalog items of every item (its own title as the query, so the dense query
        embeddings are the cached catalog ones), searched once per index, not once per ranking call."""
        if self._neighbours is None or self._neighbours.shape[1] < depth:
            self._neighbours = self.retriever.search(self.texts, depth)[0]
        return self._neighbours[:, :depth]

    def settings(self) -> dict:
        """What ranking depends on beyond the weights (saved as generator/gloss_generation.json, read back on reload)."""
        return {"template": self.template.__dict__, "max_seq_length": self.max_seq_length,
                "max_item_tokens": self.max_item_tokens, "generation": self.module.generation,
                "query_format": self.query_format, "fusion": self.fusion, "retrieval_depth": self.retrieval_depth,
                "exclude_seen": self.exclude_seen, "rerank": self.rerank}

    def apply_settings(self, path: Path) -> None:
        if not path.is_file():
            raise GlossError(f"{path}: missing (not a gloss generator run folder, or a run that did not finish training)")
        saved = json.loads(path.read_text())
        self.template = PromptTemplate(**saved["template"])
        self.max_seq_length, self.max_item_tokens = saved["max_seq_length"], saved["max_item_tokens"]
        self.generation, self.query_format, self.fusion = saved["generation"], saved["query_format"], saved["fusion"]
        self.retrieval_depth = saved.get("retrieval_depth", self.retrieval_depth)
        self.exclude_seen, self.rerank = saved.get("exclude_seen", self.exclude_seen), saved["rerank"]

    def save(self, run_dir: Path) -> None:
        """Everything generation needs, in run_dir/generator: model (full weights, or PEFT adapter), tokenizer,
        prompt/generation/ranking settings."""
        folder = Path(run_dir) / GENERATOR_DIR
        self.module.model.save_pretrained(folder)
        self.module.tokenizer.save_pretrained(folder)
        (folder / SETTINGS).write_text(json.dumps(self.settings(), indent=2))

    def queries(self, histories: Sequence[np.ndarray]) -> list[list[str]]:
        """Per history: the generated titles (beam order) as retrieval queries."""
        room = self.module.generation["max_new_tokens"]
        prompts = [self.encoder.prompt_ids(h, room=room) for h in histories]
        generated = self.module.generate(prompts)
        return [[self.query_format.format(title=self.template.title_of(t)) for t in row] for row in generated]

    def recommend(self, histories: Sequence[np.ndarray], k: int) -> Ranking:
        if self.module is None:
            raise RuntimeError("call fit() before recommend()")
        self.module.eval()
        queries = self.queries(histories)
        if self.rerank is None:
            return self.rank(queries, histories, k)
        generated = self.rank(queries, histories, max(k, self.rerank["generated"])).items[:, : self.rerank["generated"]]
        return self.rerank_pool(histories, self.candidate_pool(histories, generated), k)

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

    def rerank_pool(self, histories: Sequence[np.ndarray], pools: list[list[int]], k: int) -> Ranking:
        """Sort each pool by the LM's (contrasted) log-likelihood of the items' titles after the user's prompt."""
        enc = self.encoder
        room = self.max_item_tokens + 1 if self.max_item_tokens else self.max_seq_length // 2
        prompts = [enc.prompt_ids(h, room=room) for h in histories]
        scores = rerank_scores(self.module.model, prompts, pools, lambda i: enc.labels(enc.completion_ids(i)),
                               self.module.pad_id, self.module.null_prompt,
                               self.rerank["contrast"], self.rerank["batch_size"])
        items = np.full((len(pools), k), -1, dtype=np.int64)
        best = np.zeros((len(pools), k), dtype=np.float32)
        for u, (pool, s) in enumerate(zip(pools, scores)):
            order = np.argsort(-s, kind="stable")[:k]
            items[u, : len(order)], best[u, : len(order)] = np.asarray(pool)[order], s[order]
        return Ranking(items, best)

    def rank(self, queries: list[list[str]], histories: Sequence[np.ndarray], k: int) -> Ranking:
        return retrieve_and_fuse(self.retriever, queries, histories, k, self.fusion, self.retrieval_depth, self.exclude_seen)


def retrieve_and_fuse(retriever: Retriever, queries: list[list[str]], histories: Sequence[np.ndarray], k: int,
                      fusion: str = "top1_per_query", retrieval_depth: int = 20, exclude_seen: bool = False) -> Ranking:
    """Retrieve each query's top items and fuse them (top1_per_query = GLoSS: beam i's top-1 at rank i)."""
    q = max(len(row) for row in queries)
    flat = [row[i] if i < len(row) else "" for row in queries for i in range(q)]
    depth = min(k, retrieval_depth) if fusion == "top1_per_query" else retrieval_depth
    depth = max(depth, math.ceil(k / q))
    ids, scores = retriever.search_unique(flat, depth)
    ids, scores = ids.reshape(len(queries), q, depth), scores.reshape(len(queries), q, depth)
    items, fused = fuse(ids, scores, k, fusion, histories if exclude_seen else None)
    return Ranking(items, fused)
