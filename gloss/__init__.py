"""gloss: GLoSS-style generative sequential recommendation, reproducible under Hydra."""
