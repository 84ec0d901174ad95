from gloss.models.base import CompositeRecommender, Ranking, Recommender, ScoringRecommender, TrainableRecommender

__all__ = ["CompositeRecommender", "Ranking", "Recommender", "ScoringRecommender", "TrainableRecommender"]
