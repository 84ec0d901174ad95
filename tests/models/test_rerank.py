"""The rerank stage: prefill-once likelihoods equal naive re-encoding; pools and rankings follow the config."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gloss.data.padding import left_pad_prompts
from gloss.data.prompt_datamodule import PromptEncoder
from gloss.data.prompts import PromptTemplate
from gloss.errors import GlossError
from gloss.models.rerank import completion_logprobs, rerank_scores
from tests.models.factory import make_model
from tests.models.test_generator import COMPACT, TITLES, recommender, tiny_data, tiny_llama


def rerank(**settings) -> dict:
    """model.rerank: a pool of the first 3 generated hits and 2 neighbours, LM-scored; `settings` over that."""
    return {"generated": 3, "neighbours": 2, "collaborative": 0, "contrast": 0.5, "lm_weight": 1.0,
            "collaborative_weight": 0.0, "collaborative_floor": 1e-3, "batch_size": 32, **settings}


def naive_logprob(model, prompt: list[int], completion: list[int]) -> float:
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([prompt + completion])).logits[0].log_softmax(-1)
    return sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(completion))


def item_model_and_prompts(tmp_path):
    data = tiny_data()
    model, tok = tiny_llama(data, tmp_path, item_embeddings="svd")
    model.eval()
    enc = PromptEncoder(tok, PromptTemplate(**COMPACT), TITLES, max_seq_length=256, item_token_offset=model.config.vocab_size)
    histories = data.split.histories(data.split.examples("test"))[:3]
    prompts = [enc.prompt_ids(h) for h in histories]
    assert len({len(p) for p in prompts}) > 1  # left padding is exercised
    return model, tok, enc, prompts


def test_prefill_once_logprobs_equal_reencoding_each_completion(tmp_path):
    model, tok, enc, prompts = item_model_and_prompts(tmp_path)
    completions = [[enc.labels(enc.completion_ids(i)) for i in items] for items in ([0, 5, 9], [3], [7, 7, 1, 2])]
    completions[1].append([tok.eos_token_id])  # a one-token completion
    ids, mask = left_pad_prompts(prompts, tok.pad_token_id)
    got = completion_logprobs(model, ids, mask, completions, tok.pad_token_id)
    for prompt, row, scores in zip(prompts, completions, got):
        assert len(scores) == len(row)
        for c, s in zip(row, scores.tolist()):
            assert abs(s - naive_logprob(model, prompt, c)) < 1e-3


def test_contrasted_scores_subtract_the_bos_only_likelihood(tmp_path):
    model, tok, enc, prompts = item_model_and_prompts(tmp_path)
    candidates = [[0, 5], [3, 0, 11], [2]]
    completion = lambda i: enc.labels(enc.completion_ids(i))  # noqa: E731
    bos, a = [tok.bos_token_id], 0.5
    scores = rerank_scores(model, prompts, candidates, completion, tok.pad_token_id, bos, contrast=a, batch_size=2)
    for prompt, items, s in zip(prompts, candidates, scores):
        want = [(1 + a) * naive_logprob(model, prompt, completion(i)) - a * naive_logprob(model, bos, completion(i)) for i in items]
        assert np.allclose(s, want, atol=2e-3)


def test_rerank_pools_generated_hits_then_last_item_neighbours_and_sorts_by_score(tmp_path):
    data = tiny_data()
    rec = recommender(tmp_path, rerank=rerank())
    rec.build_for(data, seed=0)
    histories = data.split.histories(data.split.examples("test"))
    generated = np.array([[4, -1, 4]] * len(histories))
    pools, _ = rec.candidate_pool(histories, generated)
    for h, pool in zip(histories, pools):
        near = [int(i) for i in rec.retriever.search([data.catalog.texts[h[-1]]], 3)[0][0] if i != h[-1]][:2]
        assert pool == list(dict.fromkeys([4] + near))
    rec.exclude_seen = True
    assert all(not set(pool) & set(h.tolist()) for h, pool in zip(histories, rec.candidate_pool(histories, generated)[0]))
    rec.exclude_seen = False
    ranking = rec.recommend(histories, k=10)
    plain = rec.rank(rec.queries(histories), histories, 10).items[:, :3]
    for u, pool in enumerate(rec.candidate_pool(histories, plain)[0]):
        n = len(pool)
        assert sorted(ranking.items[u, :n].tolist()) == sorted(pool) and (ranking.items[u, n:] == -1).all()
        assert (np.diff(ranking.scores[u, :n]) <= 0).all()


def collaborative_recommender(tmp_path, **settings):
    return recommender(tmp_path, rerank=rerank(**{"collaborative": 4, "collaborative_weight": 1.0, **settings}),
                       collaborative=make_model("cooc"),
                       ablation={"beam_order": None, "no_lm": {"lm_weight": 0}, "lm_only": {"collaborative_weight": 0},
                                 "no_generated": {"generated": 0}})


def test_collaborative_pool_adds_the_models_top_items_and_scores_relative_to_its_best(tmp_path):
    data = tiny_data()
    rec = collaborative_recommender(tmp_path)
    rec.build_for(data, seed=0)
    histories = data.split.histories(data.split.examples("test"))
    generated = np.array([[4, -1, 4]] * len(histories))
    pools, collab = rec.candidate_pool(histories, generated)
    scores = make_model("cooc")
    scores.fit(data)
    full = scores.score(histories)
    for u, (h, pool, c) in enumerate(zip(histories, pools, collab)):
        near = [int(i) for i in rec.retriever.search([data.catalog.texts[h[-1]]], 3)[0][0] if i != h[-1]][:2]
        head = list(dict.fromkeys([4] + near))
        extra = pool[len(head):]  # the model's 4 best items not already pooled, best first (ties in any order)
        positive = sorted((full[u, i] for i in range(len(TITLES)) if full[u, i] > 0), reverse=True)
        fourth = positive[min(3, len(positive) - 1)]
        assert pool[: len(head)] == head and len(extra) <= 4
        assert all(full[u, i] >= fourth - 1e-12 for i in extra) and (np.diff(full[u, extra]) <= 1e-12).all()
        assert {i for i in range(len(TITLES)) if full[u, i] > fourth} <= set(pool)  # strictly better ones all made it
        assert np.allclose(c, full[u, pool] / full[u].max())


def test_rerank_score_is_lm_plus_weighted_log_collaborative_score(tmp_path):
    data = tiny_data()
    histories = data.split.histories(data.split.examples("test"))
    rec = collaborative_recommender(tmp_path, collaborative_weight=2.0)
    rec.build_for(data, seed=0)
    generated = rec.fused(histories, 3).items
    pools, collab = rec.candidate_pool(histories, generated)
    lm = rec.lm_scores(histories, pools)
    ranking = rec.recommend(histories, k=16)  # the whole tiny catalog: every pool item is ranked
    for u, (pool, s, c) in enumerate(zip(pools, lm, collab)):
        want = s + 2.0 * np.log(c + 1e-3)
        got = dict(zip(ranking.items[u].tolist(), ranking.scores[u].tolist()))
        assert np.allclose([got[i] for i in pool], want, atol=1e-4)
        assert (np.diff(ranking.scores[u, : len(pool)]) <= 0).all()


def test_ablation_variants_share_generation_and_lm_scores_and_match_their_own_settings(tmp_path, monkeypatch):
    import gloss.models.generator as generator

    data = tiny_data()
    histories = data.split.histories(data.split.examples("test"))
    rec = collaborative_recommender(tmp_path)
    rec.build_for(data, seed=0)
    calls = {"generate": 0, "score": 0}
    generate, score = rec.module.generate, generator.rerank_scores

    def counting_generate(prompts):
        calls["generate"] += 1
        return generate(prompts)

    def counting_score(*args, **kw):
        calls["score"] += 1
        return score(*args, **kw)

    monkeypatch.setattr(rec.module, "generate", counting_generate)
    monkeypatch.setattr(generator, "rerank_scores", counting_score)
    full = rec.recommend(histories, k=10)
    variants = rec.variants()
    assert set(variants) == {"beam_order", "no_lm", "lm_only", "no_generated"}
    rankings = {label: v.recommend(histories, k=10) for label, v in variants.items()}
    assert calls == {"generate": 1, "score": 1}  # every variant reused the model's generations and LM scores
    assert np.array_equal(rankings["beam_order"].items, rec.rank(rec.memo_for(histories)["queries"], histories, 10).items)
    pools, collab = rec.candidate_pool(histories, rec.fused(histories, 10).items[:, :3])
    for u, (pool, c) in enumerate(zip(pools, collab)):  # no LM: the collaborative order, ties in pool order
        assert rankings["no_lm"].items[u, : len(pool)].tolist() == [pool[i] for i in np.argsort(-c, kind="stable")]
    assert not np.array_equal(rankings["lm_only"].items, full.items)


def test_memo_starts_afresh_when_the_weights_change(tmp_path):
    data = tiny_data()
    histories = data.split.histories(data.split.examples("test"))
    rec = collaborative_recommender(tmp_path)
    rec.build_for(data, seed=0)
    first = rec.memo_for(histories)
    first["marker"] = True
    assert rec.memo_for(histories) is first
    with torch.no_grad():
        next(rec.module.model.parameters()).add_(0.1)
    assert "marker" not in rec.memo_for(histories)


def test_unknown_or_missing_rerank_key_and_missing_collaborative_model_are_config_errors(tmp_path):
    with pytest.raises(GlossError, match=r"model\.rerank\.neighbors: unknown rerank key"):
        recommender(tmp_path, rerank=rerank(neighbors=3))
    with pytest.raises(GlossError, match=r"model\.rerank: missing collaborative_floor"):
        recommender(tmp_path, rerank={k: v for k, v in rerank().items() if k != "collaborative_floor"})
    with pytest.raises(GlossError, match=r"model\.ablation\.x\.colab: unknown"):
        recommender(tmp_path, rerank=rerank(), ablation={"x": {"colab": 1}})
    with pytest.raises(GlossError, match=r"model\.rerank: collaborative/collaborative_weight need model\.collaborative"):
        recommender(tmp_path, rerank=rerank(collaborative=5))
