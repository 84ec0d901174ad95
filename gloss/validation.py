"""Every setting whose bad value would fail late (after loading data or training) or silently leak, checked in one
place before any work: each bad value is a GlossError naming the key and what it must be."""
from __future__ import annotations

import codecs
import inspect
import os
import types
import typing
from pathlib import Path
from typing import Any, Callable

from hydra.utils import get_class, get_method
from omegaconf import DictConfig, ListConfig, OmegaConf

from gloss.config import training_settings
from gloss.errors import GlossError
from gloss.eval import METRIC_KEYS
from gloss.eval.sharded import engine_settings
from gloss.models import TrainableRecommender


def validate_config(cfg: DictConfig, trains: bool = True) -> None:
    """Raise GlossError on the first bad setting. `trains=False`: the model comes from a saved run (eval.py), so
    training's need for validation users does not apply."""
    check_dataset(cfg.dataset)

    require_int("eval.k", cfg.eval.get("k"), 10, "Recall/NDCG@5 and @10 are read from the top-k list")
    if cfg.eval.get("max_users") is not None:
        require_int("eval.max_users", cfg.eval.max_users, 1, "or null: users ranked per split")
    require_bool("eval.val", cfg.eval.get("val", False))
    require_int("eval.rank_memory_mb", cfg.eval.get("rank_memory_mb"), 1, "MiB one dense ranking block may take")
    engine_settings(cfg.eval.get("engine"), "eval.engine")  # the ranking engine's keys (gloss.eval.sharded)
    metric = cfg.get("optimized_metric")
    if metric is not None:
        split, _, name = str(metric).partition("/")
        if split != "val" or name not in METRIC_KEYS:
            raise GlossError(f"optimized_metric={metric}: must be val/<metric> with <metric> one of "
                             f"{', '.join(METRIC_KEYS)} (sweeps tune on validation users, never on test)")

    require_int("seed", cfg.get("seed"), 0, "random state of the split, sampling and training")
    for key in ("paths.cache_dir", "dataset.cache_dir"):
        if isinstance(value := OmegaConf.select(cfg, key, throw_on_resolution_failure=False), str):
            check_writable_folder(key, value)
    check_types(OmegaConf.to_container(cfg.model, resolve=True), "model")
    check_model_ranges(OmegaConf.to_container(cfg.model, resolve=True), "model")
    check_datamodule_overrides(cfg)
    if isinstance(cfg.get("trainer"), DictConfig):
        check_accelerator(OmegaConf.to_container(cfg.trainer, resolve=True))
    for where, node in trained_units(cfg).items():
        settings = training_settings(OmegaConf.to_container(node.recipe, resolve=True), cfg)
        check_types(settings["trainer"], "trainer")
        check_accelerator(settings["trainer"])
        if settings["datamodule"] is not None:
            check_types(settings["datamodule"], "datamodule")
    if (no_val := no_validation_users(cfg.dataset)) and (why := needs_validation_users(cfg, trains)) is not None:
        raise GlossError(f"{no_val} here: there would be no validation users, and {why}")


def check_dataset(data: DictConfig) -> None:
    """The dataset node's keys (docs/datasets.md), before any file is read."""
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
    if data.get("k_core") is not None:
        require_int("dataset.k_core", data.k_core, 1, "or null: users and items need at least this many interactions")
    source = data.get("source", "offline")
    require_choice("dataset.source", source, ("offline", "official", "table"))
    split = data.get("split", "leave_one_out")
    require_choice("dataset.split", split, ("leave_one_out", "temporal"))
    val_q, test_q = data.get("temporal_val_quantile", 0.8), data.get("temporal_test_quantile", 0.9)
    for key, q in (("temporal_val_quantile", val_q), ("temporal_test_quantile", test_q)):
        if not is_number(q) or not 0 < q < 1:
            raise GlossError(f"dataset.{key}={q!r}: must be a number above 0 and below 1 (a quantile of all "
                             "interactions' timestamps)")
    if val_q > test_q:
        raise GlossError(f"dataset.temporal_val_quantile={val_q} is above dataset.temporal_test_quantile={test_q}: "
                         "the validation period must come before the test period")
    if source != "table":
        if split == "temporal":
            raise GlossError(f"dataset.split=temporal needs timestamps: dataset.source={source} gives sequences only "
                             "(use a source=table dataset with a timestamp column)")
        return
    interactions = data.get("interactions")
    if not isinstance(interactions, DictConfig):
        raise GlossError("dataset.interactions: source=table needs the interactions table's node (file, user, item, "
                         "timestamp, ...; see conf/dataset/table.yaml)")
    check_table_file("dataset.interactions", interactions)
    for key in ("user", "item"):
        require_name(f"dataset.interactions.{key}", interactions.get(key))
    if interactions.get("timestamp") is not None:
        require_name("dataset.interactions.timestamp", interactions.timestamp)
        require_choice("dataset.interactions.timestamp_unit", interactions.get("timestamp_unit", "s"),
                       ("s", "ms", "us", "ns", "datetime"))
    elif split == "temporal":
        raise GlossError("dataset.split=temporal needs dataset.interactions.timestamp (a timestamp column)")
    items = data.get("items")
    if items is None:
        return
    if not isinstance(items, DictConfig):
        raise GlossError(f"dataset.items={items!r}: must be the item table's node (file, item, text, ...) or null")
    check_table_file("dataset.items", items)
    require_name("dataset.items.item", items.get("item"))
    text = items.get("text")
    if not isinstance(text, ListConfig) or not text:
        raise GlossError(f"dataset.items.text={text!r}: must be a non-empty list of column names (joined into the "
                         "item's text)")
    for i, name in enumerate(text):
        require_name(f"dataset.items.text[{i}]", name)
    if not isinstance(items.get("join", " "), str):
        raise GlossError(f"dataset.items.join={items.join!r}: must be a string (what goes between text fields)")


def check_table_file(key: str, node: DictConfig) -> None:
    """The keys of conf/dataset/_shared/table_file.yaml in `node`."""
    require_name(f"{key}.file", node.get("file"))
    if node.get("format") is not None:
        require_choice(f"{key}.format", node.format, ("csv", "tsv", "parquet", "jsonl"))
    sep = node.get("separator")
    if sep is not None and (not isinstance(sep, str) or not sep or any(c in sep for c in '\r\n"')):
        raise GlossError(f"{key}.separator={sep!r}: must be a non-empty string without a line break or quote, or null")
    encoding = node.get("encoding", "utf-8")
    try:
        codecs.lookup(str(encoding))
    except LookupError:
        raise GlossError(f"{key}.encoding={encoding!r}: not a text encoding Python knows (e.g. utf-8, latin-1)") from None
    require_bool(f"{key}.header", node.get("header", True))
    columns = node.get("columns")
    if columns is not None and (not isinstance(columns, ListConfig) or not all(isinstance(c, str) for c in columns)):
        raise GlossError(f"{key}.columns={columns!r}: must be a list of column names (header=false) or null")
    if node.get("header", True) is False and columns is None:
        raise GlossError(f"{key}.header=false needs {key}.columns: every column's name, in file order")
    quote = node.get("quote_char", '"')
    if quote is not None and (not isinstance(quote, str) or len(quote) != 1):
        raise GlossError(f"{key}.quote_char={quote!r}: must be one character or null")


def at_least(low: float) -> tuple[Callable[[float], bool], str]:
    return (lambda v: v >= low), f">= {low}"


PROBABILITY = ((lambda v: 0 <= v < 1), "from 0 up to (not including) 1")
# Model settings (in any model node, parts included) whose other values are meaningless; a value of another type is
# check_types's to refuse. 0 never means "all" here: history_items=0 would be no history.
MODEL_RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "window": at_least(1), "history_items": at_least(1), "n_queries": at_least(1), "depth": at_least(1),
    "max_len": at_least(1), "num_beams": at_least(1), "extra_depth": at_least(0), "rrf_k": at_least(0),
    "decay": at_least(0), "query_decay": at_least(0), "backward_weight": at_least(0),
    "dropout": PROBABILITY, "attention_dropout": PROBABILITY, "lora_dropout": PROBABILITY,
}


def check_model_ranges(node: Any, key: str) -> None:
    """Each number of MODEL_RANGES in `node` (a model's settings, parts included) is in its range."""
    if isinstance(node, list):
        for i, value in enumerate(node):
            check_model_ranges(value, f"{key}[{i}]")
    if not isinstance(node, dict):
        return
    for name, value in node.items():
        if name in MODEL_RANGES and is_number(value) and not MODEL_RANGES[name][0](value):
            raise GlossError(f"{key}.{name}={value!r}: must be {MODEL_RANGES[name][1]}")
        check_model_ranges(value, f"{key}.{name}")


def check_writable_folder(key: str, value: str) -> None:
    """`value` is a folder, or can be made one, that this process may write (caches are written there)."""
    path = Path(value).expanduser()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise GlossError(f"{key}={value}: {existing} is a file, not a folder (GLOSS_CACHE_DIR sets it)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise GlossError(f"{key}={value}: {existing} is not writable (GLOSS_CACHE_DIR sets it)")


def check_accelerator(trainer: dict) -> None:
    """A GPU trainer needs as many GPUs as it asks for, here and now (Lightning would fail after data loading)."""
    accelerator, devices = trainer.get("accelerator"), trainer.get("devices")
    if accelerator not in ("gpu", "cuda"):
        return
    import torch

    found = torch.cuda.device_count()
    if found == 0:
        raise GlossError(f"trainer.accelerator={accelerator}: no GPU here (torch sees none); use trainer=cpu")
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > found:
        raise GlossError(f"trainer.devices={devices}: only {found} GPU(s) here")


def no_validation_users(data: DictConfig) -> str | None:
    """The dataset setting that leaves no validation users, or None."""
    if data.get("split", "leave_one_out") == "temporal":
        val_q, test_q = data.get("temporal_val_quantile", 0.8), data.get("temporal_test_quantile", 0.9)
        if val_q == test_q:
            return (f"dataset.temporal_val_quantile={val_q} equals dataset.temporal_test_quantile: must be below it "
                    "(no validation period)")
        return None
    if data.get("val_fraction", 0.05) == 0:
        return "dataset.val_fraction=0: must be above 0 (at most 1)"
    return None


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


def require_name(key: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise GlossError(f"{key}={value!r}: must be a name (a non-empty string)")


def require_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise GlossError(f"{key}={value!r}: must be one of {', '.join(choices)}")


def require_bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise GlossError(f"{key}={value!r}: must be true or false")


def declared_types(target: str) -> dict[str, Any]:
    """The parameter annotations of a `_target_` (a class's __init__, its bases' included: subclasses pass keys up;
    or a function); {} when they cannot be read."""
    try:
        obj = get_class(target) if target.rsplit(".", 1)[-1][:1].isupper() else get_method(target)
    except Exception:
        return {}
    hints: dict[str, Any] = {}
    for fn in ([k.__init__ for k in reversed(obj.__mro__) if "__init__" in vars(k)] if inspect.isclass(obj) else [obj]):
        try:
            hints.update(typing.get_type_hints(fn))
        except Exception:
            continue
    return hints


SCALARS = (bool, int, float, str, type(None))


def accepts(value: Any, hint: Any) -> bool:
    """Whether `value` (a plain config value) fits the annotation: int, float (an int too), bool, str and their
    optional / union forms are checked (a list or mapping where only those are declared is refused); anything else is
    accepted."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if isinstance(value, (dict, list)):
            return not all(arg in SCALARS for arg in args)
        return any(accepts(value, arg) for arg in args)
    if isinstance(value, (dict, list)):
        return hint not in SCALARS
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return is_number(value)
    if hint is str:
        return isinstance(value, str)
    return True


def check_types(node: Any, key: str) -> None:
    """Each value of a `_target_` node (and of the nodes inside it) fits its parameter's declared type; batch sizes
    are at least 1."""
    if isinstance(node, list):
        for i, value in enumerate(node):
            check_types(value, f"{key}[{i}]")
        return
    if not isinstance(node, dict):
        return
    hints = declared_types(node["_target_"]) if isinstance(node.get("_target_"), str) else {}
    for name, value in node.items():
        if name.startswith("_") or name in ("recipe", "parts"):
            continue
        hint = hints.get(name)
        if hint is not None and not accepts(value, hint):
            shown = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
            raise GlossError(f"{key}.{name}={value!r}: must be {shown}")
        if name.endswith("batch_size") and isinstance(value, int) and value < 1:
            raise GlossError(f"{key}.{name}={value!r}: must be an integer >= 1")
        check_types(value, f"{key}.{name}")
    for name, part in (node.get("parts") or {}).items():
        check_types(part, f"{key}.parts.{name}")
