"""`python -m gloss.report <folder> [<folder> ...]`: every metrics.json below -> the paper's results table, segment plot.

Rows are model (+retriever), columns dataset x {Recall@5, NDCG@5, Recall@10, NDCG@10}; per column the best value
is bold and the second underlined. Writes report.md, report.csv and segments.png into the (first) folder (or --out);
`--split val` reads metrics_val.json instead (runs with eval.val=true) and writes report_val.md, ...
When the same (model, retriever, dataset) was run more than once, the newest metrics.json wins and the report
lists the runs it left out. After the grid, one table per dataset ranks its runs by Recall@5 next to the published
numbers in gloss/published_results.csv (columns R@5, N@5, R@10, N@10 and R@5 per user segment; also in
report_datasets.csv); `--no-published` leaves those out, and so does any split but test. A metrics.json that cannot
be used (bad JSON, null, a metric missing or not a number) is skipped with a warning naming it; the report is built
from the others. Under the grid, one note per environment field in which its runs differ (environment.json of each
run folder, gloss.environment: Python, a distribution's version, torch's CUDA build and devices, git commit and dirty
flag, a data file's sha256, thread settings), and the runs without environment.json (older folders) are named.

Seeds and significance: runs whose config_resolved.yaml differ only in `seed` (and keys that only name outputs:
model_name, checkpoint and cache dirs; nested `seed` keys that follow the run's seed; model.ablation and eval.engine, which
leave metrics.json as it is) are one row: mean (± std in the grid) and a
"Seeds" table with std (ddof=1) and the 95 % Student-t interval. Under each dataset's table, every gloss row with a
per_user.jsonl is compared with a reference row (`--baseline LABEL`, default the best by NDCG@5) per user (matched by
user_id; a seed group: the per-user mean over its seeds) on `--metric` (default ndcg@5): paired t-test and paired
permutation test, Holm-corrected over the table's rows; † marks p < 0.05 (permutation, Holm).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
import yaml

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402

from gloss.environment import ENVIRONMENT_FILE, THREAD_VARIABLES  # noqa: E402
from gloss.errors import GlossError  # noqa: E402
from gloss.eval.metrics import METRIC_KEYS, SEGMENTS  # noqa: E402


def metric_label(metric: str, short: bool = False) -> str:
    """recall@5 -> Recall@5 (short: R@5), ndcg@10 -> NDCG@10 (N@10)."""
    name, _, k = metric.partition("@")
    label = {"recall": ("Recall", "R"), "ndcg": ("NDCG", "N")}.get(name, (name.upper(), name.upper()))[short]
    return f"{label}@{k}" if k else label


TABLE_METRICS = tuple(m for m in METRIC_KEYS if m != "mrr")  # the paper's columns: Recall and NDCG at each k
COLUMNS = tuple((m, metric_label(m)) for m in TABLE_METRICS)
DATASET_ORDER = ("beauty", "toys", "sports")  # the paper's column order; other datasets follow by name
DATASET_COLUMNS = tuple((m, metric_label(m, short=True)) for m in TABLE_METRICS) + tuple(
    ((seg, "recall@5"), f"{seg} {metric_label('recall@5', short=True)}") for seg in SEGMENTS
)  # the per-dataset tables: overall metrics, then Recall@5 per user segment
PUBLISHED = "published_results.csv"  # package data: dataset,model,source,<metrics>; an empty cell is unknown
MAX_VERTICAL = 8  # segment plot: up to this many models as vertical bars grouped by segment


@dataclass
class RunResult:
    """One run, or a seed group (members: the runs that differ only in seed; summary: their mean; stats: per metric
    (mean, std, CI low, CI high))."""
    path: Path
    summary: dict
    mtime: float
    config: dict | None = None
    members: list[RunResult] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def runs(self) -> list[RunResult]:
        return self.members or [self]

    @property
    def seed(self) -> object:
        return (self.config or {}).get("seed")

    @property
    def key(self) -> tuple[str, str, str]:
        return self.summary["model"], self.summary["retriever"], self.summary["dataset"]

    @property
    def label(self) -> str:
        return row_label(self.summary)


def row_label(summary: dict) -> str:
    """The row name: the model, plus its retriever when it has one."""
    return summary["model"] if summary["retriever"] == "none" else f"{summary['model']}+{summary['retriever']}"


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def summary_problem(summary: object) -> str | None:
    """Why `summary` cannot go into the report, or None when it can."""
    if not isinstance(summary, dict):
        return f"not a JSON object (got {json.dumps(summary)[:40]})"
    missing = [k for k in ("dataset", "model", "retriever", "overall", "segments") if k not in summary]
    if missing:
        return f"not a gloss metrics.json (missing {', '.join(missing)})"
    for key in ("dataset", "model", "retriever"):
        if not isinstance(summary[key], str):
            return f"{key}: expected a string, got {summary[key]!r}"
    if not isinstance(summary["overall"], dict):
        return f"overall: expected an object of metrics, got {summary['overall']!r:.40}"
    for m, _ in COLUMNS:
        if m not in summary["overall"]:
            return f"overall.{m}: missing"
        if not is_number(summary["overall"][m]):
            return f"overall.{m}: expected a number, got {summary['overall'][m]!r:.40}"
        if not 0 <= summary["overall"][m] <= 1:
            return f"overall.{m}: {summary['overall'][m]!r:.40} is outside [0, 1] (a recall or NDCG is a fraction)"
    if not isinstance(summary["segments"], dict):
        return f"segments: expected an object, got {summary['segments']!r:.40}"
    for seg, values in summary["segments"].items():
        if not isinstance(values, dict):
            return f"segments.{seg}: expected an object, got {values!r:.40}"
        for key, value in values.items():
            if key == "n_users" and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                return f"segments.{seg}.n_users: expected a count, got {value!r:.40}"
            if key != "n_users" and value is not None and not is_number(value):
                return f"segments.{seg}.{key}: expected a number or null, got {value!r:.40}"
            if key != "n_users" and value is not None and not 0 <= value <= 1:
                return f"segments.{seg}.{key}: {value!r:.40} is outside [0, 1] (a recall or NDCG is a fraction)"
    return None


def read_metrics(path: Path) -> RunResult:
    """One metrics.json; a GlossError naming the file says why it cannot be used."""
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise GlossError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise GlossError(f"{path}: cannot be read ({e})") from e
    problem = summary_problem(summary)
    if problem:
        raise GlossError(f"{path}: {problem}")
    return RunResult(path, summary, path.stat().st_mtime)


def metrics_file(split: str) -> str:
    """metrics.json holds the test split, metrics_<split>.json any other (gloss.eval.write_run_outputs)."""
    return "metrics.json" if split == "test" else f"metrics_{split}.json"


def metrics_paths(folders: Sequence[Path], split: str) -> list[Path]:
    """Every metrics file below the folders, each once (folders may overlap)."""
    paths: dict[Path, Path] = {}
    for folder in folders:
        for path in sorted(folder.rglob(metrics_file(split))):
            if "wandb" not in path.relative_to(folder).parts[:-1]:  # logger=wandb keeps copies in <run>/wandb/
                paths.setdefault(path.resolve(), path)
    return list(paths.values())


CONFIG_FILE = "config_resolved.yaml"
IGNORED_TOP_KEYS = ("seed", "model_name", "hydra")  # the seed itself; keys that only name outputs
OUTPUT_KEYS = ("dirpath", "save_dir", "output_dir", "cache_dir")  # leaves that only say where outputs / caches go
                                                                   # (caches are keyed by their content)
NO_EFFECT_KEYS = (("model", "ablation"), ("eval", "engine"))  # extra analysis after the run; where users are ranked


def read_config(run_dir: Path) -> dict | None:
    """A run folder's resolved config, or None (older folders, unreadable file): such a run is never grouped."""
    try:
        config = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return config if isinstance(config, dict) else None


def flatten(config: dict, prefix: tuple = ()) -> dict[tuple, object]:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, prefix + (key,)))
        else:
            out[prefix + (key,)] = value
    return out


def differ_only_in_seed(a: dict, b: dict) -> bool:
    """Whether two resolved configs are the same experiment: equal but for `seed`, the keys that only name outputs,
    and nested `seed` keys that follow each run's seed (the resolved `${seed}` of callbacks, datamodule, model)."""
    def leaves(config: dict) -> dict[tuple, object]:
        return {k: v for k, v in flatten(config).items() if k[0] not in IGNORED_TOP_KEYS and k[-1] not in OUTPUT_KEYS
                and not any(k[: len(p)] == p for p in NO_EFFECT_KEYS)}

    la, lb = leaves(a), leaves(b)
    if la.keys() != lb.keys():
        return False
    return all(va == lb[k] or (k[-1] == "seed" and va == a.get("seed") and lb[k] == b.get("seed"))
               for k, va in la.items())


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, std with ddof=1, low, high): the Student-t confidence interval of the mean of `values` (n >= 2)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    mean, std = float(x.mean()), float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1)) * std / math.sqrt(len(x))
    return mean, std, mean - half, mean + half


def seed_group(members: list[RunResult]) -> RunResult:
    """One row for runs that differ only in seed: their mean summary (segments too) and each metric's t interval."""
    members = sorted(members, key=lambda r: (str(r.seed), r.path.as_posix()))
    first = members[0].summary
    summary = {**first, "overall": {}, "segments": {}}
    stats = {}
    for m in first["overall"]:
        values = [r.summary["overall"].get(m) for r in members]
        if all(is_number(v) for v in values):
            stats[m] = t_interval(values)
            summary["overall"][m] = stats[m][0]
    for seg, seg_values in first["segments"].items():
        summary["segments"][seg] = dict(seg_values)
        for key in seg_values:
            if key == "n_users":
                continue
            values = [r.summary["segments"].get(seg, {}).get(key) for r in members]
            summary["segments"][seg][key] = float(np.mean(values)) if all(is_number(v) for v in values) else None
    newest = max(members, key=lambda r: r.mtime)
    return RunResult(newest.path, summary, newest.mtime, newest.config, members, stats)


def collect(folders: Sequence[Path], split: str = "test") -> tuple[list[RunResult], list[str], list[str]]:
    """One row per (model, retriever, dataset): its newest run, or the seed group of that run (the runs whose resolved
    configs differ only in seed; per seed the newest), one note per run that was left out (an older duplicate), and
    one warning per metrics file that was skipped (naming it and why)."""
    by_key: dict[tuple, list[RunResult]] = {}
    notes, skipped = [], []
    for path in metrics_paths(folders, split):
        try:
            run = read_metrics(path)
        except GlossError as e:
            skipped.append(f"skipped {e}")
            continue
        run.config = read_config(path.parent)
        by_key.setdefault(run.key, []).append(run)
    rows = []
    for runs in by_key.values():
        runs.sort(key=lambda r: -r.mtime)  # newest first
        groups: list[list[RunResult]] = []
        for run in runs:
            group = next((g for g in groups if run.config is not None and g[0].config is not None
                          and differ_only_in_seed(g[0].config, run.config)), None)
            if group is None:
                groups.append([run])
            elif any(r.seed == run.seed for r in group):
                groups.append([run])  # the same seed again: an older duplicate
            else:
                group.append(run)
        keep = groups[0]
        for drop in (r for g in groups[1:] for r in g):
            notes.append(f"{keep[0].label} on {keep[0].summary['dataset']}: kept {keep[0].path} (newest), "
                         f"left out {drop.path}")
        rows.append(keep[0] if len(keep) == 1 else seed_group(keep))
    return sorted(rows, key=lambda r: (r.label, dataset_rank(r.summary["dataset"]))), notes, skipped


def dataset_rank(name: str) -> tuple[int, str]:
    return (DATASET_ORDER.index(name) if name in DATASET_ORDER else len(DATASET_ORDER), name)


def results_grid(runs: list[RunResult]) -> tuple[list[str], list[tuple[str, str]], dict[str, dict]]:
    """(row labels, columns as (dataset, metric), {label: {(dataset, metric): value}})."""
    datasets = sorted({r.summary["dataset"] for r in runs}, key=dataset_rank)
    labels = list(dict.fromkeys(r.label for r in runs))
    columns = [(d, m) for d in datasets for m, _ in COLUMNS]
    values: dict[str, dict] = {label: {} for label in labels}
    for r in runs:
        for m, _ in COLUMNS:
            values[r.label][(r.summary["dataset"], m)] = float(r.summary["overall"][m])
    return labels, columns, values


def highlight(column: list[float | None]) -> list[str]:
    """Four decimals; the best value bold, the second best underlined (ties share the mark)."""
    distinct = sorted({round(v, 4) for v in column if v is not None}, reverse=True)
    out = []
    for v in column:
        if v is None:
            out.append("–")
            continue
        text = f"{v:.4f}"
        if round(v, 4) == distinct[0]:
            text = f"**{text}**"
        elif len(distinct) > 1 and round(v, 4) == distinct[1]:
            text = f"<u>{text}</u>"
        out.append(text)
    return out


def markdown_table(runs: list[RunResult]) -> str:
    labels, columns, values = results_grid(runs)
    names = dict(COLUMNS)
    cells = {col: highlight([values[label].get(col) for label in labels]) for col in columns}
    for r in runs:  # a seed group: mean ± std
        for m, _ in COLUMNS:
            if m in r.stats:
                col, i = (r.summary["dataset"], m), labels.index(r.label)
                cells[col][i] += f" ± {r.stats[m][1]:.4f}"
    lines = [
        "| model | " + " | ".join(f"{markdown_cell(d)} {names[m]}" for d, m in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for i, label in enumerate(labels):
        lines.append(f"| {markdown_cell(label)} | " + " | ".join(cells[col][i] for col in columns) + " |")
    return "\n".join(lines)


def write_csv(runs: list[RunResult], path: Path) -> None:
    labels, columns, values = results_grid(runs)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model"] + [f"{d}/{m}" for d, m in columns])
        for label in labels:
            w.writerow([label] + ["" if values[label].get(c) is None else f"{values[label][c]:.6f}" for c in columns])


@dataclass
class DatasetRow:
    """One row of a per-dataset table: a gloss run or a published result; None where the value is unknown."""
    dataset: str
    model: str
    source: str
    values: dict
    run: RunResult | None = None  # a gloss row's run (or seed group)
    mark: str = ""  # "†": significantly different from the table's reference row (Holm-corrected)


def published_rows() -> list[DatasetRow]:
    """The published results shipped with gloss (test split)."""
    text = resources.files("gloss").joinpath(PUBLISHED).read_text()
    return [
        DatasetRow(r["dataset"], r["model"], r["source"], {m: float(r[m]) if r.get(m) else None for m, _ in COLUMNS})
        for r in csv.DictReader(text.splitlines())
    ]


def run_row(run: RunResult, out: Path) -> DatasetRow:
    """A gloss run's row; its source names the run folder relative to the report's folder."""
    folders = [Path(os.path.relpath(r.path.parent.resolve(), out.resolve())).as_posix() for r in run.runs]
    values: dict = {m: float(run.summary["overall"][m]) for m, _ in COLUMNS}
    for seg in SEGMENTS:
        seg_values = run.summary["segments"].get(seg, {})
        v = seg_values.get("recall@5")
        values[(seg, "recall@5")] = float(v) if v is not None and seg_values.get("n_users", 1) else None
    source = f"gloss ({folders[0]})" if len(folders) == 1 else f"gloss, {len(folders)} seeds ({named(folders, 1)})"
    return DatasetRow(run.summary["dataset"], run.label, source, values, run)


def dataset_tables(runs: list[RunResult], out: Path, published: bool) -> dict[str, list[DatasetRow]]:
    """{dataset: rows} for each dataset with a run, in the paper's order; rows are its runs and (with `published`)
    its published results, by Recall@5 descending (unknown last)."""
    rows = [run_row(r, out) for r in runs]
    datasets = sorted({row.dataset for row in rows}, key=dataset_rank)
    if published:
        rows += [row for row in published_rows() if row.dataset in datasets]

    def rank(row: DatasetRow) -> tuple[bool, float]:
        r5 = row.values.get("recall@5")
        return r5 is None, -(r5 or 0.0)

    return {d: sorted((row for row in rows if row.dataset == d), key=rank) for d in datasets}


def markdown_cell(text: str) -> str:
    """`text` as one Markdown table cell (or heading): a `|` escaped, line breaks (any Unicode one) as spaces."""
    return " ".join(text.splitlines()).replace("|", "\\|")


def dataset_markdown(dataset: str, rows: list[DatasetRow], metric: str | None = None) -> str:
    cells = {col: highlight([row.values.get(col) for row in rows]) for col, _ in DATASET_COLUMNS}
    if metric in cells:
        cells[metric] = [cell + row.mark for cell, row in zip(cells[metric], rows)]
    lines = [
        f"## {markdown_cell(dataset)}",
        "",
        "| model | source | " + " | ".join(name for _, name in DATASET_COLUMNS) + " |",
        "|---|---|" + "---:|" * len(DATASET_COLUMNS),
    ]
    for i, row in enumerate(rows):
        values = " | ".join(cells[col][i] for col, _ in DATASET_COLUMNS)
        lines.append(f"| {markdown_cell(row.model)} | {markdown_cell(row.source)} | {values} |")
    return "\n".join(lines)


def write_dataset_csv(tables: dict[str, list[DatasetRow]], path: Path) -> None:
    names = [col if isinstance(col, str) else "/".join(col) for col, _ in DATASET_COLUMNS]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["dataset", "model", "source"] + names)
        for dataset, rows in tables.items():
            for row in rows:
                values = [row.values.get(col) for col, _ in DATASET_COLUMNS]
                w.writerow([dataset, row.model, row.source] + ["" if v is None else f"{v:.6f}" for v in values])


def read_environment(run_dir: Path) -> dict | str | None:
    """The environment a run folder's results were computed in: its newest attempt's record (environment.json, or a
    resume's environment.<time>.json beside it); None when it has none, a string saying why when it is unreadable."""
    attempts = sorted(run_dir.glob("environment.*.json"))  # <time> sorts in time order
    path = attempts[-1] if attempts else run_dir / ENVIRONMENT_FILE
    if not path.is_file():
        return None
    try:
        env = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"{path.name}: {e}"
    return env if isinstance(env, dict) else f"{path.name}: not a JSON object"


def environment_fields(env: dict) -> dict[str, str]:
    """One environment record as {field: value} to compare across runs; a field a run has no value for (e.g. a data
    file it did not read) is left out, and compared among the runs that have it."""
    def part(key: str) -> dict:
        value = env.get(key)
        return value if isinstance(value, dict) else {}

    python, torch, git, cpu = part("python"), part("torch"), env.get("git"), part("cpu")
    fields = {}
    if python:
        implementation = python.get("implementation")
        fields["Python"] = f"{python.get('version')}" + ("" if implementation == "CPython" else f" {implementation}")
    if isinstance(git, dict):
        fields["git commit"] = str(git.get("commit"))[:7]
        fields["git tree"] = "dirty" if git.get("dirty") else "clean"
    elif "git" in env:
        fields["git commit"] = "unknown"
    if "torch" in env:
        fields["torch CUDA"] = str(torch.get("cuda") or "none") if torch else "no torch"
        if torch:
            fields["cuDNN"] = str(torch.get("cudnn") or "none")
            fields["CUDA available"] = "yes" if torch.get("cuda_available") else "no"
            fields["GPUs"] = ", ".join(map(str, torch.get("devices") or [])) or "none"
    if cpu:
        fields["torch threads"] = str(cpu.get("torch_threads"))
        thread_env = cpu.get("env") if isinstance(cpu.get("env"), dict) else {}
        fields.update({var: str(thread_env.get(var, "unset")) for var in THREAD_VARIABLES})
    fields.update({f"data {path}": str(digest)[:12] for path, digest in part("data_files").items()})
    fields.update({f"package {canonical(name)}": str(version) for name, version in part("packages").items()})
    return fields


def canonical(name: str) -> str:
    """A distribution's name as pip compares them (PyYAML, pyyaml; typing_extensions, typing-extensions)."""
    return re.sub(r"[-_.]+", "-", str(name)).lower()


def counted(n: int, word: str = "run") -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def named(folders: list[str], most: int = 3) -> str:
    return ", ".join(folders[:most]) + (f" and {len(folders) - most} more" if len(folders) > most else "")


def environment_notes(runs: list[RunResult], out: Path) -> list[str]:
    """One note per environment field in which the runs differ ("numpy 2.4.0 (3 runs) vs 2.3.1 (1 run: <folder>)":
    the largest group first; the others name their run folders), then the runs without a readable
    environment.json when some run has one. Nothing when the runs agree."""
    def folder(run: RunResult) -> str:
        return Path(os.path.relpath(run.path.parent.resolve(), out.resolve())).as_posix()

    records: dict[str, dict[str, str]] = {}
    missing, unreadable = [], []
    for run in runs:
        env = read_environment(run.path.parent)
        if env is None:
            missing.append(folder(run))
        elif isinstance(env, str):
            unreadable.append(f"{folder(run)} ({env})")
        else:
            records[folder(run)] = environment_fields(env)
    packages = {field for fields in records.values() for field in fields if field.startswith("package ")}
    for fields in records.values():  # a distribution one run has and another has not
        fields.update({p: "not installed" for p in packages - fields.keys()})
    order = list(dict.fromkeys(field for fields in records.values() for field in fields))
    tiers = ("data ", "package ")  # after the fields above (in their order), each by name
    order.sort(key=lambda f: next(((i + 1, f) for i, t in enumerate(tiers) if f.startswith(t)), (0, "")))
    notes = []
    for field in order:
        groups: dict[str, list[str]] = {}
        for name, fields in records.items():
            if field in fields:
                groups.setdefault(fields[field], []).append(name)
        if len(groups) < 2:
            continue
        ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        label = field.removeprefix("package ")
        parts = [f"{value} ({counted(len(names))}" + (f": {named(names)})" if i else ")")
                 for i, (value, names) in enumerate(ranked)]
        notes.append(f"{label} " + " vs ".join(parts))
    if missing and (records or unreadable):  # (no run has one: reports of older folders stay as they were)
        notes.append(f"no {ENVIRONMENT_FILE} (older run folders): {counted(len(missing))} ({named(missing, 5)})")
    if unreadable:
        notes.append(f"unreadable {ENVIRONMENT_FILE}: {named(unreadable, 5)}")
    return notes


# --- seeds and significance --------------------------------------------------------------------------------------
ALPHA = 0.05
N_RESAMPLES = 9999  # permutation test: random sign flips of the per-user differences (exact when 2^n is fewer)
MAX_BATCH_VALUES = 5_000_000  # permutation test: resamples x users computed at once


def seeds_markdown(runs: list[RunResult]) -> str:
    """The seed groups' table: per metric mean ± std (ddof=1) and the 95 % Student-t interval of the mean."""
    groups = [r for r in runs if r.members]
    lines = ["## Seeds", "",
             "Runs whose resolved configs differ only in `seed`: mean ± std (ddof=1) [95 % CI of the mean, Student t "
             "with n-1 degrees of freedom] over n seeds.", "",
             "| model | dataset | n | seeds | " + " | ".join(name for _, name in COLUMNS) + " |",
             "|---|---|---:|---|" + "---|" * len(COLUMNS)]
    for r in sorted(groups, key=lambda r: (dataset_rank(r.summary["dataset"]), r.label)):
        cells = [f"{st[0]:.4f} ± {st[1]:.4f} [{st[2]:.4f}, {st[3]:.4f}]" if (st := r.stats.get(m)) else "–"
                 for m, _ in COLUMNS]
        seeds = ", ".join(str(m.seed) for m in r.members)
        lines.append(f"| {markdown_cell(r.label)} | {markdown_cell(r.summary['dataset'])} | {len(r.members)} | {seeds} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_user_file(split: str) -> str:
    return "per_user.jsonl" if split == "test" else f"per_user_{split}.jsonl"


def read_per_user(run_dir: Path, split: str, metric: str) -> dict[str, float] | None:
    """{user_id: metric} from a run folder's per_user.jsonl; None when it has none or it cannot be read."""
    try:
        values = {}
        with open(run_dir / per_user_file(split)) as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    values[str(row["user_id"])] = float(row[metric])
        return values
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None


def per_user_values(run: RunResult, split: str, metric: str) -> dict[str, float] | None:
    """A row's per-user metric; for a seed group the mean over its seeds (users ranked in every seed)."""
    per_run = [read_per_user(r.path.parent, split, metric) for r in run.runs]
    if any(v is None for v in per_run):
        return None
    users = set.intersection(*(set(v) for v in per_run))
    return {u: float(np.mean([v[u] for v in per_run])) for u in users}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values: the i-th smallest (i = 0, 1, ...) times (m - i), kept non-decreasing and
    at most 1. NaN stays NaN (and is ranked last)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(np.where(np.isnan(p), np.inf, p), kind="stable")
    adjusted, running = np.full(len(p), np.nan), 0.0
    for i, idx in enumerate(order):
        if np.isnan(p[idx]):
            continue
        running = max(running, min(1.0, (len(p) - i) * p[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


def paired_tests(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(paired t-test p, paired permutation-test p) for H0: mean(a - b) = 0, two-sided. The permutation test swaps
    a user's two values at random (scipy.stats.permutation_test, permutation_type="samples", fixed rng)."""
    from scipy import stats

    if len(a) < 2:
        return float("nan"), float("nan")
    if np.all(a == b):
        return 1.0, 1.0
    with np.errstate(all="ignore"):
        p_t = float(stats.ttest_rel(a, b).pvalue)
    result = stats.permutation_test(
        (a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples", vectorized=True,
        n_resamples=N_RESAMPLES, batch=max(1, MAX_BATCH_VALUES // len(a)), rng=np.random.default_rng(0))
    return p_t, float(result.pvalue)


@dataclass
class Comparison:
    label: str
    n_users: int | None  # users in both (None: this row has no per_user file)
    diff: float = float("nan")  # mean over those users of (row - reference)
    p_t: float = float("nan")
    p_perm: float = float("nan")
    holm_t: float = float("nan")
    holm_perm: float = float("nan")


def significance(rows: list[DatasetRow], split: str, metric: str, baseline: str | None
                 ) -> tuple[str | None, list[Comparison], list[str]]:
    """Paired tests of each gloss row of one dataset table against its reference row (`baseline`, or the best by
    NDCG@5), on the per-user `metric` of the users in both; Holm over the table's rows. Returns (reference label,
    comparisons, notes); no reference when fewer than two rows have per-user results."""
    per_user = {row.model: per_user_values(row.run, split, metric) for row in rows if row.run is not None}
    usable = [row for row in rows if per_user.get(row.model)]
    notes = [f"{label}: no {per_user_file(split)} (not tested)" for label, v in per_user.items() if not v]
    if len(usable) < 2:
        return None, [], notes if usable and baseline is not None else []
    ref = next((row for row in usable if row.model == baseline), None)
    if ref is None:
        if baseline is not None:
            notes.append(f"--baseline {baseline}: no such row with per-user results; the best by NDCG@5 instead")
        ref = max(usable, key=lambda row: row.values["ndcg@5"])
    ref_values = per_user[ref.model]
    comparisons = []
    for row in usable:
        if row is ref:
            continue
        users = sorted(set(per_user[row.model]) & set(ref_values))
        a = np.array([per_user[row.model][u] for u in users])
        b = np.array([ref_values[u] for u in users])
        p_t, p_perm = paired_tests(a, b)
        comparisons.append(Comparison(row.model, len(users), float(np.mean(a - b)) if users else float("nan"), p_t, p_perm))
    for name in ("t", "perm"):
        for c, adjusted in zip(comparisons, holm([getattr(c, f"p_{name}") for c in comparisons])):
            setattr(c, f"holm_{name}", adjusted)
    for row in rows:
        c = next((c for c in comparisons if c.label == row.model), None)
        row.mark = "†" if c is not None and c.holm_perm < ALPHA else ""
    comparisons += [Comparison(label, None) for label, v in per_user.items() if not v]
    return ref.model, comparisons, notes


def significance_markdown(ref: str, comparisons: list[Comparison], metric: str, ref_users: int) -> str:
    def p(value: float) -> str:
        return "–" if math.isnan(value) else f"{value:.2g}" if value < 0.001 else f"{value:.3f}"

    name = metric_label(metric)
    lines = [f"Paired tests on per-user {name} vs **{markdown_cell(ref)}** ({ref_users:,} users; users matched by "
             f"user_id, only those in both; a seed group: the per-user mean over its seeds). "
             f"† in the {name if metric in TABLE_METRICS else 'table'} column: Holm-corrected permutation-test "
             f"p < {ALPHA} (Holm over the {len(comparisons)} rows below). Permutation test: scipy.stats.permutation_test, "
             f"paired (random swaps of a user's two values), {N_RESAMPLES} resamples, so p >= {2 / (N_RESAMPLES + 1):.4f}; "
             f"t-test: scipy.stats.ttest_rel.", "",
             f"| model | users | Δ {name} | t-test p | permutation p | Holm t-test p | Holm permutation p |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for c in comparisons:
        if c.n_users is None:
            lines.append(f"| {markdown_cell(c.label)} | – | – | – | – | – | – |")
            continue
        mark = "†" if c.holm_perm < ALPHA else ""
        lines.append(f"| {markdown_cell(c.label)}{mark} | {c.n_users:,} | {c.diff:+.4f} | {p(c.p_t)} | {p(c.p_perm)} "
                     f"| {p(c.holm_t)} | {p(c.holm_perm)} |")
    return "\n".join(lines)


def plot_segments(summaries: list[dict], path: Path, metric: str = "recall@5") -> None:
    """Grouped bars, one panel per dataset. Up to MAX_VERTICAL models: a group per user segment and a bar per model,
    so models compare within a segment; more models: horizontal, a group per model and a bar per segment."""
    datasets = sorted({s["dataset"] for s in summaries}, key=dataset_rank)
    labels = list(dict.fromkeys(row_label(s) for s in summaries))
    by_model = len(labels) > MAX_VERTICAL
    groups, bars = (labels, SEGMENTS) if by_model else (SEGMENTS, labels)
    width = 0.8 / len(bars)
    size = (9.0, 1.2 + 0.55 * len(labels)) if by_model else (max(4.5, 1.2 + 0.45 * len(labels) * len(SEGMENTS)), 4.2)
    fig, axes = plt.subplots(1, len(datasets), figsize=(size[0] * len(datasets), size[1]), squeeze=False)
    colors = plt.get_cmap("tab10").colors
    metric_name = metric_label(metric)
    legend: dict[str, object] = {}
    for ax, dataset in zip(axes[0], datasets):
        by_label = {row_label(s): s for s in summaries if s["dataset"] == dataset}
        n_users = next(iter(by_label.values()))["segments"]
        segment_names = {seg: f"{seg}\n(n={n_users.get(seg, {}).get('n_users', 0):,})" for seg in SEGMENTS}

        def value(label: str, seg: str) -> float:
            """The bar's height; NaN (no bar) for a missing run or value and for an empty segment."""
            values = by_label[label]["segments"].get(seg, {}) if label in by_label else {}
            v = values.get(metric)
            return float(v) if v is not None and values.get("n_users", 1) else float("nan")

        for i, bar in enumerate(bars):
            offsets = [j + (i - (len(bars) - 1) / 2) * width for j in range(len(groups))]
            values = [value(g, bar) if by_model else value(bar, g) for g in groups]
            draw = ax.barh if by_model else ax.bar
            handle = draw(offsets, values, width, label=segment_names[bar].replace("\n", " ") if by_model else bar,
                          color=colors[i % len(colors)])  # fmt: skip
            legend.setdefault(bar, handle)
        ticks = (ax.set_yticks, ax.set_yticklabels) if by_model else (ax.set_xticks, ax.set_xticklabels)
        ticks[0](range(len(groups)))
        ticks[1](groups if by_model else [segment_names[g] for g in groups])
        (ax.set_xlabel if by_model else ax.set_ylabel)(metric_name)
        (ax.set_ylabel if by_model else ax.set_xlabel)("model" if by_model else "user segment (by sequence length)")
        ax.set_title(f"{dataset}: {metric_name} by user segment")
        ax.grid(axis="x" if by_model else "y", alpha=0.3)
        ax.set_axisbelow(True)
        if by_model:
            ax.margins(y=0.5 / len(groups))
            ax.invert_yaxis()  # first row of the table on top
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    if not by_model:
        fig.legend(list(legend.values()), list(legend), loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def write_report(
    folders: Path | Sequence[Path], out: Path | None = None, split: str = "test", published: bool = True,
    metric: str = "ndcg@5", baseline: str | None = None,
) -> tuple[str, list[str]]:
    """Write report.md, report.csv, report_datasets.csv and segments.png (report_val.md, ... for split=val) into `out`
    (default: the first folder); returns (markdown, notes): one warning per skipped metrics file, then one note per
    duplicate left out. The published results join the per-dataset tables only for the test split."""
    folders = [folders] if isinstance(folders, Path) else list(folders)
    for folder in folders:
        if not folder.is_dir():
            raise GlossError(f"{folder} is not a folder")
    runs, notes, skipped = collect(folders, split)
    where = ", ".join(str(f) for f in folders)
    if not runs:
        raise GlossError(f"no usable {metrics_file(split)} below {where}" + "".join(f"; {s}" for s in skipped))
    out = out or folders[0]
    if out.exists() and not out.is_dir():
        raise GlossError(f"--out {out}: not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GlossError(f"--out {out}: cannot make it a folder ({e.strerror}: {e.filename})") from e
    suffix = "" if split == "test" else f"_{split}"
    md = [f"# Results below {where}", "", f"{split} split, full-catalog ranking; best per column **bold**, second <u>underlined</u>.", ""]
    md += [markdown_table(runs), ""]
    all_runs = [m for r in runs for m in r.runs]
    env_notes = environment_notes(all_runs, out) if len(all_runs) > 1 else []
    if env_notes:
        md += ["Runs differ in environment (environment.json):", ""] + [f"- {n}" for n in env_notes] + [""]
    tables = dataset_tables(runs, out, published and split == "test")
    test_notes = []
    for dataset, rows in tables.items():
        ref, comparisons, notes_ = significance(rows, split, metric, baseline)
        md += [dataset_markdown(dataset, rows, metric), ""]
        if ref is not None:
            ref_run = next(row.run for row in rows if row.model == ref and row.run is not None)
            ref_users = len(per_user_values(ref_run, split, metric) or {})
            md += [significance_markdown(ref, comparisons, metric, ref_users), ""]
        test_notes += [f"{dataset}: {n}" for n in notes_]
    if test_notes:
        md += ["Significance tests:", ""] + [f"- {n}" for n in test_notes] + [""]
    if any(r.members for r in runs):
        md += [seeds_markdown(runs), ""]
    md += [f"![Recall@5 by user segment](segments{suffix}.png)", ""]
    if skipped:
        md += ["Skipped files (not in the table):", ""] + [f"- {s}" for s in skipped] + [""]
    if notes:
        md += ["Duplicate runs (newest kept):", ""] + [f"- {n}" for n in notes] + [""]
    text = "\n".join(md)
    try:
        (out / f"report{suffix}.md").write_text(text)
        write_csv(runs, out / f"report{suffix}.csv")
        write_dataset_csv(tables, out / f"report_datasets{suffix}.csv")
        plot_segments([r.summary for r in runs], out / f"segments{suffix}.png")
    except OSError as e:
        raise GlossError(f"--out {out}: cannot write the report there ({e.strerror}: {e.filename})") from e
    return text, skipped + notes + [f"runs differ in environment: {n}" for n in env_notes]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gloss.report", description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", metavar="folder",
                        help="searched recursively for metrics.json (e.g. outputs/multirun/<date>); several are merged")
    parser.add_argument("--out", type=Path, default=None,
                        help="where report.md/.csv and segments.png go (default: the first folder)")
    parser.add_argument("--split", default="test", help="test (metrics.json) or val (metrics_val.json, runs with eval.val=true)")
    parser.add_argument("--metric", default="ndcg@5", choices=METRIC_KEYS,
                        help="the per-user metric of the paired significance tests (default ndcg@5)")
    parser.add_argument("--baseline", default=None, metavar="LABEL",
                        help="the reference row of the tests, e.g. cooc or lis+bm25 (default: the best by NDCG@5)")
    parser.add_argument("--no-published", dest="published", action="store_false",
                        help="leave the published results out of the per-dataset tables (always out for --split val)")
    args = parser.parse_args(argv)
    try:
        text, notes = write_report(args.folders, args.out, args.split, args.published, args.metric, args.baseline)
    except GlossError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    print(text)
    suffix = "" if args.split == "test" else f"_{args.split}"
    print(f"wrote {(args.out or args.folders[0]) / f'report{suffix}.md'}, report{suffix}.csv, "
          f"report_datasets{suffix}.csv, segments{suffix}.png")


if __name__ == "__main__":
    main()
