"""gloss: GLoSS-style generative sequential recommendation, reproducible under Hydra."""
from gloss.config import register_resolvers

register_resolvers()
