"""A pretrained Hugging Face causal LM (e.g. LLaMA-3), optionally in 4-bit NF4 with LoRA adapters (GLoSS).

Weights are resolved without hanging offline: a local folder, then the Hugging Face cache (no network), then
the hub only if it answers; otherwise a GlossError says how to supply them.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from gloss.errors import GlossError
from gloss.retrieval.encoders import hub_reachable

log = logging.getLogger(__name__)


def resolve_pretrained(name: str) -> str:
    """A local folder or hub id that from_pretrained can load right now."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name, local_files_only=True)
    except Exception:  # not in the local Hugging Face cache
        pass
    if hub_reachable():
        return name
    raise GlossError(
        f"model weights {name!r} are not available offline (not a local folder, not in the Hugging Face cache, hub "
        f"unreachable): download them elsewhere and pass the folder as model.backbone.pretrained=/path/to/{Path(name).name}"
    )


def pretrained_lm(
    pretrained: str,
    load_in_4bit: bool,
    bnb_4bit_quant_type: str,
    bnb_4bit_compute_dtype: str,
    bnb_4bit_use_double_quant: bool,
    torch_dtype: str,
    attn_implementation: str,
    lora: dict | None,
    gradient_checkpointing: bool,
    data=None,
    cache_dir: str | None = None,
    seed: int = 42,
):
    """(model, tokenizer); with `lora` only the adapters are trainable (prepare_model_for_kbit_training when 4-bit).

    `pretrained` may also be a run's saved generator folder: full weights (scratch model) or a PEFT adapter,
    whose base model is then loaded as configured here and the adapter put on top (trainable iff `lora`)."""
    from omegaconf import DictConfig, OmegaConf
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    if isinstance(lora, DictConfig):  # Hydra's lists would reach adapter_config.json, which json cannot write
        lora = OmegaConf.to_container(lora, resolve=True)
    path = resolve_pretrained(pretrained)
    adapter = Path(path) / "adapter_config.json"
    base = resolve_pretrained(json.loads(adapter.read_text())["base_model_name_or_path"]) if adapter.is_file() else path
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:  # LLaMA-3 has none; EOS as PAD is masked out anyway
        tokenizer.pad_token = tokenizer.eos_token
    kwargs = {"dtype": getattr(torch, torch_dtype), "attn_implementation": attn_implementation}
    if load_in_4bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=bnb_4bit_quant_type,
            bnb_4bit_compute_dtype=getattr(torch, bnb_4bit_compute_dtype),
            bnb_4bit_use_double_quant=bnb_4bit_use_double_quant,
        )
    model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    if adapter.is_file():
        from peft import PeftModel

        if load_in_4bit and lora is not None:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
        model = PeftModel.from_pretrained(model, path, is_trainable=lora is not None)
    elif lora is not None:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if load_in_4bit:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", bias="none", **lora))
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("%s: %d trainable parameters (4-bit: %s, LoRA: %s)", pretrained, n_train, load_in_4bit, lora is not None)
    return model, tokenizer
