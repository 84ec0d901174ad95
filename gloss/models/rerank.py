"""Re-rank a candidate pool by the generator's own likelihood of each candidate's real catalog title.

Beam search writes titles that may not exist; retrieval snaps them to the catalog. Re-ranking asks the LM the
reverse question for a short list of real items: how likely is *this* title as the next purchase? The pool is the
items retrieved for the generated titles plus the last history item's retrieved neighbours (the LIS candidates),
so the LM can also pick an item it would not have spelled out itself. Scores are teacher-forced log-likelihoods,
optionally context-contrasted like decoding: (1+a) log p(title | history) - a log p(title | BOS).

Each prompt is encoded once; its KV cache is repeated for its candidates (as in gloss.models.beam_search).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from gloss.data.padding import left_pad_prompts
from gloss.progress import Progress


@torch.no_grad()
def completion_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        completions: list[list[list[int]]], pad_token_id: int) -> list[np.ndarray]:
    """Left-padded prompts [B, P] and per prompt a list of completions (token ids) -> per prompt the summed
    log-probability of each completion given the prompt."""
    B, dev = input_ids.shape[0], input_ids.device
    counts = [len(c) for c in completions]
    flat = [c for row in completions for c in row]
    if not flat:
        return [np.zeros(0) for _ in completions]
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True,
                logits_to_keep=1)
    first = out.logits[:, -1].float().log_softmax(-1)  # [B, V]: the completion's first token
    rows = torch.repeat_interleave(torch.arange(B, device=dev), torch.tensor(counts, device=dev))
    cache = out.past_key_values
    cache.batch_select_indices(rows)
    width = max(len(c) for c in flat)
    tokens = torch.full((len(flat), width), pad_token_id, dtype=torch.long)
    valid = torch.zeros((len(flat), width), dtype=torch.bool)
    for r, c in enumerate(flat):
        tokens[r, : len(c)], valid[r, : len(c)] = torch.tensor(c), True
    tokens, valid = tokens.to(dev), valid.to(dev)
    total = first[rows].gather(1, tokens[:, :1]).squeeze(1)
    if width > 1:  # feed tokens 0..T-2; their logits score tokens 1..T-1
        mask = torch.cat([attention_mask[rows], valid[:, :-1].long()], dim=1)
        pos = positions[rows, -1:] + 1 + torch.arange(width - 1, device=dev)
        logits = model(input_ids=tokens[:, :-1], attention_mask=mask, position_ids=pos, past_key_values=cache,
                       use_cache=False).logits.float()
        logp = logits.log_softmax(-1).gather(2, tokens[:, 1:, None]).squeeze(2)
        total = total + (logp * valid[:, 1:]).sum(1)
    return [t.numpy() for t in torch.split(total.cpu(), counts)]


def rerank_scores(model, prompts: Sequence[list[int]], candidates: Sequence[Sequence[int]],
                  completion: Callable[[int], list[int]], pad_token_id: int, null_prompt: list[int], contrast: float = 0.0,
                  batch_size: int = 32) -> list[np.ndarray]:
    """Per user: the (contrasted) log-likelihood of each candidate item's completion tokens after the user's prompt.
    `completion(item)` -> token ids (title + EOS); the null term is computed once per distinct item. A long loop
    reports its progress to the log (gloss.progress)."""
    dev = next(model.parameters()).device
    scores: list[np.ndarray] = [np.zeros(0)] * len(prompts)
    order = np.argsort([len(p) for p in prompts], kind="stable")
    with Progress(len(prompts), "rerank") as report:
        for start in range(0, len(prompts), batch_size):
            rows = order[start : start + batch_size]
            ids, mask = (t.to(dev) for t in left_pad_prompts([prompts[r] for r in rows], pad_token_id))
            lls = completion_logprobs(model, ids, mask, [[completion(i) for i in candidates[r]] for r in rows],
                                      pad_token_id)
            for r, ll in zip(rows, lls):
                scores[r] = ll.astype(np.float64)
            report.update(len(rows))
    if contrast:
        items = sorted({int(i) for row in candidates for i in row})
        null: dict[int, float] = {}
        for start in range(0, len(items), 256):
            chunk = items[start : start + 256]
            ids, mask = (t.to(dev) for t in left_pad_prompts([null_prompt], pad_token_id))
            (ll,) = completion_logprobs(model, ids, mask, [[completion(i) for i in chunk]], pad_token_id)
            null.update(zip(chunk, ll.tolist()))
        scores = [(1 + contrast) * s - contrast * np.array([null[int(i)] for i in row]) for s, row in zip(scores, candidates)]
    return scores
