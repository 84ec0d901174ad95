"""gloss.report, seeds and significance: runs that differ only in seed become one row (mean, std, Student-t CI), and
paired per-user tests (t-test, permutation test) against a reference row, Holm-corrected; tiny planted run folders."""
import json
import os
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from gloss.report import collect, differ_only_in_seed, holm, main, write_report

KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "mrr")


def config(model: str = "cooc", seed: int = 42, **model_keys) -> dict:
    """A resolved config: seed copied into callbacks/datamodule (the resolved `${seed}`), dataset.seed fixed at 42."""
    return {
        "dataset": {"name": "beauty", "seed": 42, "split": "leave_one_out"},
        "model": {"_target_": f"gloss.models.{model}", "window": 3, **model_keys},
        "callbacks": {"ranking_eval": {"seed": seed}, "best_checkpoint": {"dirpath": f"/tmp/ckpt/{seed}"}},
        "datamodule": {"seed": seed},
        "seed": seed,
        "model_name": None,
    }


def plant(folder: Path, model: str, per_user: np.ndarray | None, seed: int = 42, cfg: dict | None = None,
          retriever: str = "none", dataset: str = "beauty") -> Path:
    """A run folder: metrics.json (overall = the per-user means), per_user.jsonl (ndcg@5 = per_user, other metrics
    derived), config_resolved.yaml."""
    folder.mkdir(parents=True)
    values = np.asarray(per_user, dtype=float)
    users = [{"user_id": f"U{i:04d}", "target": "B1", "rank": 0, "segment": "regular", "recall@5": min(1.0, v * 2),
              "ndcg@5": float(v), "recall@10": min(1.0, v * 3), "ndcg@10": float(v) * 1.1, "mrr": float(v) * 0.9,
              "top10": []} for i, v in enumerate(values)]
    overall = {k: float(np.mean([u[k] for u in users])) for k in KEYS}
    summary = {"dataset": dataset, "model": model, "retriever": retriever, "split": "test", "n_users": len(users),
               "overall": overall, "segments": {"regular": {**overall, "n_users": len(users)}}}
    (folder / "metrics.json").write_text(json.dumps(summary))
    (folder / "per_user.jsonl").write_text("".join(json.dumps(u) + "\n" for u in users))
    (folder / "config_resolved.yaml").write_text(yaml.safe_dump(cfg or config(model, seed)))
    return folder


def table(md: str, first_cell: str) -> list[list[str]]:
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_cell} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("| "):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_holm_matches_a_hand_computation():
    # sorted p: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.04 (x1 = 0.04); in the input order
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    # step-down keeps them monotone: 0.03*3 = 0.09, 0.02*2 = 0.04 -> 0.09, 0.5
    assert holm([0.5, 0.03, 0.02]) == pytest.approx([0.5, 0.06, 0.06])
    assert holm([0.9, 0.6, 0.5]) == pytest.approx([1.0, 1.0, 1.0])


def test_differ_only_in_seed():
    assert differ_only_in_seed(config(seed=1), config(seed=2))  # seed, its resolved copies, output dirs
    assert differ_only_in_seed(config(seed=42), config(seed=7))  # dataset.seed 42 equal to one run's seed
    assert not differ_only_in_seed(config(seed=1), config(seed=2, window=5))
    other_split = config(seed=2)
    other_split["dataset"]["seed"] = 3  # a nested seed that does not follow the run's seed is a real difference
    assert not differ_only_in_seed(config(seed=1), other_split)
    named = config(seed=2)
    named["model_name"] = "cooc-2"
    assert differ_only_in_seed(config(seed=1), named)


def test_keys_that_cannot_change_a_runs_metrics_do_not_split_a_seed_group():
    """model.ablation (extra rankings after the run, into ablation.json) and eval.engine (byte-identical metrics on
    any number of workers) leave metrics.json as it is: a seed-42 run with its ablation groups with two without."""
    ablated, sharded = config(seed=42), config(seed=2)
    ablated["model"]["ablation"] = ["cooc", "text"]
    sharded["eval"] = {"engine": {"workers": 2, "address": None}}
    plain = config(seed=1)
    plain["model"]["ablation"] = []
    plain["eval"] = {"engine": {"workers": 1, "address": None}}
    plain["paths"] = {"cache_dir": "/elsewhere/.cache"}  # another clone's cache (content-keyed): the same results
    ablated["paths"] = sharded["paths"] = {"cache_dir": "/work/main/.cache"}
    assert differ_only_in_seed(ablated, plain) and differ_only_in_seed(plain, sharded)
    other = config(seed=3)
    other["model"]["sources"] = ["cooc"]
    assert not differ_only_in_seed(plain, other)


def test_grouping_by_seed_groups_exactly_the_runs_that_differ_only_in_seed(tmp_path: Path):
    rng = np.random.default_rng(0)
    for seed in (1, 2, 3):
        plant(tmp_path / f"cooc_s{seed}", "cooc", rng.random(20), seed)
    old = plant(tmp_path / "cooc_w5", "cooc", rng.random(20), 4, config("cooc", 4, window=5))  # another config
    os.utime(old / "metrics.json", (1_000_000, 1_000_000))  # older: left out, as any older duplicate of a row
    plant(tmp_path / "pop", "popularity", rng.random(20), 1)
    plant(tmp_path / "pop_again", "popularity", rng.random(20), 1)  # same seed, same config: a duplicate
    runs, notes, _ = collect([tmp_path])
    by_label = {r.label: r for r in runs}
    assert sorted(by_label) == ["cooc", "popularity"]
    assert sorted(m.path.parent.name for m in by_label["cooc"].members) == ["cooc_s1", "cooc_s2", "cooc_s3"]
    assert by_label["popularity"].members == []
    assert len(notes) == 2 and any("cooc_w5" in n for n in notes) and all("left out" in n for n in notes)


def test_seed_group_mean_std_and_ci_match_numpy_and_scipy(tmp_path: Path):
    rng = np.random.default_rng(1)
    user_values = [rng.random(30) for _ in range(4)]
    for seed, values in zip((1, 2, 3, 4), user_values):
        plant(tmp_path / f"s{seed}", "cooc", values, seed)
    md, _ = write_report(tmp_path, published=False)
    ndcg5 = np.array([v.mean() for v in user_values])
    mean, std = ndcg5.mean(), ndcg5.std(ddof=1)
    low, high = stats.t.interval(0.95, df=3, loc=mean, scale=std / math.sqrt(4))
    (group,) = collect([tmp_path])[0]
    assert group.stats["ndcg@5"] == pytest.approx((mean, std, low, high))
    assert group.summary["overall"]["ndcg@5"] == pytest.approx(mean)
    (row,) = table(md, "model | dataset | n")
    assert row[:4] == ["cooc", "beauty", "4", "1, 2, 3, 4"]
    assert row[5] == f"{mean:.4f} ± {std:.4f} [{low:.4f}, {high:.4f}]"  # the NDCG@5 column
    grid = table(md, "model | beauty Recall@5")
    assert grid[0][2] == f"**{mean:.4f}** ± {std:.4f}"


def test_a_planted_difference_is_significant_and_same_distribution_is_not(tmp_path: Path, capsys):
    rng = np.random.default_rng(7)
    n = 400
    base = rng.random(n) * 0.5
    plant(tmp_path / "best", "cooc", np.clip(base + 0.1 + rng.normal(0, 0.05, n), 0, 1))  # planted: +0.1 per user
    plant(tmp_path / "same", "popularity", base, cfg=config("popularity"))
    plant(tmp_path / "same2", "lis", np.clip(base + rng.normal(0, 0.05, n), 0, 1)[:350], cfg=config("lis"))
    md, _ = write_report(tmp_path, published=False)
    rows = {r[0]: r[1:] for r in table(md, "model | users")}
    assert "vs **cooc** (400 users" in md
    assert rows["popularity†"][0] == "400" and rows["lis†"][0] == "350"  # users in both runs only
    # both differ from cooc by ~0.1 per user: significant after Holm, in both tests
    assert all(float(r[3]) < 0.05 and float(r[5]) < 0.05 for r in rows.values())
    beauty = {r[0]: r[1:] for r in table(md, "model | source")}
    assert beauty["popularity"][2].endswith("†") and not beauty["cooc"][2].endswith("†")  # the N@5 column

    # against popularity, lis (same distribution, noise only) is not significant; cooc is
    main([str(tmp_path), "--no-published", "--baseline", "popularity"])
    out = capsys.readouterr().out
    rows = {r[0]: r[1:] for r in table(out, "model | users")}
    assert "vs **popularity**" in out and set(rows) == {"cooc†", "lis"}
    assert float(rows["lis"][5]) > 0.05 and float(rows["lis"][2]) > 0.05


def test_seed_groups_are_tested_on_the_per_user_mean_over_seeds(tmp_path: Path):
    rng = np.random.default_rng(3)
    base = rng.random(50)
    seeds = [np.clip(base + rng.normal(0, 0.01, 50), 0, 1) for _ in range(3)]
    for seed, values in zip((1, 2, 3), seeds):
        plant(tmp_path / f"cooc_{seed}", "cooc", values, seed)
    other = np.clip(base - 0.05, 0, 1)
    plant(tmp_path / "pop", "popularity", other, cfg=config("popularity"))
    md, _ = write_report(tmp_path, published=False, baseline="popularity")
    (row,) = table(md, "model | users")
    mean_over_seeds = np.mean([np.round(s, 6) for s in seeds], axis=0)
    expected = stats.ttest_rel(mean_over_seeds, np.round(other, 6)).pvalue
    assert row[0] == "cooc†" and float(row[3]) == pytest.approx(expected, rel=0.02, abs=1e-300)
    assert row[2] == f"{np.mean(mean_over_seeds - np.round(other, 6)):+.4f}"
