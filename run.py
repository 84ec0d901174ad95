"""Hydra entry point: `python run.py dataset=toys model=lis retriever=bm25` (see conf/ and README.md)."""
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gloss.errors import GlossError
from gloss.experiment import run_experiment


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    try:
        summary = run_experiment(cfg, Path(HydraConfig.get().runtime.output_dir))
    except GlossError as e:
        logging.getLogger("gloss").error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    return summary["overall"][cfg.get("optimized_metric", "ndcg@5")]


if __name__ == "__main__":
    main()
