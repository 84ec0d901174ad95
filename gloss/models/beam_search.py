"""Batched beam search for any Hugging Face causal LM, with the prompt encoded ONCE per user.

`model.generate(num_beams=K)` copies every prompt K times before encoding it; for short completions after
long prompts that is most of the work. Here the prompt's KV cache is computed once and then repeated
for the K beams. Finished beams (EOS) are frozen: they can only extend with PAD at log-probability 0, so
they keep competing with open beams by total log-probability; the search stops once every beam is finished.
Users whose beams are all finished leave the batch, so one long title does not slow down everyone else.
The K beams are returned best first by score / length ** length_penalty (Hugging Face's convention).

`contrast=a > 0` is context-contrastive decoding (Shi et al. 2023, "context-aware decoding"): tokens are scored by
log softmax((1+a) log p(.|prompt) - a log p(.|null_prompt)), the null prompt (e.g. BOS alone) run alongside with its
own KV cache. It divides out what the model would write without the history (for the offline generator: the catalog's
brand frequencies), so the history's signal, not the prior, picks the beams. Costs a second forward per step.
"""
from __future__ import annotations

import torch


def contrasted(logp: torch.Tensor, null_logits: torch.Tensor, contrast: float) -> torch.Tensor:
    return ((1 + contrast) * logp - contrast * null_logits.float().log_softmax(-1)).log_softmax(-1)


@torch.no_grad()
def beam_search(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    num_beams: int = 5,
    max_new_tokens: int = 50,
    eos_token_id: int = 2,
    pad_token_id: int = 0,
    length_penalty: float = 1.0,
    contrast: float = 0.0,
    null_prompt: list[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompts [B, P] -> (tokens [B, K, T] padded with pad_token_id, scores [B, K]), best first."""
    B, K = input_ids.shape[0], num_beams
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    logp = out.logits[:, -1].float().log_softmax(-1)
    null = None
    if contrast:
        # unpadded and the same length in every row: positions come from the cache, no mask needed
        nout = model(input_ids=torch.tensor([null_prompt] * B), use_cache=True, logits_to_keep=1)
        logp = contrasted(logp, nout.logits[:, -1], contrast)
        null = nout.past_key_values
        null.batch_repeat_interleave(K)
    scores, first = logp.topk(K, dim=-1)  # [B, K]
    cache = out.past_key_values
    cache.batch_repeat_interleave(K)
    mask = attention_mask.repeat_interleave(K, 0)
    pos = positions[:, -1:].repeat_interleave(K, 0)
    seqs = first.reshape(B * K, 1)
    done = seqs[:, 0] == eos_token_id
    lengths = torch.ones(B * K, dtype=torch.long)
    active = torch.arange(B)  # users still searching, rows of the outputs
    final_seqs = torch.full((B, K, max_new_tokens), pad_token_id, dtype=torch.long)
    final_scores = torch.zeros(B, K)
    final_lengths = torch.ones(B, K, dtype=torch.long)

    def retire(users_done: torch.Tensor) -> None:
        rows = users_done.nonzero().squeeze(1)
        beam_rows = (rows[:, None] * K + torch.arange(K)).reshape(-1)
        final_seqs[active[rows], :, : seqs.shape[1]] = seqs[beam_rows].reshape(len(rows), K, -1)
        final_scores[active[rows]] = scores[rows]
        final_lengths[active[rows]] = lengths[beam_rows].reshape(len(rows), K)

    for _ in range(1, max_new_tokens):
        user_done = done.reshape(-1, K).all(1)
        if user_done.any():
            retire(user_done)
            keep = (~user_done).nonzero().squeeze(1)
            if len(keep) == 0:
                break
            rows = (keep[:, None] * K + torch.arange(K)).reshape(-1)
            active, scores, seqs, done, lengths = active[keep], scores[keep], seqs[rows], done[rows], lengths[rows]
            mask, pos = mask[rows], pos[rows]
            cache.batch_select_indices(rows)
            if null is not None:
                null.batch_select_indices(rows)
        n = len(active)
        mask = torch.cat([mask, mask.new_ones(n * K, 1)], dim=1)
        pos = pos + 1
        out = model(input_ids=seqs[:, -1:], attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
        logp = out.logits[:, -1].float().log_softmax(-1)
        if null is not None:
            nout = model(input_ids=seqs[:, -1:], past_key_values=null, use_cache=True)
            logp = contrasted(logp, nout.logits[:, -1], contrast)
        logp[done] = float("-inf")
        logp[done, pad_token_id] = 0.0
        vocab = logp.shape[-1]
        cand = (scores.reshape(n * K, 1) + logp).reshape(n, K * vocab)
        scores, idx = cand.topk(K, dim=-1)
        src = (torch.arange(n)[:, None] * K + idx // vocab).reshape(-1)
        tok = (idx % vocab).reshape(-1)
        was_done = done[src]
        seqs = torch.cat([seqs[src], tok[:, None]], dim=1)
        lengths = lengths[src] + (~was_done).long()
        done = was_done | (tok == eos_token_id)
        cache.reorder_cache(src)
        if null is not None:
            null.reorder_cache(src)
    else:  # max_new_tokens reached: retire whoever is left
        retire(torch.ones(len(active), dtype=torch.bool))
    norm = final_scores / final_lengths.float().pow(length_penalty)
    order = norm.argsort(dim=1, descending=True)
    return final_seqs.gather(1, order[:, :, None].expand_as(final_seqs)), norm.gather(1, order)
