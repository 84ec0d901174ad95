import numpy as np
import pytest
import torch

from gloss.models.bsarec import BSARec, causal_low_pass_matrix, low_pass
from tests.models.factory import make_model
from tests.models.id_helpers import (
    assert_causal,
    assert_padding_invariant, assert_scores_catalog, built, compose_model, fit_model, recall_at_5,
)


def first_block(model: BSARec, beta: torch.Tensor | None = None):
    """The first block, its beta set to `beta` if given."""
    block = model.encoder.blocks[0]
    if beta is not None:
        with torch.no_grad():
            block.beta.copy_(beta)
    return block


def untrained(model: BSARec, n_items: int = 20) -> BSARec:
    """`built`, with random betas: at the init beta = 1 the frequency branch is the identity, which would make the
    padding, batching and causality checks below pass whatever the filter did."""
    built(model, n_items)
    generator = torch.Generator().manual_seed(1)
    for block in model.encoder.blocks:
        with torch.no_grad():
            block.beta.copy_(torch.randn(block.beta.shape, generator=generator))
    return model


def test_a_few_optimizer_steps_lower_the_loss():
    model = built(make_model("bsarec", max_len=10, hidden=16, dropout=0.1, attention_dropout=0.1), n_items=30).train()
    tokens = torch.from_numpy(np.random.default_rng(0).integers(1, 31, (16, 11)))
    tokens[:4, :5] = 0  # some left padding
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = model.training_loss(tokens)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    assert all(block.beta.grad is not None and block.beta.grad.abs().sum() > 0 for block in model.encoder.blocks)


def test_scores_shape_and_padding_invariance():
    model = untrained(make_model("bsarec", max_len=12, hidden=16, heads=2))
    assert_padding_invariant(model)
    assert_scores_catalog(model)


def test_history_scores_the_same_alone_or_batched_with_longer_histories():
    model = untrained(make_model("bsarec", max_len=12, hidden=16, c=3))
    rng = np.random.default_rng(1)
    short = rng.integers(0, model.n_items, 3)
    longer = [rng.integers(0, model.n_items, n) for n in (7, 12, 30)]  # 30 > max_len: truncated to the last 12
    alone = model.score([short])
    batched = model.score([*longer[:1], short, *longer[1:]])
    np.testing.assert_allclose(batched[1], alone[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batched[3], model.score([longer[2]])[0], rtol=1e-5, atol=1e-5)


def test_causal_future_items_never_change_earlier_positions():
    model = untrained(make_model("bsarec", max_len=10, hidden=16, blocks=2, c=2))
    assert_causal(model)


def test_filter_at_each_position_is_the_papers_fft_filter_of_that_prefix_padded_to_max_len():
    max_len, c = 12, 3
    model = built(make_model("bsarec", max_len=max_len, hidden=8, c=c))
    block = first_block(model, beta=torch.randn(1, 1, 8))
    x = torch.randn(2, 7, 8)
    real = torch.ones(2, 7, dtype=torch.bool)
    real[1, :3] = False  # left padding: must contribute nothing
    with torch.no_grad():
        mixed = block.frequency_mix(x, real)
    for row in range(2):
        for t in range(7):
            prefix = (x[row, : t + 1] * real[row, : t + 1, None])[None]
            padded = torch.cat([torch.zeros(1, max_len - t - 1, 8), prefix], dim=1)
            lpf = low_pass(padded, c)[:, -1]
            expected = lpf + block.beta[0] * (padded[:, -1] - lpf)
            torch.testing.assert_close(mixed[row, t], expected[0], atol=1e-5, rtol=1e-5)
    assert mixed[1, :3].abs().max() == 0  # padded positions come out zero


def test_low_pass_keeping_every_bin_is_the_identity_for_any_beta():
    x = torch.randn(3, 10, 4)
    torch.testing.assert_close(low_pass(x, 6), x)  # 10 // 2 + 1 = 6 bins
    torch.testing.assert_close(low_pass(x, 100), x)
    torch.testing.assert_close(causal_low_pass_matrix(10, 6), torch.eye(10))
    model = built(make_model("bsarec", max_len=10, hidden=4, c=6))
    block = first_block(model, beta=torch.randn(1, 1, 4) * 3)
    with torch.no_grad():
        torch.testing.assert_close(block.frequency_mix(x, torch.ones(3, 10, dtype=torch.bool)), x)


@pytest.mark.parametrize("c", [1, 2, 5])
def test_beta_one_gives_the_identity_for_any_c(c):
    x = torch.randn(3, 10, 4)
    lpf = low_pass(x, c)
    assert not torch.allclose(lpf, x)  # a real low-pass
    torch.testing.assert_close(lpf + 1.0 * (x - lpf), x)
    model = built(make_model("bsarec", max_len=10, hidden=4, c=c))
    block = first_block(model, beta=torch.ones(1, 1, 4))
    with torch.no_grad():
        torch.testing.assert_close(block.frequency_mix(x, torch.ones(3, 10, dtype=torch.bool)), x)


def test_bad_hyper_parameters_are_rejected():
    with pytest.raises(ValueError, match="model.alpha"):
        make_model("bsarec", alpha=1.5)
    with pytest.raises(ValueError, match="model.c"):
        make_model("bsarec", c=0)


def test_learns_deterministic_next_item_rule(rule, tmp_path):
    cfg = compose_model(
        "bsarec", "model.hidden=32", "model.dropout=0.1", "model.attention_dropout=0.1", "model.max_len=10",
        "datamodule.batch_size=32", "model.lr=5e-3", "trainer.max_epochs=8", "callbacks.early_stopping.patience=50",
    )
    assert recall_at_5(fit_model(cfg, rule, tmp_path), rule) >= 0.95


def test_debug_fast_config_smoke_runs(rule, tmp_path):
    model = fit_model(compose_model("bsarec", "debug=fast", "model.hidden=8", "model.max_len=5"), rule, tmp_path)
    scores = model.score([np.array([1, 2])])
    assert scores.shape == (1, len(rule.catalog))
    reloaded = make_model("bsarec", hidden=8, max_len=5)
    reloaded.build_for(rule, seed=0, run_dir=tmp_path)  # the run folder's model.ckpt
    np.testing.assert_allclose(reloaded.score([np.array([1, 2])]), scores, rtol=1e-5, atol=1e-6)
