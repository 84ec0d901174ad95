"""Re-rank a finished run's users with its saved model, no training: `python eval.py run_dir=<run folder>`."""
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import gloss  # noqa: F401  (registers the config resolvers)
from gloss.cli import one_line_errors
from gloss.experiment import load_run_config, run_experiment


@hydra.main(config_path="conf", config_name="eval", version_base="1.3")
@one_line_errors
def main(cfg: DictConfig) -> None:
    run_dir = Path(cfg.run_dir).expanduser()
    saved, choices = load_run_config(run_dir)
    saved = OmegaConf.merge(saved, {"trainer": cfg.trainer, "eval": cfg.eval, "ckpt_path": None, "logger": None,
                                    "optimized_metric": None})
    run_experiment(saved, Path(HydraConfig.get().runtime.output_dir), saved_run=run_dir, choices=choices)


if __name__ == "__main__":
    main()
