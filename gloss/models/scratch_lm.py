"""The offline generator's backbone: a byte-level BPE tokenizer trained on the catalog titles and a compact
Llama-architecture causal LM initialised at random (nothing is downloaded; the model learns titles and
purchase sequences from the dataset alone). The tokenizer is cached by the titles + its settings.

`item_embeddings` adds collaborative item embeddings (as CoLLM injects a CF model's item vectors into an LLM): each
history item's closing EOS becomes an "item token" (id vocab_size + catalog index) whose input embedding is EOS's plus
a trainable vector of that item. The model still reads and writes titles; the item vector only enters where the item's
title has ended, i.e. where the next title starts, so a target's own identity never leaks into its tokens.
`random` starts the vectors at random; `svd` starts them at the item's row of a rank-`hidden_size` SVD of the training
item-transition matrix (log1p of gloss.models.cooc counts, training sequences only), i.e. a summary of what tends to
follow the item, which the LM learns to spell out as titles.

`token_init` (an encoder, e.g. all-MiniLM-L6-v2) starts the token embeddings (tied: the output layer too) from that
encoder's embedding of each token's text, reduced by PCA to `hidden_size`: the pretrained text model's knowledge of
which word pieces mean similar things, given to a model that otherwise learns from the dataset alone.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import scipy.sparse.linalg
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from gloss.cache import atomic_write, load_entry, texts_key
from gloss.data import GlossData
from gloss.errors import GlossError
from gloss.models.cooc import transition_matrix

log = logging.getLogger(__name__)
SPECIAL = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>"}


def title_tokenizer(titles: list[str], vocab_size: int, cache_dir: str | Path) -> PreTrainedTokenizerFast:
    """Byte-level BPE on the titles (no unknown tokens); the prompt's BOS is added by the post-processor."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    path = Path(cache_dir).expanduser() / "tokenizers" / f"{texts_key('bpe-v1', vocab_size, texts=titles)}.json"
    tok = load_entry(path, lambda p: Tokenizer.from_file(str(p)))  # a corrupted entry is deleted and rebuilt
    if tok is None:
        log.info("training a %d-token BPE tokenizer on %d titles", vocab_size, len(titles))
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL.values()),
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(titles, trainer)
        bos = SPECIAL["bos_token"]
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))])
        atomic_write(path, lambda tmp: tok.save(str(tmp)))  # unique temp name: parallel jobs may build it too
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL)


class ItemAwareLlama(LlamaForCausalLM):
    """A Llama whose input ids >= vocab_size are item tokens: EOS + item_scale * item_embed[id - vocab_size] (outputs:
    text only). `item_scale` multiplies the vectors and so, under Adam, their effective learning rate. `items_on`
    (saved with the weights) switches the vectors off, so item tokens read as plain EOS: the curriculum of
    `config.item_start_epoch` (text first, then items, as LLaRA does) and the checkpoints it selects stay consistent."""

    def __init__(self, config: LlamaConfig):
        super().__init__(config)
        self.item_embed = nn.Embedding(config.num_items, config.hidden_size)
        nn.init.normal_(self.item_embed.weight, std=config.initializer_range / config.item_scale)
        self.register_buffer("items_on", torch.tensor(True))

    def start_epoch(self, epoch: int) -> None:
        self.items_on.fill_(epoch >= getattr(self.config, "item_start_epoch", 0))

    def forward(self, input_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None, **kwargs):
        if input_ids is not None and inputs_embeds is None:
            is_item = input_ids >= self.config.vocab_size
            if is_item.any():
                text = self.model.embed_tokens(input_ids.masked_fill(is_item, self.config.eos_token_id))
                if self.items_on:
                    item = self.config.item_scale * self.item_embed((input_ids - self.config.vocab_size).clamp(min=0))
                    text = text + item * is_item.unsqueeze(-1)
                inputs_embeds, input_ids = text, None
        return super().forward(input_ids=input_ids, inputs_embeds=inputs_embeds, **kwargs)


def transition_svd(data: GlossData, dim: int, seed: int, window: int = 3) -> torch.Tensor:
    """[n_items, dim] rows U * sqrt(S) of a truncated SVD of log1p(training transition counts), per-entry std 1."""
    n = len(data.catalog.titles)
    counts = transition_matrix(data.split.train_sequences(), n, window).astype(np.float64)
    counts.data = np.log1p(counts.data)
    k = min(dim, n - 1)
    u, s, _ = scipy.sparse.linalg.svds(counts, k=k, rng=np.random.default_rng(seed))
    vectors = np.zeros((n, dim))
    vectors[:, :k] = u * np.sqrt(s)
    return torch.tensor(vectors / max(vectors.std(), 1e-12), dtype=torch.float32)


def encoder_token_init(tokenizer: PreTrainedTokenizerFast, encoder: str, cache_dir: str | Path, dim: int,
                       std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows [vocab, dim], mask [vocab]): each token's text (its decoded string) encoded by `encoder` (unit vectors,
    cached like catalog embeddings), centred and projected on its top `dim` principal directions, then scaled to
    per-entry std `std` (the random init's scale, so training sees the same magnitudes). Special tokens and tokens
    whose text is blank (whitespace, partial UTF-8 bytes) are left out (mask False): they keep the random init."""
    from gloss.retrieval.dense import DenseRetriever

    texts = [tokenizer.decode([i]).strip() for i in range(len(tokenizer))]
    keep = torch.tensor([bool(t) and "\ufffd" not in t and i not in tokenizer.all_special_ids for i, t in enumerate(texts)])
    ids = keep.nonzero().flatten().tolist()
    retriever = DenseRetriever(encoder=encoder, query_prefix="", passage_prefix="", batch_size=256,
                               cache_dir=str(cache_dir), device=None, search_index=None)
    emb = retriever.embed([texts[i] for i in ids], "", "token")
    emb = torch.tensor(emb, dtype=torch.float64)
    centred = emb - emb.mean(0)
    k = min(dim, *centred.shape)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    rows = torch.zeros(len(tokenizer), dim, dtype=torch.float64)
    rows[ids, :k] = centred @ v[:k].T
    rows *= std / rows[ids].std().clamp(min=1e-12)
    return rows.float(), keep


def scratch_llama(
    data: GlossData,
    cache_dir: str,
    vocab_size: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    intermediate_size: int | None,
    max_position_embeddings: int,
    item_embeddings: str | None,
    item_scale: float,
    item_init_std: float | None,
    item_start_epoch: int,
    token_init: str | None,
    pretrained: str | None,
    tie_word_embeddings: bool = True,
    seed: int = 42,
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """(model, tokenizer) for `data`'s catalog; same seed + data -> same initial weights. The settings are the
    backbone node's (conf/model/gloss_scratch.yaml). `intermediate_size` null: 8/3 * hidden_size, rounded to 64.
    `item_embeddings`: null (text only) | random | svd: an ItemAwareLlama with one trainable vector per catalog item
    (see the module docstring), multiplied by `item_scale`; `item_init_std`: per-entry std of the effective vectors at
    init (null: the token embeddings' init std); `item_start_epoch`: train text only (item tokens = EOS) before it.
    `token_init`: null (random token embeddings) | a sentence encoder whose token-text embeddings start them.
    `pretrained`: a run's saved generator folder (run_dir/generator) to load instead of a random init."""
    if pretrained is not None:
        return load_generator(Path(pretrained).expanduser(), len(data.catalog.titles))
    if item_embeddings not in (None, "random", "svd"):
        raise GlossError(f"model.backbone.item_embeddings={item_embeddings!r}: expected null, random or svd")
    tokenizer = title_tokenizer(data.catalog.titles, vocab_size, cache_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 64 * round(8 * hidden_size / 3 / 64),
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        num_items=len(data.catalog.titles) if item_embeddings else 0,
        item_scale=item_scale,
        item_start_epoch=item_start_epoch,
    )
    torch.manual_seed(seed)
    model = ItemAwareLlama(config) if item_embeddings else LlamaForCausalLM(config)
    if item_embeddings:  # effective vectors (item_scale * weight) start with per-entry std item_init_std
        init = transition_svd(data, hidden_size, seed) if item_embeddings == "svd" else torch.randn(config.num_items, hidden_size)
        with torch.no_grad():
            model.item_embed.weight.copy_(init * (item_init_std or config.initializer_range) / item_scale)
    if token_init:
        rows, keep = encoder_token_init(tokenizer, token_init, cache_dir, hidden_size, config.initializer_range)
        with torch.no_grad():
            model.model.embed_tokens.weight[keep] = rows[keep]
        log.info("token embeddings: %d of %d start from %s", int(keep.sum()), len(tokenizer), token_init)
    log.info("scratch Llama: %.2fM parameters, vocab %d", sum(p.numel() for p in model.parameters()) / 1e6, len(tokenizer))
    return model, tokenizer


def load_generator(folder: Path, num_items: int) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A saved run_dir/generator folder; item-aware models must come from a run on the same catalog."""
    if not (folder / "config.json").is_file():
        raise GlossError(f"model.backbone.pretrained={folder}: not a saved generator folder (no config.json)")
    config = LlamaConfig.from_pretrained(folder)
    saved_items = getattr(config, "num_items", 0)
    if saved_items and saved_items != num_items:
        raise GlossError(f"model.backbone.pretrained={folder}: item embeddings for {saved_items} items, "
                         f"but this dataset's catalog has {num_items}")
    cls = ItemAwareLlama if saved_items else LlamaForCausalLM
    return cls.from_pretrained(folder), PreTrainedTokenizerFast.from_pretrained(folder)
