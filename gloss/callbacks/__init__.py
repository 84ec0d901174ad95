from gloss.callbacks.ranking_eval import RankingEvalCallback

__all__ = ["RankingEvalCallback"]
