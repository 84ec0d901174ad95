"""Padding-free training batches (issue 28): a batch's examples in one row with position ids restarting per example
give the same loss and gradients as the padded batch (transformers' SDPA reads the example boundaries from the
position ids: no attention across examples, loss only on each example's completion)."""
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from gloss.data.padding import IGNORE, right_pad_examples
from gloss.data.prompt_datamodule import examples_in, flatten_examples


def tiny_llama(attn: str) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=128, attn_implementation=attn)
    return LlamaForCausalLM(config)


def examples() -> list[tuple[list[int], list[int]]]:
    """Prompts labelled IGNORE, completions labelled with themselves; lengths 3 to 17."""
    g = torch.Generator().manual_seed(1)
    out = []
    for prompt, completion in [(5, 3), (12, 5), (2, 1), (9, 8), (1, 4)]:
        ids = torch.randint(3, 64, (prompt + completion,), generator=g).tolist()
        out.append((ids, [IGNORE] * prompt + ids[prompt:]))
    return out


def loss_and_grads(model, batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    loss = model(**batch, use_cache=False).loss  # as GeneratorModule.training_step calls it
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_padding_free_equals_padded(attn):
    model, batch = tiny_llama(attn), examples()
    flat = flatten_examples(batch)
    assert flat["input_ids"].shape == (1, sum(len(ids) for ids, _ in batch)) and examples_in(flat) == len(batch)
    assert "attention_mask" not in flat
    padded = right_pad_examples(batch, pad_id=0)
    assert examples_in(padded) == len(batch)
    loss_p, grads_p = loss_and_grads(model, padded)
    loss_f, grads_f = loss_and_grads(model, flat)
    torch.testing.assert_close(loss_f, loss_p, rtol=1e-6, atol=1e-6)
    for gf, gp in zip(grads_f, grads_p):
        torch.testing.assert_close(gf, gp, rtol=1e-5, atol=1e-6)


def test_examples_do_not_see_each_other():
    """Changing one example's tokens leaves the other examples' logits in the flattened row unchanged."""
    model, batch = tiny_llama("sdpa").eval(), examples()
    changed = [batch[0], ([t % 50 + 3 for t in batch[1][0]], batch[1][1]), *batch[2:]]
    with torch.no_grad():
        a = model(**flatten_examples(batch), use_cache=False).logits[0]
        b = model(**flatten_examples(changed), use_cache=False).logits[0]
    first, second = len(batch[0][0]), len(batch[0][0]) + len(batch[1][0])
    torch.testing.assert_close(a[:first], b[:first])
    torch.testing.assert_close(a[second:], b[second:], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(a[first:second], b[first:second])
