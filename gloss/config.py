"""OmegaConf resolvers used by conf/ (registered when gloss is imported, before Hydra composes a config)."""
from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf


def config_subdir(output_dir: str) -> str:
    """Where Hydra saves a job's config: `.hydra`, or `.hydra/<time>` when the folder already holds a run's config
    (a resume, or a second run refused there), so the first run's record is never overwritten."""
    if not (Path(output_dir) / ".hydra" / "config.yaml").exists():
        return ".hydra"
    return f".hydra/{datetime.now():%Y-%m-%d_%H-%M-%S_%f}"


def on_cpu(accelerator: str, value, otherwise=None):
    """`value` when the Trainer runs on the CPU, else `otherwise` (a CPU budget must not cap GPU runs)."""
    return value if accelerator == "cpu" else otherwise


def register_resolvers() -> None:
    resolvers = {"gloss.config_subdir": config_subdir, "gloss.on_cpu": on_cpu, "gloss.isatty": lambda: sys.stdout.isatty()}
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
