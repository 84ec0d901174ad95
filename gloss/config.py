"""Config helpers: the OmegaConf resolvers used by conf/ (registered when gloss is imported, before Hydra composes a
config), and the composition of a composite model's parts from their own model configs."""
from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from gloss.errors import GlossError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def on_cpu(accelerator: str, value, otherwise=None):
    """`value` when the Trainer runs on the CPU, else `otherwise` (trainer=ddp: 32-true precision on CPU processes)."""
    return value if accelerator == "cpu" else otherwise


def register_resolvers() -> None:
    resolvers = {"gloss.on_cpu": on_cpu, "gloss.isatty": lambda: sys.stdout.isatty()}
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def model_config(name: str) -> DictConfig:
    """conf/model/<name>.yaml as composed by Hydra (its defaults list included; also from a hydra.searchpath the run
    added), interpolations left unresolved so that they resolve against the run's config (${retriever}, ${seed}, ...)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException

    overrides = [f"model={name}", "~tuned"]  # the model alone: no per-dataset choices
    if HydraConfig.initialized() and HydraConfig.get().searchpath:
        overrides.append(f"hydra.searchpath=[{','.join(HydraConfig.get().searchpath)}]")
    try:
        if GlobalHydra.instance().is_initialized():
            return compose(config_name="config", overrides=overrides).model
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=overrides).model
    except HydraException as e:
        known = ", ".join(sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml")))
        raise GlossError(f"model.sources: no model config {name!r} (conf/model/{name}.yaml; known: {known})") from e


def compose_parts(cfg: DictConfig) -> None:
    """A composite model's `sources` (model config names) become full model nodes under `model.parts`, in place: each
    is conf/model/<name>.yaml (its recipe included) with the composite's exclude_seen and `model.parts.<name>` merged
    over it. Per-dataset choices (conf/tuned/) are those of a model run on its own and do not apply to parts. A part
    that already has a `_target_` (a saved run's config, or one written out in full) is kept as it is."""
    model = cfg.model
    if "sources" not in model:
        return
    given = model.get("parts") or {}
    parts = {}
    for name in model.sources:
        settings = given.get(name)
        if settings is not None and "_target_" in settings:
            parts[name] = settings
            continue
        parts[name] = OmegaConf.merge(model_config(name), {"exclude_seen": "${model.exclude_seen}"}, settings or {})
    with open_dict(cfg):
        model.parts = parts
