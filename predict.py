"""Recommendations for one history from a finished run: `python predict.py run_dir=<run> history='[A,B,C]' k=10`.

stdout holds only the JSON list [{"asin", "title", "score"}, ...]; everything else goes to stderr."""
import contextlib
import json
import logging
import sys

import hydra
from omegaconf import DictConfig, ListConfig

import gloss  # noqa: F401  (registers the config resolvers)
from gloss.cli import one_line_errors
from gloss.errors import GlossError


@hydra.main(config_path="conf", config_name="predict", version_base="1.3")
@one_line_errors
def main(cfg: DictConfig) -> None:
    if not isinstance(cfg.history, (list, ListConfig)) or not len(cfg.history):
        raise GlossError(f"history={cfg.history!r}: give a non-empty list of ASINs, e.g. history='[B0001,B0002]'")
    if any(not str(entry).strip() for entry in cfg.history):
        raise GlossError(f"history={list(cfg.history)}: an empty entry is neither an ASIN nor a title")
    if not isinstance(cfg.k, int) or isinstance(cfg.k, bool) or cfg.k < 1:
        raise GlossError(f"k={cfg.k!r}: must be a positive integer")
    if not isinstance(cfg.titles, bool):
        raise GlossError(f"titles={cfg.titles!r}: must be true or false")
    from gloss.run_folder import load_run

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="[%(name)s] %(message)s")
    with contextlib.redirect_stdout(sys.stderr):  # libraries that print must not break the JSON on stdout
        run = load_run(cfg.run_dir, {"trainer": cfg.trainer})
        result = run.recommend([str(e) for e in cfg.history], cfg.k, titles=cfg.titles)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
