"""Hydra entry point: `python run.py dataset=toys model=lis retriever=bm25` (see conf/ and README.md)."""
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gloss.errors import user_error
from gloss.experiment import run_experiment


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    try:
        summary = run_experiment(cfg, Path(HydraConfig.get().runtime.output_dir))
    except Exception as e:
        if (err := user_error(e)) is None:
            raise
        for handler in logging.getLogger().handlers:  # into run.log; the console gets the one line below
            if isinstance(handler, logging.FileHandler):
                handler.emit(logging.LogRecord("gloss", logging.ERROR, __file__, 0, "%s", (err,), None))
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    return summary["overall"][cfg.get("optimized_metric", "ndcg@5")]


if __name__ == "__main__":
    main()
