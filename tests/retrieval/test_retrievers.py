
import numpy as np
import pytest

from gloss.retrieval import DenseRetriever
from tests.models.factory import make_retriever

CATALOG = ["Title: red lipstick matte", "Title: blue shampoo for curly hair", "Title: waterproof black mascara", "Title: vitamin c serum"]


def test_bm25_stems_and_ranks():
    r = make_retriever("bm25")
    r.index(CATALOG)
    ids, scores = r.search(["shampoos for curls", "mascaras waterproofing"], k=2)
    assert ids[:, 0].tolist() == [1, 2]
    assert scores[0, 0] > scores[0, 1]


def test_bm25_no_overlap_is_no_hit():
    r = make_retriever("bm25")
    r.index(CATALOG)
    ids, _ = r.search(["zzz qqq"], k=2)
    assert ids.tolist() == [[-1, -1]]


@pytest.fixture(scope="module")
def dense(tmp_path_factory) -> DenseRetriever:
    cache = tmp_path_factory.mktemp("cache")
    r: DenseRetriever = make_retriever("dense", cache_dir=str(cache), batch_size=8)
    try:
        r.index(CATALOG)
    except Exception as e:  # noqa: BLE001 - the encoder is an optional offline package
        pytest.skip(f"all-MiniLM-L6-v2 not available offline: {e}")
    return r


def test_dense_finds_paraphrases(dense: DenseRetriever):
    ids, scores = dense.search(["lip colour in red", "eyelash makeup that resists water"], k=1)
    assert ids[:, 0].tolist() == [0, 2]
    assert np.all(scores <= 1.0 + 1e-5)


def test_dense_embeddings_are_cached_by_content(dense: DenseRetriever):
    files = sorted((dense.cache_dir / "embeddings").glob("*.npy"))
    dense.index(CATALOG)  # same texts: no new file
    assert sorted((dense.cache_dir / "embeddings").glob("*.npy")) == files
    dense.index(CATALOG[:3])
    assert len(list((dense.cache_dir / "embeddings").glob("*.npy"))) == len(files) + 1
    emb = np.load(files[0])
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)


@pytest.mark.slow  # two fresh interpreters importing gloss, bm25s and JAX
def test_bm25s_and_faiss_load_only_when_used_and_jax_stays_off_the_gpu():
    """bm25s imports JAX (when installed) and runs a JAX op at import: on a GPU machine that pre-allocates 75 % of the
    GPU's memory, and an LLaMA run then fails with out-of-memory. gloss imports bm25s only when a BM25 index is built,
    with JAX kept on the CPU unless the user chose otherwise; faiss likewise only for a dense index."""
    import os
    import subprocess
    import sys

    code = ("import os, sys; os.environ.pop('JAX_PLATFORMS', None)\n"
            "import gloss.retrieval, gloss.models, gloss.experiment\n"
            "assert 'bm25s' not in sys.modules and 'faiss' not in sys.modules, 'imported at start'\n"
            "from gloss.retrieval import BM25Retriever\n"
            "r = BM25Retriever(k1=1.5, b=0.75, method='lucene', stopwords='en'); r.index(['red shoe', 'blue hat'])\n"
            "assert 'bm25s' in sys.modules and os.environ['JAX_PLATFORMS'] == 'cpu'\n")
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    code = "import os, sys; os.environ['JAX_PLATFORMS'] = 'cuda'\n" + code.split("\n", 1)[1].replace("== 'cpu'", "== 'cuda'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]  # the user's own choice is kept
