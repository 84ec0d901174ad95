from gloss.callbacks.epoch_seed import EpochSeed
from gloss.callbacks.log_progress import LogProgress
from gloss.callbacks.ranking_eval import RankingEvalCallback

__all__ = ["EpochSeed", "LogProgress", "RankingEvalCallback"]
