from gloss.retrieval.base import Retriever
from gloss.retrieval.bm25 import BM25Retriever
from gloss.retrieval.dense import DenseRetriever
from gloss.retrieval.fusion import FUSION_MODES, fuse, retrieve_and_fuse
from gloss.retrieval.hybrid import HybridRetriever

__all__ = ["Retriever", "BM25Retriever", "DenseRetriever", "FUSION_MODES", "fuse", "retrieve_and_fuse", "HybridRetriever"]
