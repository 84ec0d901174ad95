"""Config helpers: the OmegaConf resolvers used by conf/ (registered when gloss is imported, before Hydra composes a
config), the composition of a composite model's parts from their own model configs, and the settings a model trains
with (its recipe under the run's overrides)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

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


def set_values(node: Any) -> Any:
    """A config node without its null values (a null in trainer/, callbacks/ or datamodule means "not set here")."""
    if isinstance(node, dict):
        return {k: set_values(v) for k, v in node.items() if v is not None}
    return node


def training_settings(recipe: dict | None, cfg: DictConfig) -> dict[str, Any]:
    """{"trainer", "callbacks", "datamodule"}: a model's recipe with every value set in the run's trainer/, callbacks/
    and datamodule nodes over it. A callback is dropped when the run or the recipe sets it to null; callbacks=none
    drops them all. Plain, resolved dicts."""
    recipe = recipe or {}
    run = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("trainer", "callbacks", "datamodule")
           if cfg.get(key) is not None}
    trainer = OmegaConf.merge(recipe.get("trainer") or {}, set_values(run.get("trainer") or {}))
    recipe_callbacks = recipe.get("callbacks") or {}
    callbacks = {}
    for name, node in (run.get("callbacks") or {}).items():
        if not node or (name in recipe_callbacks and recipe_callbacks[name] is None):
            continue
        callbacks[name] = OmegaConf.to_container(OmegaConf.merge(recipe_callbacks.get(name) or {}, set_values(node)))
    datamodule = recipe.get("datamodule")
    if datamodule is not None:
        datamodule = OmegaConf.to_container(OmegaConf.merge(datamodule, set_values(run.get("datamodule") or {})))
    return {"trainer": OmegaConf.to_container(trainer), "callbacks": callbacks, "datamodule": datamodule}
