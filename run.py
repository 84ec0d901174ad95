"""Hydra entry point: `python run.py dataset=toys model=lis retriever=bm25` (see conf/ and README.md)."""
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import gloss  # noqa: F401  (registers the config resolvers)
from gloss.cli import hydra_entry, one_line_errors
from gloss.experiment import optimized_value, run_experiment


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
@one_line_errors
def main(cfg: DictConfig) -> float | None:
    summaries = run_experiment(cfg, Path(HydraConfig.get().runtime.output_dir))
    return optimized_value(cfg, summaries)


if __name__ == "__main__":
    hydra_entry(main)
