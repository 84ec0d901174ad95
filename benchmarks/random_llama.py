"""A LLaMA-3-shaped causal LM with RANDOM weights, for timing the paper presets without the real weights.

    python benchmarks/random_llama.py --size 1b --out /tmp/llama1b [--dataset beauty]
    python run.py model=llama3_2_1b model.backbone.pretrained=/tmp/llama1b trainer=gpu ...

The architecture is the real one (Llama-3.2-1B / 3.2-3B / 3.1-8B: widths, layers, grouped-query heads, the 128,256-row
embedding); the tokenizer is a byte-level BPE trained on the dataset's titles (`--vocab` tokens, the rest of the
128,256 rows stay unused), since no LLaMA tokenizer is reachable offline. Speed and memory of 4-bit NF4 + LoRA
training and beam search are those of the real model; its metrics are meaningless.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from gloss.data import load_dataset
from gloss.models.scratch_lm import title_tokenizer

# From the models' published config.json files (meta-llama/Llama-3.2-1B, Llama-3.2-3B, Llama-3.1-8B).
SIZES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, tie_word_embeddings=True),  # CPU smoke test (vocabulary: the tokenizer's)
    "1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=8192, tie_word_embeddings=True),
    "3b": dict(hidden_size=3072, num_hidden_layers=28, num_attention_heads=24, num_key_value_heads=8,
               intermediate_size=8192, tie_word_embeddings=True),
    "8b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=14336, tie_word_embeddings=False),
}
ROPE_SCALING = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="1b")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--vocab", type=int, default=16000, help="BPE tokens trained on the titles")
    args = parser.parse_args()

    t0 = time.perf_counter()
    data = load_dataset(name=args.dataset, data_dir=args.data_dir, cache_dir=str(args.out / ".cache"))
    tokenizer = title_tokenizer(data.catalog.titles, args.vocab, args.out / ".cache")
    rope = {**ROPE_SCALING, "factor": 8.0 if args.size == "8b" else 32.0}
    vocab = len(tokenizer) if args.size == "tiny" else 128256
    config = LlamaConfig(vocab_size=vocab, max_position_embeddings=131072,
                         rms_norm_eps=1e-5, rope_theta=500000.0, rope_scaling=rope,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **SIZES[args.size])
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    n = sum(p.numel() for p in model.parameters())
    print(f"random Llama {args.size}: {n / 1e9:.2f}B parameters -> {args.out} ({time.perf_counter() - t0:.0f}s)")


if __name__ == "__main__":
    main()
