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
`--compare`: also the earlier way, on the same model: training on examples of mixed lengths (1/4 to all of
max_seq_length), padding-free vs padded with gradient checkpointing (tokens/s count real tokens in both), and the same
generation prompts through `model.generate` (backend=hf) with a fixed `--hf-users` users per batch.
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


def train_rate(model, examples, padding_free: bool, pad_id: int, steps: int, device: torch.device) -> str:
    """Tokens/s (real tokens, over the steps after the first; all when steps=1) and peak memory of AdamW steps on the
    trainable weights with `examples` as one batch, bf16 autocast on a GPU as trainer=gpu."""
    batch = flatten_examples(examples) if padding_free else right_pad_examples(examples, pad_id)
    batch = {k: v.to(device) for k, v in batch.items()}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    model.train()
    reset(device)
    timed, tokens, seconds = max(steps - 1, 1), 0, 0.0
    for step in range(steps):
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model(**batch, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if step >= steps - timed:
            seconds += time.perf_counter() - t0
            tokens += sum(len(ids) for ids, _ in examples)
    out = f"{tokens / seconds:,.0f} tokens/s{peak_gib(device)}"
    del opt, batch, loss
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the probe's stages are measured apart
    return out


def generate_rate(module: GeneratorModule, prompts: list[list[int]], device: torch.device) -> str:
    module.model.eval()
    reset(device)
    t0 = time.perf_counter()
    module.generate(prompts)
    sync(device)
    return f"{len(prompts) / (time.perf_counter() - t0):.2f} users/s{peak_gib(device)}"


def examples_of(lengths: list[int], vocab: int, g: torch.Generator) -> list[tuple[list[int], list[int]]]:
    """Random examples of these lengths, the last COMPLETION tokens (at most half) labelled (the completion)."""
    out = []
    for n in lengths:
        ids, prompt = torch.randint(0, vocab, (n,), generator=g).tolist(), n - min(COMPLETION, n // 2)
        out.append((ids, [IGNORE] * prompt + ids[prompt:]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a saved model folder (model.backbone.pretrained)")
    ap.add_argument("--preset", default="llama3_2_1b", help="conf/model/<preset>.yaml")
    ap.add_argument("--label", default=None, help="name in the printed lines (default: the preset)")
    ap.add_argument("--steps", type=int, default=1, help="training steps")
    ap.add_argument("--compare", action="store_true", help="also time the earlier way (see above)")
    ap.add_argument("--hf-users", type=int, default=16, help="users per model.generate batch with --compare")
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
    dm, length, g, vocab = m.recipe.datamodule, int(m.max_seq_length), torch.Generator().manual_seed(0), len(tok)
    size, checkpointing = int(dm.batch_size), bool(m.backbone.gradient_checkpointing)

    # training: worst-case (full-length) examples, batched as the preset trains
    full = examples_of([length] * size, vocab, g)
    layout = "padding-free" if dm.padding_free else "padded"
    print(f"{label} train: {size} x {length} tokens per step ({layout}, gradient checkpointing {checkpointing}): "
          f"{train_rate(model, full, dm.padding_free, tok.pad_token_id, args.steps, device)}", flush=True)
    if args.compare:
        mixed = examples_of([int(length * (0.25 + 0.75 * i / max(size - 1, 1))) for i in range(size)], vocab, g)
        what = f"{size} examples of {len(mixed[0][0])}-{len(mixed[-1][0])} tokens"
        print(f"{label} train, mixed lengths ({what}), padding-free: "
              f"{train_rate(model, mixed, True, tok.pad_token_id, args.steps, device)}", flush=True)
        if not checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        print(f"{label} train, mixed lengths ({what}), padded + gradient checkpointing (before): "
              f"{train_rate(model, mixed, False, tok.pad_token_id, args.steps, device)}", flush=True)
        if not checkpointing:
            model.gradient_checkpointing_disable()

    # generation: one batch of the longest prompts the preset ranks, as many users as the budget allows
    generation = OmegaConf.to_container(m.generation, resolve=True)
    module = GeneratorModule(model, tok, lr=1e-4, weight_decay=0.0, warmup_steps=0, generation=generation)
    prompt_len = length - generation["max_new_tokens"]
    users = len(module.batches([prompt_len] * int(generation["batch_size"]))[0])
    prompts = [torch.randint(0, vocab, (prompt_len,), generator=g).tolist() for _ in range(users)]
    estimate = beam_memory_bytes(model, users, prompt_len, generation["num_beams"], generation["max_new_tokens"])
    print(f"{label} generate: {users} users x {prompt_len}-token prompts, {generation['num_beams']} beams, <= "
          f"{generation['max_new_tokens']} new tokens ({generation['backend']}, budget {generation['memory_budget_gb']}"
          f" GiB, estimate {estimate / 2**30:.3g} GiB): {generate_rate(module, prompts, device)}", flush=True)
    if args.compare:
        module.generation.update(backend="hf", batch_size=args.hf_users, memory_budget_gb=None)
        print(f"{label} generate, the same prompts, model.generate with {args.hf_users} users per batch (before): "
              f"{generate_rate(module, prompts, device)}", flush=True)


if __name__ == "__main__":
    main()
