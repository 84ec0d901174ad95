"""The LLaMA presets' generation (issue 28): prefill-once beam search with transformers' beam rule equals
`model.generate(num_beams=5, num_return_sequences=5)` beam for beam (tokens, order, scores), and a memory budget bounds
what one batch holds (counted from the KV cache tensors, so the measurement is deterministic on CPU)."""
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from gloss.data.padding import left_pad_prompts
from gloss.models.beam_search import beam_memory_bytes, hf_beam_search, kv_bytes_per_token, memory_batches

EOS, PAD, VOCAB = 2, 0, 48


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    """A random 2-layer Llama (hidden 32, grouped-query heads) with peaked next-token distributions and a likely EOS,
    so that beams finish at different lengths."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         initializer_range=0.3, bos_token_id=1, eos_token_id=EOS, pad_token_id=PAD,
                         tie_word_embeddings=False, attn_implementation="sdpa")
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight[EOS] *= 2.5
    return model


def prompts(n: int, seed: int = 1) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, VOCAB, (int(torch.randint(2, 12, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


def generated(tokens: list[int]) -> list[int]:
    """A beam's tokens up to and including its first EOS."""
    return tokens[: tokens.index(EOS) + 1] if EOS in tokens else tokens


@pytest.mark.parametrize("early_stopping,length_penalty", [(False, 1.0), (True, 1.0), ("never", 1.0), (False, 0.0),
                                                           (False, 2.0)])
def test_prefill_once_equals_hf_generate(early_stopping, length_penalty):
    model, batch, T = tiny_llama(), prompts(7), 8
    ids, mask = left_pad_prompts(batch, PAD)
    hf = model.generate(input_ids=ids, attention_mask=mask, num_beams=5, num_return_sequences=5, max_new_tokens=T,
                        early_stopping=early_stopping, length_penalty=length_penalty, do_sample=False,
                        eos_token_id=EOS, pad_token_id=PAD, output_scores=True, return_dict_in_generate=True)
    seqs, scores = hf_beam_search(model, ids, mask, 5, T, EOS, PAD, length_penalty, early_stopping)
    hf_tokens = hf.sequences[:, ids.shape[1]:].reshape(len(batch), 5, -1)
    lengths = set()
    for user in range(len(batch)):
        for beam in range(5):
            ours = generated(seqs[user, beam].tolist())
            assert ours == generated(hf_tokens[user, beam].tolist()), (user, beam)
            assert seqs[user, beam, len(ours):].eq(PAD).all()
            lengths.add(len(ours))
    assert len(lengths) > 2 or length_penalty > 1  # beams of several lengths: finishing and the heuristic played
    torch.testing.assert_close(scores, hf.sequences_scores.reshape(len(batch), 5), rtol=1e-5, atol=1e-5)


def kv_peak(model, run) -> int:
    """The largest KV cache (bytes of every key and value tensor) any forward pass of `run()` returned."""
    peak = 0

    def hook(_module, _args, output):
        nonlocal peak
        cache = output.cache
        peak = max(peak, sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers))

    handle = model.register_forward_hook(hook)
    try:
        run()
    finally:
        handle.remove()
    return peak


def test_peak_cache_is_users_x_beams_x_length():
    """Without EOS every beam runs to max_new_tokens: the cache peaks at users x beams x (prompt + new tokens - 1)
    tokens (the last token is never fed back), linear in each; the estimate counts it in full."""
    model, T, never = tiny_llama(), 6, -1  # an EOS id no token has: every beam runs to max_new_tokens
    per_token = kv_bytes_per_token(model)
    assert per_token == 2 * 2 * 2 * 8 * 4  # k and v x layers x kv heads x head dim x float32
    for users, beams, length in [(2, 5, 6), (4, 5, 6), (2, 3, 6), (2, 5, 12)]:
        batch = [[5] * length for _ in range(users)]
        ids, mask = left_pad_prompts(batch, PAD)
        peak = kv_peak(model, lambda: hf_beam_search(model, ids, mask, beams, T, never, PAD, 1.0, False))
        assert peak == users * beams * (length + T - 1) * per_token
        assert peak < beam_memory_bytes(model, users, length, beams, T)
    assert beam_memory_bytes(model, 8, 10, 5, 6) == 2 * beam_memory_bytes(model, 4, 10, 5, 6)


def test_memory_budget_sets_users_per_batch():
    """Batches of similar prompt lengths, each within the budget: short prompts batch more users than long ones,
    and the measured cache of every batch stays under the budget."""
    model, T, beams = tiny_llama(), 6, 5
    batch = prompts(40, seed=3)
    cost = lambda users, length: beam_memory_bytes(model, users, length, beams, T)  # noqa: E731
    budget = cost(6, 8)
    batches = memory_batches([len(p) for p in batch], 64, budget, cost)
    assert sorted(i for b in batches for i in b) == list(range(40))
    assert all(cost(len(b), max(len(batch[i]) for i in b)) <= budget for b in batches)
    assert len(batches[0]) > len(batches[-1])  # shortest prompts first, more of them per batch
    for rows in batches:
        ids, mask = left_pad_prompts([batch[i] for i in rows], PAD)
        assert kv_peak(model, lambda: hf_beam_search(model, ids, mask, beams, T, EOS, PAD, 1.0, False)) <= budget
    assert [len(b) for b in memory_batches([len(p) for p in batch], 16, None, cost)] == [16, 16, 8]
