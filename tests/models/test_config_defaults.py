"""A model's settings live in one place, its YAML: the class that conf/model/<name>.yaml (conf/retriever/,
conf/datamodule/) instantiates repeats none of the YAML's values as signature defaults, takes every key the YAML sets,
and needs nothing the YAML leaves out.

Rules, per config file and every node in it with a `_target_` (the model, its backbone, a generator's collaborative
model, a hybrid retriever's sides), for the class or function the target names (a class: its __init__ and, through
**kwargs, its base classes'):
- every key of the node is a parameter, except `recipe` and `parts`, which say how a model trains (the run reads them;
  gloss.config composes a GLoSS+'s parts), and Hydra's own `_target_`-style keys;
- a parameter the node sets has no default. The one exception: several nodes can share a target (the generator
  presets), and a parameter that one of them leaves out may keep a default of None (the feature off there);
- every parameter without a default is set by the node (no class needs a value the config does not give), except in
  a `_partial_` node, whose remaining arguments the caller gives (a backbone gets the data and the seed).
Interpolated values (${retriever}, ${seed}) and nested nodes count as set; their values are not compared.
"""
from __future__ import annotations

import inspect
from collections import defaultdict
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_object
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[2] / "conf"
NOT_ARGUMENTS = {"recipe", "parts"}
GROUPS = ("model", "retriever", "datamodule")
PASSED_BY_THE_RUN = {"datamodule": {"data", "max_len", "encoder"}}  # DataModule arguments the model hands over


def node(group: str, name: str) -> dict:
    """conf/<group>/<name>.yaml as composed (defaults lists applied, no dataset's tuned/ choices), unresolved."""
    if group == "datamodule":  # no defaults list; a model's recipe composes it into the model node
        return OmegaConf.to_container(OmegaConf.load(CONF / group / f"{name}.yaml"), resolve=False)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"{group}={name}", "~tuned", "paths.data_dir=/tmp", "paths.cache_dir=/tmp"])
    return OmegaConf.to_container(cfg[group], resolve=False)


def parameters(target: str) -> dict[str, inspect.Parameter]:
    """The named parameters a call of `target` accepts: a function's; a class's __init__'s, and its bases' while an
    __init__ passes **kwargs up."""
    obj = get_object(target)
    if not isinstance(obj, type):
        return {p.name: p for p in inspect.signature(obj).parameters.values()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    params: dict[str, inspect.Parameter] = {}
    for klass in obj.__mro__:
        if "__init__" not in vars(klass):
            continue
        signature = inspect.signature(klass.__init__).parameters.values()
        for p in signature:
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                params.setdefault(p.name, p)
        if not any(p.kind is p.VAR_KEYWORD for p in signature):
            break
    return params


def target_nodes(node: dict, where: str):
    """(where, node) of `node` and of every node with a `_target_` inside it (not inside `recipe` or `parts`)."""
    if "_target_" in node:
        yield where, node
    for key, value in node.items():
        if isinstance(value, dict) and key not in NOT_ARGUMENTS:
            yield from target_nodes(value, f"{where}.{key}")


def arguments(node: dict) -> set[str]:
    return {k for k in node if not k.startswith("_") and k not in NOT_ARGUMENTS}


CONFIGS = [(group, p.stem) for group in GROUPS for p in sorted((CONF / group).glob("*.yaml"))]
NODES = {f"conf/{group}/{name}.yaml:{where}": (group, n) for group, name in CONFIGS
         for where, n in target_nodes(node(group, name), group)}
SET_BY_TARGET: dict[str, list[set[str]]] = defaultdict(list)  # _target_ -> the keys each node of it sets
for _, n in NODES.values():
    SET_BY_TARGET[n["_target_"]].append(arguments(n))


@pytest.mark.parametrize("where", list(NODES))
def test_the_yaml_alone_holds_the_values(where):
    group, n = NODES[where]
    target, keys = n["_target_"], arguments(n)
    params = parameters(target)
    where = f"{where} ({target})"
    assert not keys - set(params), f"{where}: {sorted(keys - set(params))} are not its arguments"
    left_out_elsewhere = set().union(*(set(params) - other for other in SET_BY_TARGET[target]))
    for key in sorted(keys):
        default = params[key].default
        if default is inspect.Parameter.empty:
            continue
        assert key in left_out_elsewhere and default is None, (
            f"{where} sets {key}, and the code repeats a default ({key}={default!r}): the value belongs in the YAML only")
    if n.get("_partial_"):
        return
    required = {k for k, p in params.items() if p.default is inspect.Parameter.empty}
    missing = required - keys - NOT_ARGUMENTS - PASSED_BY_THE_RUN.get(group, set())
    assert not missing, f"{where} leaves out {sorted(missing)}, which it requires"
