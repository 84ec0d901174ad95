"""Models and retrievers as their config files build them, for tests that construct one directly.

Every value a model or retriever class needs lives in its YAML (conf/model/<name>.yaml, conf/retriever/<name>.yaml),
not in the class signature; `make_model("sasrec", max_len=8, hidden=16)` is that config with two values changed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from gloss.models.base import Recommender
from gloss.retrieval import Retriever

CONF = str(Path(__file__).resolve().parents[2] / "conf")
NOT_ARGUMENTS = ("recipe", "parts")  # model-node keys that say how a model trains, not constructor arguments


def is_plain(value: Any) -> bool:
    """A value a config can hold (merged into the YAML's node); anything else is passed to the class as it is."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    return False


def composed(group: str, name: str):
    """The run's config with conf/<group>/<name>.yaml chosen (paths under /tmp; no dataset's tuned/ choices)."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=[f"{group}={name}", "~tuned", "paths.data_dir=/tmp", "paths.cache_dir=/tmp"])


def settings(group: str, name: str) -> dict[str, Any]:
    """The arguments conf/<group>/<name>.yaml gives its class, resolved, as plain values (nested nodes as dicts)."""
    node = OmegaConf.to_container(composed(group, name)[group], resolve=True)
    return {key: value for key, value in node.items() if key not in NOT_ARGUMENTS and not key.startswith("_")}


def build(group: str, name: str, overrides: dict[str, Any]) -> Any:
    """conf/<group>/<name>.yaml's class called with the YAML's arguments, each of `overrides` in place of the YAML's
    value (a dict replaces the whole node: pass every key it needs). Plain values go through the config (nested
    `_target_` nodes are instantiated as in a run); other objects (a retriever, a backbone function) are passed as
    they are."""
    cfg = composed(group, name)
    objects = {key: value for key, value in overrides.items() if not is_plain(value)}
    with open_dict(cfg):
        for key, value in overrides.items():
            if key not in objects:
                cfg[group][key] = value
        for key in (*NOT_ARGUMENTS, *objects):
            cfg[group].pop(key, None)
    node = OmegaConf.to_container(cfg[group], resolve=True)  # interpolations (${retriever}, ${seed}) resolved here
    return instantiate(node, _partial_=True)(**objects)


def make_model(name: str, **overrides: Any) -> Recommender:
    """conf/model/<name>.yaml's model, `overrides` in place of its values: make_model("sasrec", max_len=8, hidden=16),
    make_model("lis", retriever=make_retriever("bm25"))."""
    return build("model", name, overrides)


def make_retriever(name: str = "bm25", **overrides: Any) -> Retriever:
    """conf/retriever/<name>.yaml's retriever, `overrides` in place of its values."""
    return build("retriever", name, overrides)
