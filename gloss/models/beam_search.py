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

`hf_beam_search` is transformers' own beam search rule (`generate(num_beams=K)`: 2K candidates per step, finished
hypotheses kept apart and scored by sum log p / length ** length_penalty, `early_stopping` False / True / "never"),
with the same prefill-once cache: its beams (tokens, order, scores) equal `model.generate`'s. The LLaMA presets use it.
`beam_memory_bytes` is what one batch of it holds at its peak, so a memory budget sets the users per batch.
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
    B, K, dev = input_ids.shape[0], num_beams, input_ids.device
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    logp = out.logits[:, -1].float().log_softmax(-1)
    null = None
    if contrast:
        # unpadded and the same length in every row: positions come from the cache, no mask needed
        nout = model(input_ids=torch.tensor([null_prompt] * B, device=dev), use_cache=True, logits_to_keep=1)
        logp = contrasted(logp, nout.logits[:, -1], contrast)
        null = nout.cache
        null.batch_repeat_interleave(K)
    scores, first = logp.topk(K, dim=-1)  # [B, K]
    cache = out.cache
    cache.batch_repeat_interleave(K)
    mask = attention_mask.repeat_interleave(K, 0)
    pos = positions[:, -1:].repeat_interleave(K, 0)
    seqs = first.reshape(B * K, 1)
    done = seqs[:, 0] == eos_token_id
    lengths = torch.ones(B * K, dtype=torch.long, device=dev)
    active = torch.arange(B, device=dev)  # users still searching, rows of the outputs
    final_seqs = torch.full((B, K, max_new_tokens), pad_token_id, dtype=torch.long, device=dev)
    final_scores = torch.zeros(B, K, device=dev)
    final_lengths = torch.ones(B, K, dtype=torch.long, device=dev)

    def retire(users_done: torch.Tensor) -> None:
        rows = users_done.nonzero().squeeze(1)
        beam_rows = (rows[:, None] * K + torch.arange(K, device=dev)).reshape(-1)
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
            rows = (keep[:, None] * K + torch.arange(K, device=dev)).reshape(-1)
            active, scores, seqs, done, lengths = active[keep], scores[keep], seqs[rows], done[rows], lengths[rows]
            mask, pos = mask[rows], pos[rows]
            cache.batch_select_indices(rows)
            if null is not None:
                null.batch_select_indices(rows)
        n = len(active)
        mask = torch.cat([mask, mask.new_ones(n * K, 1)], dim=1)
        pos = pos + 1
        out = model(input_ids=seqs[:, -1:], attention_mask=mask, position_ids=pos, cache=cache, use_cache=True)
        logp = out.logits[:, -1].float().log_softmax(-1)
        if null is not None:
            nout = model(input_ids=seqs[:, -1:], cache=null, use_cache=True)
            logp = contrasted(logp, nout.logits[:, -1], contrast)
        logp[done] = float("-inf")
        logp[done, pad_token_id] = 0.0
        vocab = logp.shape[-1]
        cand = (scores.reshape(n * K, 1) + logp).reshape(n, K * vocab)
        scores, idx = cand.topk(K, dim=-1)
        src = (torch.arange(n, device=dev)[:, None] * K + idx // vocab).reshape(-1)
        tok = (idx % vocab).reshape(-1)
        was_done = done[src]
        seqs = torch.cat([seqs[src], tok[:, None]], dim=1)
        lengths = lengths[src] + (~was_done).long()
        done = was_done | (tok == eos_token_id)
        cache.reorder_cache(src)
        if null is not None:
            null.reorder_cache(src)
    else:  # max_new_tokens reached: retire whoever is left
        retire(torch.ones(len(active), dtype=torch.bool, device=dev))
    norm = final_scores / final_lengths.float().pow(length_penalty)
    order = norm.argsort(dim=1, descending=True)
    return final_seqs.gather(1, order[:, :, None].expand_as(final_seqs)), norm.gather(1, order)


NEG = -1.0e9  # transformers' "impossible" score (added, not assigned, exactly as in GenerationMixin._beam_search)


def kv_bytes_per_token(model) -> int:
    """Bytes of KV cache one token of one sequence holds (every layer's keys and values, in the model's dtype)."""
    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    dtype = model.get_input_embeddings().weight.dtype
    return 2 * c.num_hidden_layers * (c.num_key_value_heads or c.num_attention_heads) * head_dim * dtype.itemsize


def beam_memory_bytes(model, users: int, prompt_length: int, num_beams: int, max_new_tokens: int) -> int:
    """Peak bytes of one beam-search batch beyond the weights: the KV cache of users x beams x (prompt + new tokens),
    the float32 scores of every beam's next token (log-probabilities, candidates: 4 copies of users x beams x vocab),
    and the prefill's activations (users x prompt x (2 hidden + intermediate + the attention row of every head)).
    Linear in users, beams and length: the memory budget divides by it."""
    c = model.config
    dtype = model.get_input_embeddings().weight.dtype.itemsize
    cache = users * num_beams * (prompt_length + max_new_tokens) * kv_bytes_per_token(model)
    scores = 4 * users * num_beams * c.vocab_size * 4
    prefill = users * prompt_length * (2 * c.hidden_size + c.intermediate_size + c.num_attention_heads * prompt_length) * dtype
    return cache + scores + prefill


def memory_batches(lengths: list[int], max_users: int, budget_bytes: int | None, cost) -> list[list[int]]:
    """Prompt indices in batches of similar length (shortest first): each batch as many users as `cost(users,
    longest prompt)` keeps within `budget_bytes` (None: no budget), at most `max_users`, at least one."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, start = [], 0
    while start < len(order):
        end = min(start + max_users, len(order))
        if budget_bytes is not None:
            while end - start > 1 and cost(end - start, lengths[order[end - 1]]) > budget_bytes:
                end = start + max(1, (end - start) * 3 // 4)
        batches.append(order[start:end])
        start = end
    return batches


@torch.no_grad()
def hf_beam_search(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    num_beams: int,
    max_new_tokens: int,
    eos_token_id: int,
    pad_token_id: int,
    length_penalty: float,
    early_stopping: bool | str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' beam search with each left-padded prompt [B, P] encoded once (its KV cache then repeated per
    beam) -> (tokens [B, K, T] padded with pad_token_id, scores [B, K] = sum log p / generated length **
    length_penalty), best first. A user leaves the batch once its finished beams can no longer change (the same test
    transformers applies to the whole batch)."""
    B, K, dev = input_ids.shape[0], num_beams, input_ids.device
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    logp = out.logits[:, -1].float().log_softmax(-1).repeat_interleave(K, 0)  # every beam starts as the prompt
    cache = out.cache
    del out
    cache.batch_repeat_interleave(K)
    mask = attention_mask.repeat_interleave(K, 0)
    pos = positions[:, -1:].repeat_interleave(K, 0)
    running = torch.full((B, K, max_new_tokens), pad_token_id, dtype=torch.long, device=dev)
    run_scores = torch.zeros(B, K, device=dev)
    run_scores[:, 1:] = NEG  # only the first beam's tokens at the first step
    fin_seqs, fin_scores = running.clone(), torch.full((B, K), NEG, device=dev)
    fin_done = torch.zeros(B, K, dtype=torch.bool, device=dev)
    open_ = torch.ones(B, dtype=torch.bool, device=dev)  # transformers' is_early_stop_heuristic_unsatisfied
    top_k = torch.arange(2 * K, device=dev) < K  # only the first K candidates may finish (top_num_beam_mask)
    active = torch.arange(B, device=dev)
    final_seqs, final_scores = running.clone(), torch.full((B, K), NEG, device=dev)

    def retire(rows: torch.Tensor) -> None:
        final_seqs[active[rows]], final_scores[active[rows]] = fin_seqs[rows], fin_scores[rows]

    for t in range(max_new_tokens):
        n, vocab = len(active), logp.shape[-1]
        cand = (logp.reshape(n, K, vocab) + run_scores[:, :, None]).reshape(n, K * vocab)
        top_scores, top_idx = cand.topk(2 * K, dim=-1)
        beam, tok = top_idx // vocab, top_idx % vocab
        seqs = running.gather(1, beam[:, :, None].expand(-1, -1, max_new_tokens)).clone()
        seqs[:, :, t] = tok
        hits = (tok == eos_token_id) | (t + 1 >= max_new_tokens)
        # the K best unfinished candidates keep running
        keep_scores = top_scores + hits.to(torch.float32) * NEG
        nxt = keep_scores.topk(K, dim=-1)[1]
        running = seqs.gather(1, nxt[:, :, None].expand(-1, -1, max_new_tokens))
        run_scores, src = keep_scores.gather(1, nxt), beam.gather(1, nxt)
        # finished candidates among the first K join the finished hypotheses if they beat them
        new = top_scores / ((t + 1) ** length_penalty)
        new += (fin_done.all(-1, keepdim=True) & (early_stopping is True)).to(torch.float32) * NEG
        new += (~open_[:, None]).to(torch.float32) * NEG
        new += ~(hits & top_k) * NEG
        merged = torch.cat([fin_scores, new], 1).topk(K, dim=-1)[1]
        fin_seqs = torch.cat([fin_seqs, seqs], 1).gather(1, merged[:, :, None].expand(-1, -1, max_new_tokens))
        fin_scores = torch.cat([fin_scores, new], 1).gather(1, merged)
        fin_done = torch.cat([fin_done, hits & top_k], 1).gather(1, merged)
        best = run_scores[:, :1] / ((max_new_tokens if early_stopping == "never" and length_penalty > 0 else t + 1)
                                    ** length_penalty)
        worst = torch.where(fin_done, fin_scores.min(1, keepdim=True)[0], NEG)
        open_ = open_ & (best > worst).any(-1)
        user_done = ~open_ | (fin_done.all(-1) & (early_stopping is True))
        if t + 1 >= max_new_tokens or user_done.all():
            break
        rows = (torch.arange(n, device=dev)[:, None] * K + src).reshape(-1)  # the cache rows the running beams continue
        if user_done.any():
            retire(user_done.nonzero().squeeze(1))
            keep = (~user_done).nonzero().squeeze(1)
            active, running, run_scores = active[keep], running[keep], run_scores[keep]
            fin_seqs, fin_scores, fin_done, open_ = fin_seqs[keep], fin_scores[keep], fin_done[keep], open_[keep]
            rows = rows.reshape(n, K)[keep].reshape(-1)
        cache.reorder_cache(rows)
        mask = torch.cat([mask[rows], mask.new_ones(len(rows), 1)], dim=1)
        pos = pos[rows] + 1
        out = model(input_ids=running[:, :, t].reshape(-1, 1), attention_mask=mask, position_ids=pos,
                    cache=cache, use_cache=True)
        logp = out.logits[:, -1].float().log_softmax(-1)
        del out
    retire(torch.arange(len(active), device=dev))
    return final_seqs, final_scores
