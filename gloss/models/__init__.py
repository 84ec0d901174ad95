from gloss.models.base import Ranking, Recommender, ScoringRecommender, TrainableRecommender

__all__ = ["Ranking", "Recommender", "ScoringRecommender", "TrainableRecommender"]
