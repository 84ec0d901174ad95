"""Scale benchmark (issue 25 item 6): wall time, peak RSS and per-stage time / users/s of `run.py` on the synthetic
datasets of make_synthetic.py, at 1x / 10x / 50x of beauty, plus the growth exponent from the smallest to the largest
scale. Every run is a separate `run.py` process under `/usr/bin/time -v` (peak RSS and CPU time of the run), with a fresh data
cache (so load + split is measured) and one shared embedding cache, filled by an untimed encode first (`--warm`)
for the models that embed titles (lis, gloss_plus). Outputs stay under --work (default /tmp/scale), never the repo.

    python benchmarks/scale/run.py --scales 1 10 --models popularity cooc lis sasrec gloss_plus
    python benchmarks/scale/run.py --scales 50 --models cooc --markdown /tmp/scale/table.md
    python benchmarks/scale/run.py --table            # the Markdown table of every result so far (results.jsonl)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODELS = {  # run.py overrides per benchmarked model
    "popularity": ["model=popularity"],
    "cooc": ["model=cooc"],
    "lis": ["model=lis"],
    "sasrec": ["model=sasrec", "trainer.max_epochs=1", "model.loss=sampled", "model.sparse_items=true", "model.lr=3e-3"],
    "gloss_plus": ["model=gloss_plus", "model.sources=[cooc,popularity]"],
}
EMBEDS = {"lis", "gloss_plus"}  # need the catalog's title embeddings (cached by --warm)
STAMP = r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]"


def dataset_overrides(work: Path, scale: str) -> list[str]:
    return ["dataset=synthetic", f"dataset.folder={work / f'x{scale}'}", f"dataset.name=synthetic{scale}"]


def env(cache: Path, threads: int = 1) -> dict[str, str]:
    return {**os.environ, "GLOSS_CACHE_DIR": str(cache), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "GLOSS_DATA_DIR": os.environ.get("GLOSS_DATA_DIR", "/work/shared/data"), "PYTHONUNBUFFERED": "1"}


def fresh_cache(work: Path, name: str) -> Path:
    """An empty cache folder whose embeddings/ and encoders/ are the shared ones (links), so data is rebuilt but
    title embeddings are reused."""
    cache = work / "cache" / name
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    for sub in ("embeddings", "encoders"):
        (work / "emb_cache" / sub).mkdir(parents=True, exist_ok=True)
        (cache / sub).symlink_to(work / "emb_cache" / sub)
    return cache


def ensure_data(work: Path, scale: str) -> None:
    if not (work / f"x{scale}" / "items.parquet").is_file():
        subprocess.run([sys.executable, str(REPO / "benchmarks/scale/make_synthetic.py"), "--scale", scale, "--out",
                        str(work / f"x{scale}")], check=True)


def warm(work: Path, scale: str) -> None:
    """Untimed: encode the catalog titles once into the shared embedding cache."""
    code = ("import sys; from hydra import compose, initialize_config_dir; from hydra.utils import instantiate\n"
            f"with initialize_config_dir(config_dir={str(REPO / 'conf')!r}, version_base=None):\n"
            f"    cfg = compose('config', overrides={dataset_overrides(work, scale) + ['model=lis']!r}, "
            "return_hydra_config=True)\n"
            "from hydra.core.hydra_config import HydraConfig; HydraConfig.instance().set_config(cfg)\n"
            "instantiate(cfg.retriever).index(instantiate(cfg.dataset).catalog.texts)\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=env(work / "emb_cache"), cwd=REPO)


def load_avg() -> float:
    return os.getloadavg()[0]


def stamp(line: str) -> float:
    return datetime.strptime(re.match(STAMP, line).group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def parse_log(log: Path) -> dict:
    """Stage times from run.log: load + split (read line start -> '(built)' line), fit, test ranking."""
    out: dict = {}
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    for line in lines:
        if m := re.search(r"dataset \S+: read (\d+) interactions, \d+ item texts \(([\d.]+)s\)", line):
            out["interactions"], read_start = int(m.group(1)), stamp(line) - float(m.group(2))
        elif m := re.search(r"dataset \S+ \(built\): \{'users': (\d+), 'items': (\d+)", line):
            out["users"], out["items"] = int(m.group(1)), int(m.group(2))
            out["load_s"] = round(stamp(line) - read_start, 1)
        elif m := re.search(r"\] - fit: ([\d.]+)s", line):
            out["fit_s"] = float(m.group(1))
        elif m := re.search(r"test: ranked (\d+) users in ([\d.]+)s \(([\d.]+) users/s\)", line):
            out["rank_s"], out["rank_users_per_s"] = float(m.group(2)), float(m.group(3))
    return out


def measure(work: Path, scale: str, model: str, extra: list[str], timeout: float, threads: int = 1) -> dict:
    name = f"{model}_{scale}x"
    run_dir = work / "runs" / f"{name}_{time.strftime('%H%M%S')}"
    cache = fresh_cache(work, name)
    cmd = ["/usr/bin/time", "-v", sys.executable, str(REPO / "run.py"), *dataset_overrides(work, scale),
           *MODELS[model], *extra, f"hydra.run.dir={run_dir}"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    load_start, start = load_avg(), time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env(cache, threads), cwd=REPO, timeout=timeout)
        rc, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as e:
        rc, err = "timeout", (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    wall = time.time() - start
    row = {"scale": scale, "model": model, "overrides": MODELS[model] + extra, "rc": rc, "wall_s": round(wall, 1),
           "load_avg_start": load_start, "load_avg_end": load_avg(), "threads": threads, "commit": commit, "run_dir": str(run_dir),
           "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(start)), **parse_log(run_dir / "run.log")}
    if m := re.search(r"Maximum resident set size \(kbytes\): (\d+)", err):
        row["peak_rss_gib"] = round(int(m.group(1)) / 2**20, 2)
    cpu = [float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", err)]
    if cpu:  # on a shared machine wall time measures the other jobs too; CPU time is the run's own work
        row["cpu_s"] = round(sum(cpu), 1)
    if run_dir.is_dir():
        (run_dir / "time.txt").write_text(err[-4000:])
    if rc != 0:
        row["error"] = err.strip().splitlines()[-1][:200] if err.strip() else ""
    shutil.rmtree(cache, ignore_errors=True)
    return row


def fmt(v, spec: str = "") -> str:
    return "" if v is None else format(v, spec)


def differs(r: dict) -> list[str]:
    """How a run's settings differ from the benchmark's own (MODELS, one thread): extra or changed overrides (a capped
    number of steps or users, another learning rate, an engine), missing ones, the thread count."""
    mine = MODELS[r["model"]]
    got = r.get("overrides", mine)
    return ([o for o in got if o not in mine] + [f"without {o}" for o in mine if o not in got]
            + ([f"{r['threads']} threads"] if r.get("threads", 1) != 1 else []))


def table(rows: list[dict]) -> str:
    """One row per (scale, model): the latest successful run with the benchmark's settings, else the latest run (its
    differences named); then each model's growth exponent smallest -> largest scale, from runs with the benchmark's
    settings only."""
    latest: dict[tuple[str, str], dict] = {}
    for r in rows:
        key, held = (r["scale"], r["model"]), latest.get((r["scale"], r["model"]))
        if held is None or not (held["rc"] == 0 and not differs(held)) or (r["rc"] == 0 and not differs(r)):
            latest[key] = r
    out = ["| scale | model | users | items | interactions | load+split s | fit s | rank s | rank users/s | wall s | "
           "CPU s | peak RSS GiB | load avg (start/end) | commit | when |", "|" + "---|" * 15]
    for (scale, model), r in sorted(latest.items(), key=lambda kv: (float(kv[0][0]), list(MODELS).index(kv[0][1]))):
        status = "" if r["rc"] == 0 else f" ({'timed out' if r['rc'] == 'timeout' else 'failed'})"
        status += f" (with: {', '.join(differs(r))})" if differs(r) else ""
        out.append(f"| {scale}x | {model}{status} | {fmt(r.get('users'))} | {fmt(r.get('items'))} | "
                   f"{fmt(r.get('interactions'))} | {fmt(r.get('load_s'))} | {fmt(r.get('fit_s'))} | "
                   f"{fmt(r.get('rank_s'))} | {fmt(r.get('rank_users_per_s'), '.0f')} | {r['wall_s']} | {fmt(r.get('cpu_s'))} | "
                   f"{fmt(r.get('peak_rss_gib'))} | {r['load_avg_start']:.1f} / {r['load_avg_end']:.1f} | "
                   f"{r['commit']} | {r['when']} |")
    growth = ["", "Growth exponent b in cost ~ scale^b, smallest to largest scale measured:", "",
              "| model | scales | wall b | CPU b | rank b | peak RSS b |", "|---|---|---|---|---|---|"]
    for model in MODELS:
        done = sorted((float(s), r) for (s, m), r in latest.items()
                      if m == model and r["rc"] == 0 and not differs(r))  # the benchmark's settings only
        if len(done) < 2:
            continue
        (s0, a), (s1, b) = done[0], done[-1]

        def exp(key: str) -> str:
            return f"{math.log(b[key] / a[key]) / math.log(s1 / s0):.2f}" if a.get(key) and b.get(key) else ""
        growth.append(f"| {model} | {s0:g}x -> {s1:g}x | {exp('wall_s')} | {exp('cpu_s')} | {exp('rank_s')} | "
                      f"{exp('peak_rss_gib')} |")
    return "\n".join(out + (growth if len(growth) > 5 else []))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scales", nargs="*", default=["1", "10", "50"])
    p.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--work", type=Path, default=Path("/tmp/scale"))
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    p.add_argument("--threads", type=int, default=1, help="OMP/MKL threads of each run (default 1)")
    p.add_argument("--markdown", type=Path, help="also write the table here")
    p.add_argument("--table", action="store_true", help="only print the table of results.jsonl")
    p.add_argument("--no-warm", action="store_true", help="skip the untimed encode (embeddings already cached)")
    p.add_argument("overrides", nargs="*", default=[], help="extra run.py overrides for every run (after --)")
    args = p.parse_args()
    results = args.work / "results.jsonl"
    if not args.table:
        for scale in args.scales:
            ensure_data(args.work, scale)
            if EMBEDS & set(args.models) and not args.no_warm:
                warm(args.work, scale)
            for model in args.models:
                row = measure(args.work, scale, model, args.overrides, args.timeout, args.threads)
                print(json.dumps(row), flush=True)
                with open(results, "a") as f:
                    f.write(json.dumps(row) + "\n")
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []
    text = table(rows)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
