"""The LLaMA presets' generation (issue 28): prefill-once beam search with transformers' beam rule equals
`model.generate(num_beams=5, num_return_sequences=5)` beam for beam (tokens, order, scores), and a memory budget bounds
what one batch holds (counted from the KV cache tensors, so the measurement is deterministic on CPU)."""
import bitsandbytes as bnb
import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers import LlamaConfig, LlamaForCausalLM

from gloss.data.padding import left_pad_prompts
from gloss.data.prompt_datamodule import PromptEncoder
from gloss.data.prompts import PromptTemplate
from gloss.errors import GlossError
from gloss.models.beam_search import beam_memory_bytes, hf_beam_search, kv_bytes_per_token, memory_batches
from gloss.models.generator import generation_settings
from gloss.models.pretrained_lm import pretrained_lm
from tests.models.test_generator import COMPACT, generator_module, tiny_data
from tests.models.test_generator import tiny_llama as scratch_llama

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


def lora_generator(tmp_path, **generation):
    """A GeneratorModule on a tiny Llama with (non-zero) LoRA adapters on every projection, as the presets train it
    without 4-bit."""
    data = tiny_data()
    base, tok = scratch_llama(data, tmp_path, tie_word_embeddings=False)
    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0,
                                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                            "up_proj", "down_proj"])).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    enc = PromptEncoder(tok, PromptTemplate(**COMPACT), data.catalog.titles, max_seq_length=256)
    prompts = [enc.prompt_ids(h) for h in data.split.histories(data.split.examples("test"))]
    return generator_module(model, tok, **generation), prompts


def test_generator_prefill_hf_equals_hf_backend_with_lora_merged_and_a_budget(tmp_path):
    """GeneratorModule: backend=prefill_hf ranks with LoRA merged and users per batch from the budget, and generates
    the same titles as backend=hf (model.generate, adapters unmerged, fixed batches); the base weights afterwards are
    the same tensors, bit for bit."""
    module, prompts = lora_generator(tmp_path, backend="prefill_hf", early_stopping=False, max_new_tokens=8,
                                     batch_size=64, memory_budget_gb=None)
    weights = {n: (p.data_ptr(), p.detach().clone()) for n, p in module.model.named_parameters()}
    cost = lambda users, length: beam_memory_bytes(module.model, users, length, 5, 8)  # noqa: E731
    module.generation["memory_budget_gb"] = cost(5, 20) / 2**30
    batches = module.batches([len(p) for p in prompts])
    assert len(batches) > 2 and max(len(b) for b in batches) <= 5
    ours = module.generate(prompts)
    for n, p in module.model.named_parameters():
        assert p.data_ptr() == weights[n][0] and torch.equal(p, weights[n][1]), n
    assert not any(m.merged for m in module.model.modules() if isinstance(m, LoraLayer))
    module.generation.update(backend="hf", memory_budget_gb=None, batch_size=8)
    hf = module.generate(prompts)
    assert ours == hf
    with module.merged_lora():  # merging changes the weights the forward pass uses, not what it computes
        assert all(m.merged for m in module.model.modules() if isinstance(m, LoraLayer))


def test_4bit_lora_is_not_merged(tmp_path):
    """NF4 base weights are left as they are (merging would re-quantize them): ranking runs the adapters unmerged."""
    base, tok = scratch_llama(tiny_data(), tmp_path / "cache")
    base.save_pretrained(tmp_path / "llama")
    tok.save_pretrained(tmp_path / "llama")
    model, tok = pretrained_lm(str(tmp_path / "llama"), load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_compute_dtype="float32", bnb_4bit_use_double_quant=True, torch_dtype="float32",
                               attn_implementation="sdpa", lora=dict(r=4, lora_alpha=4, lora_dropout=0.0,
                                                                     target_modules=["q_proj", "v_proj"]),
                               gradient_checkpointing=False)
    module = generator_module(model, tok, backend="prefill_hf", early_stopping=False, memory_budget_gb=None)
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    assert layers and all(isinstance(m.get_base_layer(), bnb.nn.Linear4bit) for m in layers)
    with module.merged_lora():
        assert not any(m.merged for m in layers)


@pytest.mark.parametrize("key,value", [("backend", "fast"), ("memory_budget_gb", 0), ("memory_budget_gb", "lots"),
                                       ("early_stopping", "soon")])
def test_bad_generation_settings_name_their_key(key, value):
    good = dict(backend="prefill_hf", num_beams=5, num_return_sequences=5, max_new_tokens=8, length_penalty=1.0,
                batch_size=8, early_stopping=False, memory_budget_gb=1)
    assert generation_settings(good)["contrast"] == 0.0  # a run saved before contrast existed ranked without it
    with pytest.raises(GlossError, match=f"model.generation.{key}="):
        generation_settings({**good, key: value})
