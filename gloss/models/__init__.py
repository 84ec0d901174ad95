from gloss.models.base import Ranking, Recommender, RunContext, ScoringRecommender

__all__ = ["Ranking", "Recommender", "RunContext", "ScoringRecommender"]
