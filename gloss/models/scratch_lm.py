"""The offline generator's backbone: a byte-level BPE tokenizer trained on the catalog titles and a compact
Llama-architecture causal LM initialised at random (nothing is downloaded; the model learns titles and
purchase sequences from the dataset alone). The tokenizer is cached by the titles + its settings.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from gloss.cache import texts_key
from gloss.data import GlossData
from gloss.errors import GlossError

log = logging.getLogger(__name__)
SPECIAL = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>"}


def title_tokenizer(titles: list[str], vocab_size: int, cache_dir: str | Path) -> PreTrainedTokenizerFast:
    """Byte-level BPE on the titles (no unknown tokens); the prompt's BOS is added by the post-processor."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    path = Path(cache_dir).expanduser() / "tokenizers" / f"{texts_key('bpe-v1', vocab_size, texts=titles)}.json"
    if path.is_file():
        tok = Tokenizer.from_file(str(path))
    else:
        log.info("training a %d-token BPE tokenizer on %d titles", vocab_size, len(titles))
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL.values()),
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(titles, trainer)
        bos = SPECIAL["bos_token"]
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tok.save(str(tmp))
        tmp.replace(path)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL)


def scratch_llama(
    data: GlossData,
    cache_dir: str = "~/.cache/gloss",
    vocab_size: int = 8000,
    hidden_size: int = 256,
    num_layers: int = 4,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 1024,
    tie_word_embeddings: bool = True,
    seed: int = 42,
    pretrained: str | None = None,
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """(model, tokenizer) for `data`'s catalog; same seed + data -> same initial weights.
    `pretrained`: a run's saved generator folder (run_dir/generator) to load instead of a random init."""
    if pretrained is not None:
        folder = Path(pretrained).expanduser()
        if not (folder / "config.json").is_file():
            raise GlossError(f"model.backbone.pretrained={folder}: not a saved generator folder (no config.json)")
        return LlamaForCausalLM.from_pretrained(folder), PreTrainedTokenizerFast.from_pretrained(folder)
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
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    log.info("scratch Llama: %.2fM parameters, vocab %d", sum(p.numel() for p in model.parameters()) / 1e6, len(tokenizer))
    return model, tokenizer
