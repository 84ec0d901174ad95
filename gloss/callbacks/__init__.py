from gloss.callbacks.log_progress import LogProgress
from gloss.callbacks.ranking_eval import RankingEvalCallback

__all__ = ["LogProgress", "RankingEvalCallback"]
