"""Recommendations for one history from a finished run: `python predict.py run_dir=<run> history='[A,B,C]' k=10`.

stdout holds only the JSON list [{"asin", "title", "score"}, ...]; everything else goes to stderr."""
import contextlib
import json
import logging
import sys

import hydra
from omegaconf import DictConfig

import gloss  # noqa: F401  (registers the config resolvers)
from gloss.cli import one_line_errors


@hydra.main(config_path="conf", config_name="predict", version_base="1.3")
@one_line_errors
def main(cfg: DictConfig) -> None:
    from gloss.predict import predict

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="[%(name)s] %(message)s")
    with contextlib.redirect_stdout(sys.stderr):  # libraries that print must not break the JSON on stdout
        result = predict(cfg)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
