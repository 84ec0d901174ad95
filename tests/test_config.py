"""The config layout: a model node holds everything about its model (its training `recipe` included); trainer/,
callbacks/ and `datamodule` hold the hardware and the user's overrides, which win over every recipe; every pinned
experiment composes to the settings it had before the layout changed (tests/golden/effective_settings.json)."""
from __future__ import annotations

import json
import subprocess

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class
from omegaconf import OmegaConf

from gloss.config import compose_parts
from gloss.models import Recommender, TrainableRecommender
from gloss.models.base import build_model
from gloss.config import set_values, training_settings
from tests.conftest import CONF, REPO, composed

GOLDEN = json.loads((REPO / "tests" / "golden" / "effective_settings.json").read_text())
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
PATHS = ["paths.data_dir=/DATA", "paths.cache_dir=/CACHE"]


def no_nulls_or_partial(x):
    if isinstance(x, dict):
        return {k: no_nulls_or_partial(v) for k, v in x.items() if v is not None and k != "_partial_"}
    return [no_nulls_or_partial(v) for v in x] if isinstance(x, list) else x


def effective(node, cfg) -> dict:
    """One fit unit as the golden file records it: the model's constructor settings and, for a trained model, the
    Trainer / callbacks / DataModule it trains with (nulls dropped: a null is the class's default either way)."""
    settings = OmegaConf.to_container(node, resolve=True)
    recipe = settings.pop("recipe", None)
    settings.pop("parts", None)
    training = None
    if issubclass(get_class(node._target_), TrainableRecommender):
        training = {key: set_values(value) for key, value in training_settings(recipe, cfg).items()}
    return {"model": no_nulls_or_partial(settings), "training": training}


def effective_settings(overrides: list[str]) -> dict:
    cfg = compose("config", overrides=overrides + PATHS)
    compose_parts(cfg)
    entry = effective(cfg.model, cfg)
    if "sources" in cfg.model:
        entry["parts"] = {name: effective(cfg.model.parts[name], cfg) for name in cfg.model.sources}
    return entry


def test_every_pinned_experiment_and_the_default_compose_to_the_settings_they_had_before():
    """Every conf/experiment/*.yaml, the default, every model alone, the per-dataset choices, debug=fast, user
    overrides, hardware groups and GLoSS+ with the generator as a source: the same model and training settings as
    the config layout before model nodes held their recipe, so no published number needs re-running."""
    cases = GOLDEN["cases"]
    assert {f"experiment={name}" for name in EXPERIMENTS} <= set(cases) and "default" in cases
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for label, overrides in cases.items():
            assert effective_settings(overrides) == GOLDEN["settings"][label], label


@pytest.mark.parametrize("name", MODELS)
def test_every_model_composes_builds_and_keeps_its_recipe_out_of_the_constructor(name):
    cfg = composed(f"model={name}", *PATHS, *(["model.path=x"] if name == "precomputed" else []))
    compose_parts(cfg)
    model = build_model(cfg.model)
    assert isinstance(model, Recommender)
    trained = isinstance(model, TrainableRecommender)
    assert (model.recipe is not None) == trained, "trained models (and only they) have a recipe"
    if trained:  # the recipe says everything a run needs: its DataModule, epochs, validation users, patience
        assert model.recipe["datamodule"]["_target_"] and model.recipe["trainer"]["max_epochs"] > 0
        settings = training_settings(model.recipe, cfg)
        assert settings["trainer"]["accelerator"] == "cpu" and settings["datamodule"]["seed"] == 42


@pytest.mark.parametrize("name", [m for m in MODELS if m not in ("precomputed",)])
def test_a_trainer_override_trains_every_model_and_every_part_that_many_epochs(name):
    cfg = composed(f"model={name}", "trainer.max_epochs=1", "model.sources=[sasrec,gloss_scratch,cooc]"
                   if name == "gloss_plus" else "seed=42", *PATHS)
    compose_parts(cfg)
    nodes = [cfg.model, *(cfg.model.get("parts") or {}).values()]
    trained = [n for n in nodes if n.get("recipe") is not None]
    assert trained or not issubclass(get_class(cfg.model._target_), TrainableRecommender)
    for node in trained:
        assert training_settings(OmegaConf.to_container(node.recipe, resolve=True), cfg)["trainer"]["max_epochs"] == 1


def test_values_set_in_trainer_callbacks_and_datamodule_win_over_the_recipe_and_nulls_leave_it():
    def settings(*overrides):
        cfg = composed(*overrides, *PATHS)
        return training_settings(OmegaConf.to_container(cfg.model.recipe, resolve=True), cfg)

    assert settings("model=sasrec")["trainer"]["max_epochs"] == 200
    assert settings("model=sasrec")["callbacks"]["early_stopping"]["patience"] == 5
    user = settings("model=sasrec", "trainer.max_epochs=5", "callbacks.early_stopping.patience=2",
                    "datamodule.batch_size=7")
    assert (user["trainer"]["max_epochs"], user["callbacks"]["early_stopping"]["patience"],
            user["datamodule"]["batch_size"]) == (5, 2, 7)
    assert settings("model=sasrec", "experiment=sasrec_ce_beauty", "trainer.max_epochs=3")["trainer"]["max_epochs"] == 3
    generator = settings("model=gloss_scratch", "dataset=toys")
    assert generator["trainer"]["max_epochs"] == 8 and "early_stopping" not in generator["callbacks"]
    assert settings("model=gloss_scratch", "dataset=toys", "trainer.max_epochs=3")["trainer"]["max_epochs"] == 3
    fast = settings("model=gloss_scratch", "debug=fast")
    assert fast["trainer"]["max_steps"] == 3 and fast["callbacks"]["ranking_eval"]["max_users"] == 50
    assert settings("model=gloss_scratch", "callbacks=none")["callbacks"] == {}
    assert settings("model=llama3_1_8b")["datamodule"]["batch_size"] == 2
    assert settings("model=llama3_1_8b", "trainer=gpu")["trainer"]["precision"] == "bf16-mixed"
    ddp = settings("model=sasrec", "trainer=ddp", "trainer.accelerator=cpu")
    assert ddp["trainer"]["strategy"] == "ddp" and ddp["trainer"]["precision"] == "32-true"


def test_a_source_is_any_model_config_with_the_composites_settings_over_it():
    cfg = composed("model=gloss_plus", "model.sources=[bert4rec,lis]", "+model.parts.bert4rec.hidden=32",
                   "model.exclude_seen=false", *PATHS)
    compose_parts(cfg)
    assert set(cfg.model.parts) == {"bert4rec", "lis"}  # adjustments of unused sources (sasrec) are dropped
    assert cfg.model.parts.bert4rec.hidden == 32 and cfg.model.parts.bert4rec.recipe.trainer.max_epochs == 200
    assert cfg.model.parts.lis.exclude_seen is False
    model = build_model(cfg.model)
    part = model.part_factories["bert4rec"]()
    assert part is not model.part_factories["bert4rec"]() and part.recipe["datamodule"]["batch_size"] == 128


def test_configs_are_self_contained():
    """No model or experiment config writes into the global package through a defaults entry (conf/tuned/ and
    conf/debug/ are the documented per-dataset and debug files); conf/source/ is gone."""
    found = subprocess.run(["grep", "-rl", "@_global_", "conf/model", "conf/experiment"], cwd=REPO,
                           capture_output=True, text=True).stdout
    assert found == ""
    assert not (CONF / "source").exists()


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_config_builds_its_model(name):
    """A pinned row must stay runnable: a misspelt or renamed key in conf/experiment/ fails here, not after training."""
    cfg = composed(f"experiment={name}", *PATHS)
    compose_parts(cfg)
    assert isinstance(build_model(cfg.model), Recommender)


def test_per_dataset_choices_apply_to_their_model_and_dataset_only_and_overrides_win():
    def generator(dataset, *overrides):
        cfg = composed(f"dataset={dataset}", *overrides, *PATHS)
        return cfg.model, training_settings(OmegaConf.to_container(cfg.model.recipe, resolve=True), cfg)["trainer"]

    assert [generator(d)[1]["max_epochs"] for d in ("beauty", "toys", "sports")] == [9, 8, 4]
    assert [generator(d)[0].backbone.item_start_epoch for d in ("beauty", "toys", "sports")] == [4, 4, 2]
    assert [generator(d)[0].rerank.collaborative_weight for d in ("beauty", "toys", "sports")] == [32, 4, 16]
    assert generator("toys", "trainer.max_epochs=3")[1]["max_epochs"] == 3
    assert generator("toys", "model=sasrec")[1]["max_epochs"] == 200
    datasets = {p.stem for p in (CONF / "dataset").glob("*.yaml")}
    for path in (CONF / "tuned").glob("*.yaml"):  # `optional` in the defaults: a misnamed file is never read
        assert any(path.stem == f"{m}_{d}" for m in MODELS for d in datasets), f"{path.name}: not <model>_<dataset>"
