"""Hydra's Optuna sweeper made resumable (conf/hydra/sweeper/gloss_optuna.yaml, used by conf/hparams_search/; run.py
finds it because the repository root is on sys.path).

With a storage (hydra.sweeper.storage=sqlite:///...), rerunning the same command continues the study: its trials are
numbered after the stored ones, and so are their run folders (<sweep dir>/<trial number>, hydra.sweep.subdir), so a
rerun into the same sweep folder never meets a finished trial's folder. A sweep stopped by SIGTERM, Ctrl-C or an error
marks the trials it left RUNNING as FAIL (the sampler then ignores them; Optuna would list them as running forever).
"""
from __future__ import annotations

import logging
from typing import Any

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper as HydraOptunaSweeper

log = logging.getLogger(__name__)


def stored_study(name: str | None, storage: Any) -> Any:
    """The optuna.Study already in `storage`, or None (no storage: an in-memory study starts empty). Optuna is
    imported here, not at the top: Hydra imports every plugin module on each start and prints their warnings."""
    import optuna

    if storage is None or name is None:
        return None
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


class OptunaSweeper(HydraOptunaSweeper):
    def sweep(self, arguments: list[str]) -> None:
        impl = self.sweeper
        study = stored_study(impl.study_name, impl.storage)
        first = len(study.trials) if study is not None else 0
        impl.job_idx = first  # Hydra numbers jobs (and so trial folders) from here: the study's next trial number
        if first:
            log.info("study %s: %d stored trial(s); new trials start at %d", impl.study_name, first, first)
        try:
            super().sweep(arguments)
        except BaseException:
            from optuna.trial import TrialState

            if (study := stored_study(impl.study_name, impl.storage)) is not None:
                for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                    if trial.number >= first:  # this sweep's; another process's running trials are left alone
                        study.tell(trial.number, state=TrialState.FAIL)
            raise
