"""The rerank stage: prefill-once likelihoods equal naive re-encoding; pools and rankings follow the config."""
from __future__ import annotations

import numpy as np
import torch

from gloss.data.prompt_datamodule import PromptEncoder, left_pad
from gloss.data.prompts import PromptTemplate
from gloss.models.rerank import completion_logprobs, rerank_scores
from gloss.models.scratch_lm import scratch_llama
from tests.models.test_generator import COMPACT, TINY, TITLES, recommender, tiny_data


def naive_logprob(model, prompt: list[int], completion: list[int]) -> float:
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([prompt + completion])).logits[0].log_softmax(-1)
    return sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(completion))


def item_model_and_prompts(tmp_path):
    data = tiny_data()
    model, tok = scratch_llama(data, str(tmp_path), item_embeddings="svd", **TINY)
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
    ids, mask = left_pad(prompts, tok.pad_token_id)
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
    rec = recommender(tmp_path, rerank={"generated": 3, "neighbours": 2, "contrast": 0.5})
    rec.build_for(data, seed=0)
    histories = data.split.histories(data.split.examples("test"))
    generated = np.array([[4, -1, 4]] * len(histories))
    pools = rec.candidate_pool(histories, generated)
    for h, pool in zip(histories, pools):
        near = [int(i) for i in rec.retriever.search([data.catalog.texts[h[-1]]], 3)[0][0] if i != h[-1]][:2]
        assert pool == list(dict.fromkeys([4] + near))
    rec.exclude_seen = True
    assert all(not set(pool) & set(h.tolist()) for h, pool in zip(histories, rec.candidate_pool(histories, generated)))
    rec.exclude_seen = False
    ranking = rec.recommend(histories, k=10)
    plain = rec.rank(rec.queries(histories), histories, 10).items[:, :3]
    for u, pool in enumerate(rec.candidate_pool(histories, plain)):
        n = len(pool)
        assert sorted(ranking.items[u, :n].tolist()) == sorted(pool) and (ranking.items[u, n:] == -1).all()
        assert (np.diff(ranking.scores[u, :n]) <= 0).all()
