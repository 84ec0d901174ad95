"""GLoSS: a causal LM generates the next item's title (beam search), a retriever maps each generated
title to catalog items, and the hits are fused into one ranking.

- `GeneratorModule` (LightningModule): any Hugging Face causal LM — a 4-bit NF4 + LoRA LLaMA-3 (the paper) or
  the compact Llama trained from scratch on the dataset (the offline default). AdamW, linear schedule with
  warmup, completion-only loss; `generate` runs batched beam search.
- `GenerativeRecommender` (TrainableRecommender): builds the backbone (trained by gloss.training on a
  PromptDataModule), saves what generation needs in run_dir/generator (read back by eval.py / predict.py), and
  ranks histories by generate -> retrieve -> fuse
  [-> `rerank`: the LM re-scores those hits, the last item's neighbours and a collaborative model's top items by
  its likelihood of their titles, optionally times the collaborative model's score (a product of experts)].
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from gloss.data import GlossData
from gloss.data.padding import left_pad_prompts
from gloss.data.prompt_datamodule import PromptEncoder, examples_in
from gloss.data.prompts import PromptTemplate
from gloss.errors import GlossError
from gloss.models.base import Ranking, ScoringRecommender, TrainableRecommender, histories_digest, top_k_indices
from gloss.models.beam_search import beam_memory_bytes, beam_search, hf_beam_search, memory_batches
from gloss.models.rerank import rerank_scores
from gloss.progress import Progress
from gloss.retrieval import Retriever, retrieve_and_fuse

log = logging.getLogger(__name__)
GENERATOR_DIR, SETTINGS = "generator", "gloss_generation.json"  # in a run folder
# model.generation keys (conf/model/*.yaml set them)
GENERATION_KEYS = ("backend", "num_beams", "num_return_sequences", "max_new_tokens", "length_penalty", "batch_size")
# keys runs saved before they existed lack (gloss_generation.json): what those runs ranked with
LEGACY_GENERATION = {"contrast": 0.0, "early_stopping": False, "memory_budget_gb": None}
BACKENDS = ("prefill_once", "prefill_hf", "hf")
# model.rerank keys, every one required (conf/model/gloss_scratch.yaml sets and documents them)
RERANK_KEYS = ("generated", "neighbours", "collaborative", "contrast", "lm_weight", "collaborative_weight",
               "collaborative_floor", "batch_size")


class GeneratorModule(L.LightningModule):
    def __init__(self, model, tokenizer, lr: float, weight_decay: float, warmup_steps: int, generation: dict):
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.generation = generation_settings(generation)
        if self.generation["contrast"] and self.generation["backend"] != "prefill_once":
            raise ValueError("generation.contrast needs generation.backend=prefill_once (gloss.models.beam_search)")
        self.strict_loading = False  # LoRA checkpoints hold only the trainable (adapter) weights

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch, use_cache=False).loss  # no cache: a padding-free row's position ids mark its examples
        self.log("train/loss", loss, prog_bar=True, batch_size=examples_in(batch))
        return loss

    def on_train_epoch_start(self) -> None:
        if hasattr(self.model, "start_epoch"):  # ItemAwareLlama's curriculum (text first, then item vectors)
            self.model.start_epoch(self.current_epoch)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("val/loss", self.model(**batch, use_cache=False).loss, prog_bar=True, batch_size=examples_in(batch))

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

    def batches(self, lengths: list[int]) -> list[list[int]]:
        """Prompt indices in batches of similar length, shortest first: `batch_size` users at most, and with
        `memory_budget_gb` as many as beam_memory_bytes(users, longest prompt) keeps within it."""
        g = self.generation
        budget = None if g["memory_budget_gb"] is None else int(g["memory_budget_gb"] * 2**30)

        def cost(users: int, length: int) -> int:
            return beam_memory_bytes(self.model, users, length, g["num_beams"], g["max_new_tokens"])

        return memory_batches(lengths, g["batch_size"], budget, cost)

    @contextlib.contextmanager
    def merged_lora(self):
        """LoRA adapters merged into the base weights while ranking (one matmul per projection instead of three);
        afterwards the base weights are the very tensors they were (bit for bit, so training and resume are
        unaffected). 4-bit (or any non-float) base weights are left unmerged: merging would re-quantize them."""
        if not hasattr(self.model, "peft_config"):  # no adapters (the offline generator)
            yield
            return
        from peft.tuners.lora import LoraLayer

        layers = [m for m in self.model.modules() if isinstance(m, LoraLayer) and not m.merged
                  and m.get_base_layer().weight.dtype.is_floating_point]
        saved = [m.get_base_layer().weight.data for m in layers]
        try:
            for m in layers:
                m.merge(safe_merge=True)  # writes a new weight tensor; the saved one is untouched
            yield
        finally:
            for m, weight in zip(layers, saved):
                m.get_base_layer().weight.data = weight
                m.merged_adapters.clear()

    @torch.no_grad()
    def generate(self, prompts: list[list[int]]) -> list[list[str]]:
        """Token-id prompts -> num_return_sequences decoded completions each (best first); a long loop reports its
        progress to the log (gloss.progress)."""

        tok, pad = self.tokenizer, self.pad_id
        out: list[list[str]] = [[] for _ in prompts]
        with Progress(len(prompts), "generate") as report, self.merged_lora():
            for rows in self.batches([len(p) for p in prompts]):
                ids, mask = left_pad_prompts([prompts[r] for r in rows], pad)
                ids, mask = ids.to(self.device), mask.to(self.device)
                seqs = self._beam_search(ids, mask, pad)
                texts = tok.batch_decode(seqs.reshape(-1, seqs.shape[-1]).cpu(), skip_special_tokens=True)
                n_ret = self.generation["num_return_sequences"]
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
                                       length_penalty=g["length_penalty"], early_stopping=g["early_stopping"],
                                       do_sample=False, eos_token_id=eos, pad_token_id=pad, use_cache=True)
            return seqs[:, ids.shape[1] :].reshape(ids.shape[0], g["num_return_sequences"], -1)
        if g["backend"] == "prefill_hf":  # the same beams as "hf", each prompt encoded once
            seqs, _ = hf_beam_search(self.model, ids, mask, g["num_beams"], g["max_new_tokens"], eos, pad,
                                     g["length_penalty"], g["early_stopping"])
            return seqs[:, : g["num_return_sequences"]]
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
        weight_decay: float,
        warmup_steps: int,
        generation: dict,
        query_format: str,
        fusion: str,
        retrieval_depth: int,
        exclude_seen: bool,
        rerank: dict | None = None,
        collaborative: ScoringRecommender | None = None,
        ablation: dict | None = None,
    ):
        self.backbone, self.retriever = backbone, retriever
        self.template = PromptTemplate(**(plain(template) or {}))
        self.max_seq_length, self.max_item_tokens = max_seq_length, max_item_tokens
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.generation = generation_settings(plain(generation))
        self.query_format, self.fusion, self.retrieval_depth = query_format, fusion, retrieval_depth
        self.exclude_seen = exclude_seen
        self.rerank = rerank_settings(plain(rerank), "model.rerank")
        self.collaborative = collaborative  # unfit; fit on the training data in build_for (counting: seconds)
        self.ablation = {str(label): rerank_settings({**(self.rerank or {}), **over} if over is not None else None,
                                                     f"model.ablation.{label}")
                         for label, over in (plain(ablation) or {}).items()}
        for where, settings in [("model.rerank", self.rerank), *((f"model.ablation.{a}", r) for a, r in self.ablation.items())]:
            if settings and (settings["collaborative"] or settings["collaborative_weight"]) and collaborative is None:
                raise GlossError(f"{where}: collaborative/collaborative_weight need model.collaborative (e.g. the cooc model)")
        self.memo: dict = {}  # generations and LM scores per set of histories ranked with these weights (shared by variants)
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
        if self.collaborative is not None:
            self.collaborative.fit(data)

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
        self.exclude_seen = saved.get("exclude_seen", self.exclude_seen)
        self.rerank = rerank_settings(saved["rerank"], f"{path}: rerank")

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

    def memo_for(self, histories: Sequence[np.ndarray]) -> dict:
        """What ranking these histories with these weights computed so far (generations, fused hits, LM scores): the
        ablation's variants rank the same users (each split) with the same weights, so beam search and LM scoring run
        once per split. Keyed by the histories; emptied when the trainable weights change (a fingerprint of them)."""
        weights = hashlib.sha256()
        with torch.no_grad():
            for p in self.module.model.parameters():
                if p.requires_grad:
                    weights.update(np.float64(p.double().sum().item()).tobytes())
        if self.memo.get("weights") != weights.hexdigest():
            self.memo.clear()
            self.memo.update(weights=weights.hexdigest(), histories={})
        return self.memo["histories"].setdefault(histories_digest(histories), {"fused": {}, "lm": {}})

    def fused(self, histories: Sequence[np.ndarray], k: int) -> Ranking:
        """The paper's ranking (beam i's top-1 item at rank i), memoized."""
        memo = self.memo_for(histories)
        if "queries" not in memo:
            memo["queries"] = self.queries(histories)
        if k not in memo["fused"]:
            memo["fused"][k] = self.rank(memo["queries"], histories, k)
        return memo["fused"][k]

    def recommend(self, histories: Sequence[np.ndarray], k: int) -> Ranking:
        if self.module is None:
            raise RuntimeError("call fit() before recommend()")
        self.module.eval()
        if self.rerank is None:
            return self.fused(histories, k)
        generated = self.fused(histories, max(k, self.rerank["generated"])).items[:, : self.rerank["generated"]]
        pools, collaborative = self.candidate_pool(histories, generated)
        return self.rerank_pool(histories, pools, collaborative, k)

    def variants(self) -> dict[str, "GenerativeRecommender"]:
        """model.ablation: this trained generator ranked with other rerank settings (null: beam order, the paper's
        ranking), on the same weights; generations and LM scores are shared with the model's own ranking."""
        out = {}
        for label, settings in self.ablation.items():
            out[label] = variant = copy.copy(self)
            variant.rerank, variant.ablation = settings, {}
        return out

    def candidate_pool(self, histories: Sequence[np.ndarray], generated: np.ndarray) -> tuple[list[list[int]], list[np.ndarray]]:
        """Per user: the generated titles' hits (fused order), then the last item's nearest catalog neighbours
        (retrieved with its own title, the item itself left out) up to `rerank.neighbours` of them, then the
        collaborative model's top `rerank.collaborative` items; and each pool item's collaborative score divided by the
        user's best one (zeros without a collaborative model)."""
        n, c = self.rerank["neighbours"], self.rerank["collaborative"]
        near = self.neighbours(n + 1) if n else None
        scored = self.collaborative is not None and (c or self.rerank["collaborative_weight"])
        pools, collab = [], []
        batch = self.collaborative.batch_size if scored else len(histories) or 1
        for start in range(0, len(histories), batch):
            block = histories[start : start + batch]
            scores = self.collaborative.score(block) if scored else None
            if scores is not None:
                scores = scores / np.maximum(scores.max(axis=1, keepdims=True), 1e-12)
                top = top_items(scores, c + max(len(h) for h in block)) if c else None
            for row, h in enumerate(block):
                banned = set(h.tolist()) if self.exclude_seen else set()
                pool = [int(i) for i in generated[start + row] if i >= 0 and i not in banned]
                if n and len(h):
                    last = int(h[-1])
                    pool += [int(i) for i in near[last] if i >= 0 and i != last and i not in banned][:n]
                if c and scores is not None:
                    pool += [int(i) for i in top[row] if i not in banned and scores[row, i] > 0][:c]
                pool = list(dict.fromkeys(pool))
                pools.append(pool)
                collab.append(scores[row, pool].astype(np.float64) if scores is not None else np.zeros(len(pool)))
        return pools, collab

    def lm_scores(self, histories: Sequence[np.ndarray], pools: list[list[int]]) -> list[np.ndarray]:
        """The LM's (contrasted) log-likelihood of each pool item's title after the user's prompt; memoized per
        (user, item), so variants with smaller pools score nothing again."""
        enc, memo = self.encoder, self.memo_for(histories)["lm"].setdefault(self.rerank["contrast"], {})
        missing = [(u, [i for i in pool if (u, i) not in memo]) for u, pool in enumerate(pools)]
        missing = [(u, items) for u, items in missing if items]
        if missing:
            room = self.max_item_tokens + 1 if self.max_item_tokens else self.max_seq_length // 2
            prompts = [enc.prompt_ids(histories[u], room=room) for u, _ in missing]
            scores = rerank_scores(self.module.model, prompts, [items for _, items in missing],
                                   lambda i: enc.labels(enc.completion_ids(i)), self.module.pad_id, self.module.null_prompt,
                                   self.rerank["contrast"], self.rerank["batch_size"])
            for (u, items), s in zip(missing, scores):
                memo.update(zip(((u, i) for i in items), s.tolist()))
        return [np.array([memo[u, i] for i in pool], dtype=np.float64) for u, pool in enumerate(pools)]

    def rerank_pool(self, histories: Sequence[np.ndarray], pools: list[list[int]], collaborative: list[np.ndarray],
                    k: int) -> Ranking:
        """Sort each pool by lm_weight * (the LM's log-likelihood of the item's title) + collaborative_weight *
        log(collaborative score / the user's best + collaborative_floor); ties keep the pool order."""
        r = self.rerank
        lm = self.lm_scores(histories, pools) if r["lm_weight"] else [np.zeros(len(p)) for p in pools]
        items = np.full((len(pools), k), -1, dtype=np.int64)
        best = np.zeros((len(pools), k), dtype=np.float32)
        for u, (pool, s, c) in enumerate(zip(pools, lm, collaborative)):
            total = r["lm_weight"] * s + (r["collaborative_weight"] * np.log(c + r["collaborative_floor"])
                                          if r["collaborative_weight"] else 0.0)
            order = np.argsort(-total, kind="stable")[:k]
            items[u, : len(order)], best[u, : len(order)] = np.asarray(pool, dtype=np.int64)[order], total[order]
        return Ranking(items, best)

    def rank(self, queries: list[list[str]], histories: Sequence[np.ndarray], k: int) -> Ranking:
        """The generated titles' hits fused (top1_per_query = GLoSS: beam i's top-1 at rank i)."""
        seen = histories if self.exclude_seen else None
        return Ranking(*retrieve_and_fuse(self.retriever, queries, k, self.fusion, self.retrieval_depth, seen))


def generation_settings(generation: dict) -> dict:
    """model.generation as a plain dict with every key of GENERATION_KEYS and LEGACY_GENERATION (a saved run's
    settings from before a key existed get the value it ranked with)."""
    missing = [key for key in GENERATION_KEYS if key not in generation]
    if missing:
        raise GlossError(f"model.generation: missing {', '.join(missing)} (every one of {', '.join(GENERATION_KEYS)} "
                         "is needed)")
    if generation["backend"] not in BACKENDS:
        raise GlossError(f"model.generation.backend={generation['backend']}: not one of {', '.join(BACKENDS)}")
    budget = generation.get("memory_budget_gb")
    if budget is not None and not (isinstance(budget, (int, float)) and budget > 0):
        raise GlossError(f"model.generation.memory_budget_gb={budget}: a positive number of GiB, or null")
    if generation.get("early_stopping", False) not in (True, False, "never"):
        raise GlossError(f"model.generation.early_stopping={generation['early_stopping']}: true, false or never")
    return {**LEGACY_GENERATION, **generation}


def rerank_settings(rerank: dict | None, where: str) -> dict | None:
    """model.rerank (or one ablation row) as a plain dict with every key of RERANK_KEYS; a missing or unknown key is a
    config error."""
    if not rerank:
        return None
    unknown = sorted(set(rerank) - set(RERANK_KEYS))
    if unknown:
        raise GlossError(f"{where}.{unknown[0]}: unknown rerank key (known: {', '.join(RERANK_KEYS)})")
    missing = [key for key in RERANK_KEYS if key not in rerank]
    if missing:
        raise GlossError(f"{where}: missing {', '.join(missing)} (every one of {', '.join(RERANK_KEYS)} is needed)")
    return dict(rerank)


def top_items(scores: np.ndarray, m: int) -> np.ndarray:
    """[n, m] column indices of each row's m highest scores, best first, ties by the shared rule (gloss.models.base),
    in the scores' own precision (top_k_scores ranks in float32, which would merge the collaborative scores' near-ties)."""
    return top_k_indices(scores, m)
