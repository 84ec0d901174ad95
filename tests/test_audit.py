"""gloss.audit: each check counts what was planted; the "largest id + 1" baseline finds a P5-style shortcut."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gloss.audit import audit, main, next_id_baseline, numeric_ids, p5_renumbered
from gloss.data import Catalog, GlossData, split_leave_one_out
from tests.conftest import write_tiny_dataset


def planted() -> GlossData:
    """Ten items (ids without digits: only the catalog order numbers them), five users, no validation users:
    u0 repeats its target, u1's target is the next id, u2's target (item 9) is cold, items 3 and 7 share a title and
    u3's target 3 has its twin 7 in the history."""
    sequences = [[5, 2, 5], [0, 1, 2], [3, 4, 9], [6, 7, 3], [8, 6, 7]]
    ids = [f"B{chr(65 + i)}X" for i in range(10)]
    titles = [f"item {i}" for i in range(10)]
    titles[3] = titles[7] = "Twin Lipstick"
    split = split_leave_one_out([f"u{u}" for u in range(5)], [np.array(s, dtype=np.int64) for s in sequences],
                                val_fraction=0.0)
    return GlossData("planted", Catalog(ids, titles), split, (5, 7))


def by_check(rows) -> dict[tuple[str, str], object]:
    return {(r.check, r.split): r for r in rows}


def test_each_check_counts_what_was_planted() -> None:
    rows = by_check(audit(planted(), dropped_items=2))
    count = {key: r.count for key, r in rows.items()}
    assert count[("target already in the user's own history", "test")] == 1
    assert count[("target = largest id in history + 1 (first appearance in the file)", "test")] == 1
    assert count[("target never seen in training (cold item)", "test")] == 1
    assert count[("items sharing their title with another item", "")] == 2
    assert count[("target has a same-title twin (another item) in the history", "test")] == 1
    assert count[("catalog items with an empty title", "")] == 0
    assert count[("untitled items dropped by preprocessing", "")] == 2
    assert count[("consecutive interactions of a user with equal timestamps", "")] is None  # no timestamps: not known
    assert rows[("target already in the user's own history", "test")].total == 5
    assert not any(k[1] == "val" for k in rows)  # no validation users: no validation rows
    assert not any("ids' own numbers" in k[0] for k in rows)  # ids are not numeric


def test_timestamp_ties_are_a_share_of_consecutive_pairs() -> None:
    row = by_check(audit(planted(), tie_pairs=(3, 12)))[("consecutive interactions of a user with equal timestamps", "")]
    assert (row.count, row.total) == (3, 12) and row.cells()[3] == "25.00%"


def shortcut_data(n_users: int = 40, length: int = 4) -> GlossData:
    """P5-style: every user buys fresh items, numbered "1", "2", ... in order of first appearance, so each test target
    is the user's largest id + 1."""
    sequences = [np.arange(u * length, (u + 1) * length, dtype=np.int64) for u in range(n_users)]
    n_items = n_users * length
    catalog = Catalog([str(i + 1) for i in range(n_items)], [f"item {i}" for i in range(n_items)])
    return GlossData("shortcut", catalog, split_leave_one_out([f"u{u}" for u in range(n_users)], sequences,
                                                              val_fraction=0.1), (5, 7))


def test_largest_id_plus_one_baseline_finds_the_shortcut_and_not_shuffled_ids() -> None:
    data = shortcut_data()
    numbers = numeric_ids(data.catalog.item_ids)
    assert numbers is not None
    test = data.split.test_examples()
    histories, targets = data.split.histories(test), data.split.targets(test)
    assert next_id_baseline(histories, targets, numbers) == {"recall@5": 1.0, "ndcg@5": 1.0}

    shuffled = np.random.default_rng(0).permutation(len(numbers)) + 1
    shuffled_data = GlossData("shuffled", Catalog([str(n) for n in shuffled], data.catalog.titles), data.split, (5, 7))
    assert next_id_baseline(histories, targets, numeric_ids(shuffled_data.catalog.item_ids))["recall@5"] < 0.1
    rows = by_check(audit(shuffled_data))
    assert rows[("target = largest id in history + 1 (the ids' own numbers)", "test")].count <= 4

    # the P5 renumbering restores the shortcut, and the report says what the baseline scores
    rows = by_check(audit(p5_renumbered(shuffled_data)))
    row = rows[("target = largest id in history + 1 (the ids' own numbers)", "test")]
    assert row.count == row.total == 40 and "Recall@5 1.0000" in row.note
    assert rows[("target = largest id in history + 1 (the ids' own numbers)", "val")].count == 4


def test_numeric_ids_need_one_prefix_and_distinct_numbers() -> None:
    assert numeric_ids(["item_3", "item_1"]).tolist() == [3, 1]
    assert numeric_ids(["B00001", "A00002"]) is None
    assert numeric_ids(["1", "01"]) is None
    assert numeric_ids(["B00004TMFE", "1"]) is None


def test_cli_on_tiny_offline_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = write_tiny_dataset(tmp_path / "data")
    out = tmp_path / "audit.md"
    args = ["dataset=beauty", "dataset.name=tiny", f"paths.data_dir={root}", f"paths.cache_dir={tmp_path / 'cache'}"]
    assert main(args + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text() and printed.startswith("**tiny: 60 users")
    lines = {line.split(" | ")[0].lstrip("| ") + "/" + line.split(" | ")[1]: line for line in printed.splitlines()
             if line.startswith("| ") and not line.startswith("| check")}
    assert "| 1 | - | from the input files |" in lines["untitled items dropped by preprocessing/-"]
    assert "not known" in lines["consecutive interactions of a user with equal timestamps/-"]
    # users walk the item cycle i -> i+1 (ids B00000...): the next id is the target unless the walk wraps around
    assert "(the ids' own numbers)" in printed
    assert main(args + ["--renumber", "p5"]) == 0
    assert capsys.readouterr().out.startswith("**tiny (P5 renumbered): 60 users")


def test_cli_on_a_table_with_timestamp_ties(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "data" / "shop"
    folder.mkdir(parents=True)
    rows = [("c1", 1, 10), ("c1", 2, 10), ("c1", 3, 20), ("c1", 4, 30), ("c1", 9, 40),  # 1 tie in 3 pairs (9: untitled)
            ("c2", 2, 5), ("c2", 3, 6), ("c2", 4, 7),  # no tie in 2 pairs
            ("c3", 3, 1), ("c3", 4, 1), ("c3", 1, 1)]  # 2 ties in 2 pairs
    (folder / "interactions.csv").write_text("user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    (folder / "items.csv").write_text("item,title\n" + "".join(f"{i},thing {i}\n" for i in (1, 2, 3, 4)) + "9,\n")
    assert main(["dataset=table", "dataset.name=shop", f"paths.data_dir={tmp_path / 'data'}",
                 f"paths.cache_dir={tmp_path / 'cache'}"]) == 0
    printed = capsys.readouterr().out
    assert "| consecutive interactions of a user with equal timestamps | - | 3 | 42.86% |" in printed
    assert "| untitled items dropped by preprocessing | - | 1 | - |" in printed
