"""Log-visible progress: Progress (ranking loops), ScoringRecommender.recommend using it, LogProgress (training)."""
from __future__ import annotations

import io
import logging
import re
import sys

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import gloss.progress
from gloss.callbacks import LogProgress
from gloss.models.base import ScoringRecommender, top_k_scores
from gloss.progress import Progress, format_duration


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def messages(caplog, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name]


def test_format_duration():
    assert format_duration(0) == "0:00"
    assert format_duration(70) == "1:10"
    assert format_duration(3725) == "1:02:05"


def test_progress_logs_every_interval_with_done_rate_eta_and_a_closing_line(caplog):
    caplog.set_level(logging.INFO, logger="gloss.progress")
    clock = FakeClock()
    with Progress(100, "rank", interval_s=30, clock=clock, bar=False) as p:
        clock.t = 10
        p.update(10)  # 10 s < interval: silent
        clock.t = 30
        p.update(10)  # 30 s: first line
        clock.t = 40
        p.update(10)  # 10 s since the last line: silent
        clock.t = 70
        p.update(70)  # done: the closing line reports it
    assert messages(caplog, "gloss.progress") == [
        "rank: 20/100 users (0.7 users/s, ETA 2:00)",
        "rank: 100/100 users (1.4 users/s, took 1:10)",
    ]


def test_progress_is_silent_for_short_loops_and_never_draws_a_bar_without_a_tty(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="gloss.progress")
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a TTY
    clock = FakeClock()
    p = Progress(50, "rank", interval_s=30, clock=clock)
    assert p._bar is None
    for _ in range(5):
        clock.t += 5
        p.update(10)
    p.close()
    p.close()  # idempotent
    assert messages(caplog, "gloss.progress") == []
    assert sys.stderr.getvalue() == ""


def test_default_interval_is_read_at_construction(monkeypatch):
    monkeypatch.setattr(gloss.progress, "DEFAULT_INTERVAL_S", 0.5)
    assert Progress(1, "x", bar=False).interval_s == 0.5
    assert Progress(1, "x", interval_s=7, bar=False).interval_s == 7


class RowScorer(ScoringRecommender):
    """Scores item j for history h as a fixed function of (last item, j), so rankings are deterministic."""

    batch_size = 3
    exclude_seen = True
    n_items = 12

    def score(self, histories):
        last = np.array([h[-1] for h in histories], dtype=np.float32)[:, None]
        return np.cos(last * 0.7 + np.arange(self.n_items, dtype=np.float32)[None, :] * 1.3)


def test_scoring_recommender_reports_progress_and_keeps_its_ranking(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="gloss.progress")
    monkeypatch.setattr(gloss.progress, "DEFAULT_INTERVAL_S", 0.0)
    rng = np.random.default_rng(0)
    histories = [rng.integers(0, 12, size=rng.integers(1, 5)) for _ in range(10)]
    model = RowScorer()
    got = model.recommend(histories, k=4)
    want = top_k_scores(model.score(histories), 4, histories)
    np.testing.assert_array_equal(got.items, want.items)
    np.testing.assert_array_equal(got.scores, want.scores)
    lines = messages(caplog, "gloss.progress")
    assert [re.match(r"rank: (\d+)/10 users", m).group(1) for m in lines] == ["3", "6", "9", "10"]
    assert "ETA" in lines[0] and "took" in lines[-1]


class Toy(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.step_losses: dict[int, list[float]] = {}

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.step_losses.setdefault(self.current_epoch, []).append(float(loss.detach()))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def fit_toy(callback: LogProgress) -> Toy:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16, 3), torch.randn(16, 1))
    module = Toy()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, enable_progress_bar=False, logger=False,
                        enable_checkpointing=False, enable_model_summary=False, accumulate_grad_batches=2,
                        callbacks=[callback])
    trainer.fit(module, DataLoader(data, batch_size=4), DataLoader(data, batch_size=8))
    return module


def test_log_progress_writes_one_epoch_line_per_epoch_with_losses_and_lr(caplog):
    caplog.set_level(logging.INFO, logger="gloss.train")
    module = fit_toy(LogProgress(interval_s=1e9))
    lines = messages(caplog, "gloss.train")
    assert len(lines) == 2, lines
    for epoch, line in enumerate(lines):
        m = re.fullmatch(r"epoch (\d+): step (\d+), train/loss ([\d.]+), val/loss ([\d.]+), lr ([\d.e-]+), [\d.]+s", line)
        assert m, line
        assert int(m.group(1)) == epoch
        assert int(m.group(2)) == 2 * (epoch + 1)  # 4 batches, 2 accumulated per optimizer step
        # the epoch mean of the module's own losses (undoing Lightning's division by the accumulation)
        assert float(m.group(3)) == pytest.approx(np.mean(module.step_losses[epoch]), abs=1e-4)
        assert float(m.group(5)) == pytest.approx(0.05)
    assert lines[0].split("val/loss ")[1] != lines[1].split("val/loss ")[1]  # each epoch's own validation


def test_log_progress_reports_steps_within_an_epoch(caplog):
    caplog.set_level(logging.INFO, logger="gloss.train")
    fit_toy(LogProgress(interval_s=0.0))
    steps = [m for m in messages(caplog, "gloss.train") if "steps/s" in m]
    assert len(steps) == 8  # 4 batches x 2 epochs
    assert re.fullmatch(r"epoch 0: step 1/4, loss [\d.]+, [\d.]+ steps/s", steps[0]), steps[0]
    assert steps[-1].startswith("epoch 1: step 4/4, loss ")


class MaskedToy(Toy):
    """Dict batches with an attention mask, like the generator's prompt batches."""

    def training_step(self, batch, batch_idx):
        return super().training_step((batch["x"], batch["y"]), batch_idx)

    def validation_step(self, batch, batch_idx):
        return super().validation_step((batch["x"], batch["y"]), batch_idx)


def test_log_progress_reports_tokens_per_second_from_the_attention_mask(caplog):
    caplog.set_level(logging.INFO, logger="gloss.train")
    ticks = iter(range(1000))
    torch.manual_seed(0)
    mask = torch.zeros(16, 5, dtype=torch.long)
    for row in range(16):
        mask[row, : row % 5 + 1] = 1  # 1..5 real tokens per row: 46 in the epoch
    rows = [{"x": x, "y": y, "attention_mask": m} for x, y, m in zip(torch.randn(16, 3), torch.randn(16, 1), mask)]
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, enable_progress_bar=False, logger=False,
                        enable_checkpointing=False, enable_model_summary=False,
                        callbacks=[LogProgress(interval_s=1e9, clock=lambda: float(next(ticks)))])
    trainer.fit(MaskedToy(), DataLoader(rows, batch_size=4), DataLoader(rows, batch_size=8))
    (line,) = messages(caplog, "gloss.train")
    # clock: one tick at epoch start, one per batch (4), one at epoch end -> 5 s for 46 tokens
    assert re.search(r", 5\.0s, 9 tokens/s$", line) and int(mask.sum()) == 46, line
