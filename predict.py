"""Recommendations from a finished run.

One history: `python predict.py run_dir=<run> history='[A,B,C]' k=10`: stdout holds only the JSON list
[{"asin", "title", "score"}, ...]. Every user: `python predict.py run_dir=<run> users=all out=recs.parquet k=100`
(gloss.batch_predict): stdout holds only the JSON {"out", "users", "rows"}. Everything else goes to stderr."""
import contextlib
import json
import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, ListConfig

import gloss  # noqa: F401  (registers the config resolvers)
from gloss.cli import hydra_entry, one_line_errors
from gloss.errors import GlossError


def positive_int(key: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise GlossError(f"{key}={value!r}: must be a positive integer")


def check_history(cfg: DictConfig) -> None:
    if not isinstance(cfg.history, (list, ListConfig)) or not len(cfg.history):
        raise GlossError(f"history={cfg.history!r}: give a non-empty list of ASINs, e.g. history='[B0001,B0002]'")
    if any(not str(entry).strip() for entry in cfg.history):
        raise GlossError(f"history={list(cfg.history)}: an empty entry is neither an ASIN nor a title")
    if not isinstance(cfg.titles, bool):
        raise GlossError(f"titles={cfg.titles!r}: must be true or false")


def check_batch(cfg: DictConfig) -> None:
    if not isinstance(cfg.users, str) or not cfg.users.strip():
        raise GlossError(f"users={cfg.users!r}: `all` or a file with one user id per line")
    if not isinstance(cfg.out, str) or not cfg.out.endswith(".parquet"):
        raise GlossError(f"out={cfg.out!r}: users= writes a Parquet file: give out=<file>.parquet")
    if not Path(cfg.out).expanduser().parent.is_dir():
        raise GlossError(f"out={cfg.out}: its folder does not exist")
    positive_int("chunk_users", cfg.chunk_users)


@hydra.main(config_path="conf", config_name="predict", version_base="1.3")
@one_line_errors
def main(cfg: DictConfig) -> None:
    batch = cfg.users is not None
    if batch and cfg.history is not None:
        raise GlossError("history= and users= both given: one history (JSON on stdout) or users=all|<file> (out=)")
    if not batch and cfg.history is None:
        raise GlossError("give history='[ASIN,...]' (one history) or users=all|<file> out=<file>.parquet (every user)")
    check_batch(cfg) if batch else check_history(cfg)
    positive_int("k", cfg.k)
    from gloss.eval.sharded import engine_settings
    from gloss.run_folder import load_run

    engine = engine_settings(cfg.engine, "engine")
    if batch:
        from gloss.eval.sharded import prestart

        prestart(engine)  # the cluster starts while the run loads
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="[%(name)s] %(message)s")
    with contextlib.redirect_stdout(sys.stderr):  # libraries that print must not break the JSON on stdout
        run = load_run(cfg.run_dir, {"trainer": cfg.trainer})
        if batch:
            from gloss.batch_predict import predict_all
            from gloss.models.base import configure_ranking

            configure_ranking(run.cfg.eval.get("rank_memory_mb"))  # the run's bound on a dense ranking block
            result = predict_all(run, Path(cfg.run_dir), cfg.users, Path(cfg.out), cfg.k, cfg.chunk_users, engine)
        else:
            result = run.recommend([str(e) for e in cfg.history], cfg.k, titles=cfg.titles)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    hydra_entry(main)
