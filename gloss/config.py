"""OmegaConf resolvers used by conf/ (registered when gloss is imported, before Hydra composes a config)."""
from __future__ import annotations

import sys

from omegaconf import OmegaConf


def on_cpu(accelerator: str, value, otherwise=None):
    """`value` when the Trainer runs on the CPU, else `otherwise` (trainer=ddp: 32-true precision on CPU processes)."""
    return value if accelerator == "cpu" else otherwise


def register_resolvers() -> None:
    resolvers = {"gloss.on_cpu": on_cpu, "gloss.isatty": lambda: sys.stdout.isatty()}
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
