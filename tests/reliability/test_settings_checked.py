"""Model, Trainer, DataModule and seed values are checked against what their classes take, before any data is loaded:
one line naming the key (issue: "the remaining edges of bad input")."""
from __future__ import annotations

import re

import pytest

from gloss.config import compose_parts
from gloss.errors import GlossError
from gloss.validation import validate_config
from tests.conftest import CONF, composed

PATHS = ["paths.data_dir=/DATA", "paths.cache_dir=/CACHE"]


def checked(*overrides: str) -> None:
    cfg = composed(*overrides, *PATHS)
    compose_parts(cfg)
    validate_config(cfg)


@pytest.mark.parametrize("overrides, key", [
    (["model=cooc", "model.window=abc"], "model.window='abc'"),
    (["model=cooc", "model.decay=[1]"], "model.decay="),
    (["model=cooc", "seed=abc"], "seed='abc'"),
    (["model=sasrec", "model.hidden=1.5"], "model.hidden=1.5"),
    (["model=sasrec", "model.exclude_seen=maybe"], "model.exclude_seen='maybe'"),
    (["model=sasrec", "trainer.max_epochs=abc"], "trainer.max_epochs='abc'"),
    (["model=sasrec", "datamodule.batch_size=0"], "datamodule.batch_size=0"),
    (["model=gloss_plus", "model.sources=[sasrec,cooc]", "model.parts.sasrec.dropout=high"], "model.parts.sasrec.dropout"),
    (["model=lis", "retriever=bm25", "retriever.k1=fast"], "model.retriever.k1='fast'"),
])
def test_a_value_of_the_wrong_type_is_one_line_naming_its_key(overrides, key):
    with pytest.raises(GlossError, match=re.escape(key)):
        checked(*overrides)


@pytest.mark.parametrize("overrides", [
    ["model=cooc"], ["model=sasrec", "trainer.max_epochs=5", "datamodule.batch_size=7"], ["model=gloss_scratch"],
    ["experiment=gloss_plus_beauty"], ["model=llama3_2_1b"], ["model=lis", "retriever=hybrid"],
    ["model=sasrec", "model.dropout=0"],  # an int where a float is declared
])
def test_the_shipped_configs_pass(overrides):
    checked(*overrides)


@pytest.mark.parametrize("overrides", [[f"model={p.stem}", *(["model.path=x"] if p.stem == "precomputed" else [])]
                                       for p in sorted((CONF / "model").glob("*.yaml"))]
                         + [[f"experiment={p.stem}"] for p in sorted((CONF / "experiment").glob("*.yaml"))])
def test_every_model_and_experiment_config_passes_the_checks(overrides):
    checked(*overrides)
