"""Speed and peak memory of a LLaMA preset's two heavy stages on a saved (e.g. random, benchmarks/random_llama.py)
model, at their worst case: training steps on full-length examples, and one beam-search batch of the longest prompts.

    python benchmarks/llama_probe.py --model /tmp/llama3b --preset llama3_2_3b [--steps 1] [--set key=value ...]

- train: `recipe.datamodule.batch_size` examples of `max_seq_length` tokens (the last 32 labelled: the completion),
  batched as the preset trains (padding-free or padded), AdamW on the trainable (LoRA) weights, bf16 autocast on a
  GPU as `trainer=gpu`; tokens/s over the steps after the first (all of them when --steps 1).
- generate: as many users as `generation.memory_budget_gb` lets one batch hold at prompts of `max_seq_length -
  max_new_tokens` tokens (GeneratorModule.batches), beam search as the preset ranks (LoRA merged where it can be);
  users/s and peak memory, compared with the budget's estimate.
Peak memory is torch.cuda.max_memory_allocated (weights included) on a GPU; on a CPU only the timings are printed.
`--set` takes overrides of the model node (e.g. backbone.load_in_4bit=false, max_seq_length=128).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gloss.data.padding import IGNORE, right_pad_examples
from gloss.data.prompt_datamodule import flatten_examples
from gloss.models.beam_search import beam_memory_bytes
from gloss.models.generator import GeneratorModule

ROOT = Path(__file__).resolve().parents[1]
COMPLETION = 32  # labelled tokens per training example


def peak_gib(device: torch.device) -> str:
    return f", peak memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB" if device.type == "cuda" else ""


def reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a saved model folder (model.backbone.pretrained)")
    ap.add_argument("--preset", default="llama3_2_1b", help="conf/model/<preset>.yaml")
    ap.add_argument("--label", default=None, help="name in the printed lines (default: the preset)")
    ap.add_argument("--steps", type=int, default=1, help="training steps")
    ap.add_argument("--set", nargs="*", default=[], help="overrides of the model node")
    args = ap.parse_args()
    label = args.label or args.preset
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={args.preset}", f"model.backbone.pretrained={args.model}",
                                           "paths.data_dir=/tmp", "paths.cache_dir=/tmp",
                                           *(f"model.{s}" for s in args.set)])
    m = cfg.model
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    model, tok = instantiate(m.backbone)(data=None, seed=0)
    model.to(device)
    print(f"{label}: loaded in {time.perf_counter() - t0:.0f}s{peak_gib(device)}", flush=True)

    # training: worst-case (full-length) examples, batched as the preset trains
    dm, length = m.recipe.datamodule, int(m.max_seq_length)
    g = torch.Generator().manual_seed(0)
    vocab = len(tok)
    examples = []
    for _ in range(int(dm.batch_size)):
        ids = torch.randint(0, vocab, (length,), generator=g).tolist()
        examples.append((ids, [IGNORE] * (length - COMPLETION) + ids[length - COMPLETION:]))
    batch = flatten_examples(examples) if dm.padding_free else right_pad_examples(examples, tok.pad_token_id)
    batch = {k: v.to(device) for k, v in batch.items()}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    model.train()
    reset(device)
    timed, tokens, seconds = max(args.steps - 1, 1), 0, 0.0
    for step in range(args.steps):
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model(**batch, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if step >= args.steps - timed:
            seconds += time.perf_counter() - t0
            tokens += len(examples) * length
    print(f"{label} train: {len(examples)} x {length} tokens per step ({'padding-free' if dm.padding_free else 'padded'},"
          f" gradient checkpointing {m.backbone.gradient_checkpointing}), {tokens / seconds:,.0f} tokens/s"
          f"{peak_gib(device)}", flush=True)
    del opt, batch, loss
    for p in params:
        p.grad = None
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the probe's stages are measured apart

    # generation: one batch of the longest prompts the preset ranks, as many users as the budget allows
    model.eval()
    generation = OmegaConf.to_container(m.generation, resolve=True)
    module = GeneratorModule(model, tok, lr=1e-4, weight_decay=0.0, warmup_steps=0, generation=generation)
    prompt_len = length - generation["max_new_tokens"]
    users = len(module.batches([prompt_len] * int(generation["batch_size"]))[0])
    prompts = [torch.randint(0, vocab, (prompt_len,), generator=g).tolist() for _ in range(users)]
    estimate = beam_memory_bytes(model, users, prompt_len, generation["num_beams"], generation["max_new_tokens"])
    reset(device)
    t0 = time.perf_counter()
    module.generate(prompts)
    sync(device)
    seconds = time.perf_counter() - t0
    print(f"{label} generate: {users} users x {prompt_len}-token prompts, {generation['num_beams']} beams, <= "
          f"{generation['max_new_tokens']} new tokens ({generation['backend']}, budget "
          f"{generation['memory_budget_gb']} GiB, estimate {estimate / 2**30:.3g} GiB): {users / seconds:.2f} users/s"
          f"{peak_gib(device)}", flush=True)


if __name__ == "__main__":
    main()
