"""Rank a finished run's users again with its saved model, no training: `python eval.py run_dir=<run folder>`."""
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import gloss  # noqa: F401  (registers the config resolvers)
from gloss.cli import hydra_entry, one_line_errors
from gloss.experiment import run_experiment


@hydra.main(config_path="conf", config_name="eval", version_base="1.3")
@one_line_errors
def main(cfg: DictConfig) -> None:
    run_experiment(cfg, Path(HydraConfig.get().runtime.output_dir), saved_run=Path(cfg.run_dir).expanduser())


if __name__ == "__main__":
    hydra_entry(main)
