"""Every setting whose bad value would fail late (after loading data or training) or silently leak, checked in one
place before any work: each bad value is a GlossError naming the key and what it must be."""
from __future__ import annotations

import inspect
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig

from gloss.errors import GlossError
from gloss.eval import METRIC_KEYS
from gloss.models import TrainableRecommender


def validate_config(cfg: DictConfig, trains: bool = True) -> None:
    """Raise GlossError on the first bad setting. `trains=False`: the model comes from a saved run (eval.py), so
    training's need for validation users does not apply."""
    data = cfg.dataset
    require_int("dataset.min_user_interactions", data.get("min_user_interactions", 3), 3,
                "leave-one-out holds out a test and a validation target and trains on an earlier item: with fewer, "
                "targets leak across splits")
    val_fraction = data.get("val_fraction", 0.05)
    if not is_number(val_fraction) or not 0 <= val_fraction <= 1:
        raise GlossError(f"dataset.val_fraction={val_fraction!r}: must be a number from 0 to 1 (the share of users "
                         "held out for validation)")
    for key in ("strict", "all_prefixes", "download"):
        require_bool(f"dataset.{key}", data.get(key, False))
    power_percentile = data.get("power_percentile", 90.0)
    if not is_number(power_percentile) or not 0 <= power_percentile <= 100:
        raise GlossError(f"dataset.power_percentile={power_percentile!r}: must be a number from 0 to 100")
    require_int("dataset.cold_max_length", data.get("cold_max_length", 5), 0, "the cold segment's longest sequence")
    if data.get("power_min_length") is not None:
        require_int("dataset.power_min_length", data.power_min_length, 0, "or null: the power segment's threshold")

    require_int("eval.k", cfg.eval.get("k"), 10, "Recall/NDCG@5 and @10 are read from the top-k list")
    if cfg.eval.get("max_users") is not None:
        require_int("eval.max_users", cfg.eval.max_users, 1, "or null: users ranked per split")
    require_bool("eval.val", cfg.eval.get("val", False))
    metric = cfg.get("optimized_metric")
    if metric is not None:
        split, _, name = str(metric).partition("/")
        if split != "val" or name not in METRIC_KEYS:
            raise GlossError(f"optimized_metric={metric}: must be val/<metric> with <metric> one of "
                             f"{', '.join(METRIC_KEYS)} (sweeps tune on validation users, never on test)")

    check_datamodule_overrides(cfg)
    if val_fraction == 0 and (why := needs_validation_users(cfg, trains)) is not None:
        raise GlossError(f"dataset.val_fraction=0: must be above 0 (at most 1) here: there would be no validation "
                         f"users, and {why}")


def trained_units(cfg: DictConfig) -> dict[str, DictConfig]:
    """The model nodes with a recipe: `model` itself, or a composite's `model.parts.<name>`."""
    units = {"model": cfg.model} if cfg.model.get("recipe") is not None else {}
    for name, part in (cfg.model.get("parts") or {}).items():
        if part is not None and part.get("recipe") is not None:
            units[f"model.parts.{name}"] = part
    return units


def check_datamodule_overrides(cfg: DictConfig) -> None:
    """A value set in the run's `datamodule` node applies to every trained model's DataModule: each must take it."""
    keys = [key for key, value in (cfg.get("datamodule") or {}).items() if value is not None]
    for where, node in trained_units(cfg).items():
        datamodule = node.recipe.get("datamodule")
        if not keys or datamodule is None:
            continue
        cls = get_class(datamodule._target_)
        params = inspect.signature(cls).parameters
        for key in keys:
            if key not in params:
                raise GlossError(f"datamodule.{key}: not a setting of {cls.__name__}, the DataModule of {where} "
                                 f"(set it for that model alone: {where}.recipe.datamodule.{key})")


def needs_validation_users(cfg: DictConfig, trains: bool) -> str | None:
    """Why this run needs validation users, or None."""
    if cfg.eval.get("val", False):
        return "eval.val=true ranks them"
    if cfg.get("optimized_metric") is not None:
        return f"optimized_metric={cfg.optimized_metric} is measured on them"
    if trains and trains_model(cfg):
        return (f"training monitors {cfg.get('monitor')} on them (checkpoints, early stopping); only train=false or a "
                "model without training may run without them")
    return None


def trains_model(cfg: DictConfig) -> bool:
    """Whether this run fits a TrainableRecommender (decided from the config's class, nothing is built)."""
    target = cfg.model.get("_target_")
    return bool(cfg.get("train", True)) and target is not None and issubclass(get_class(target), TrainableRecommender)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def require_int(key: str, value: Any, minimum: int, why: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise GlossError(f"{key}={value!r}: must be an integer >= {minimum} ({why})")


def require_bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise GlossError(f"{key}={value!r}: must be true or false")
