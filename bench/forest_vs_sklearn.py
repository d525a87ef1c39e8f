#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: one random forest per key with `myriad train --model forest` against the
scikit-learn code a Spark grouped-map UDF runs (pandas groupby-apply, one
RandomForestRegressor fit per group).

One run: `myriad gen --holdout` writes a training and a test file of --groups keys x
--rows rows x --features features (shape --shape); for each configuration, (a)
scikit-learn's defaults (100 trees, no depth limit) and (b) 20 trees with max_depth 8,
both sides fit the training rows of each key and predict its test rows, on one thread.
myriad fits and scores every key; scikit-learn a random subset of --sklearn-groups keys,
extrapolated per model. The table gives, as medians over --repeat runs: fit and predict
time per model, bytes per stored model, held-out R^2 of both, the ratios, and myriad's
train wall time with 1 and 2 threads. See bench/README.md.

Usage: MYR_CLI=build/release/myriad .venv/bin/python bench/forest_vs_sklearn.py [options]
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import pyhelpers  # noqa: E402

# scikit-learn's reference runs on one core, as one Spark task does.
pyhelpers.pin_one_thread()

import argparse  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import sklearn  # noqa: E402
from sklearn.ensemble import RandomForestRegressor  # noqa: E402

KEYS = ["app", "api"]

# name: (myriad --param, RandomForestRegressor keyword arguments, description)
CONFIGS = {
    "a": (None, {}, "scikit-learn defaults: 100 trees, no depth limit"),
    "b": ("n_trees=20,max_depth=8", {"n_estimators": 20, "max_depth": 8},
          "20 trees, max_depth 8"),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Time myriad's per-key random forests against pandas groupby-apply "
                    "with scikit-learn's RandomForestRegressor.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--groups", type=int, default=2_000, help="groups (keys) to generate")
    p.add_argument("--rows", type=int, default=100,
                   help="rows per group, before the train/test split")
    p.add_argument("--features", type=int, default=8, help="feature columns f0..")
    p.add_argument("--shape", default="smooth",
                   choices=["linear", "smooth", "piecewise", "interactions"],
                   help="myriad gen --shape: the function behind the label")
    p.add_argument("--holdout", type=float, default=0.25,
                   help="fraction of each group's rows in the test file")
    p.add_argument("--sklearn-groups", type=int, default=300,
                   help="random groups fitted with scikit-learn, extrapolated per model "
                        "(0: all groups)")
    p.add_argument("--configs", default="a,b",
                   help="comma-separated configurations to run: " + "; ".join(
                       f"{k} = {v[2]}" for k, v in CONFIGS.items()))
    p.add_argument("--repeat", type=int, default=3, help="timed runs of each; medians")
    p.add_argument("--seed", type=int, default=1, help="data, training and subset seed")
    p.add_argument("--keep", action="store_true",
                   help="keep the working directory (generated data and stores)")
    args = p.parse_args(argv)
    for name in ("groups", "rows", "features", "repeat"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.sklearn_groups < 0:
        p.error("--sklearn-groups must be 0 (all) or more")
    if not 0 < args.holdout < 1:
        p.error("--holdout must be in (0, 1)")
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in args.configs if c not in CONFIGS]
    if bad or not args.configs:
        p.error(f"--configs: unknown {bad}; choose from {list(CONFIGS)}")
    return args


def median(xs):
    return statistics.median(xs)


def fmt_n(n):
    return f"{n:,}"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def r2(y, pred):
    y = np.asarray(y, np.float64)
    return 1.0 - float(np.sum((y - pred) ** 2)) / float(np.sum((y - y.mean()) ** 2))


def remove_store(store):
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)


# ----------------------------------------------------------------------------- data


def prepare_data(cli, args, workdir):
    train = workdir / "train.csv"
    test = workdir / "train.test.csv"
    log(f"generating {fmt_n(args.groups)} groups x {args.rows} rows x {args.features} "
        f"features, shape {args.shape}, holdout {args.holdout:g} -> {workdir}")
    pyhelpers.gen(cli, train, groups=args.groups, rows=args.rows,
                  features=args.features, noise=0.3, seed=args.seed,
                  extra=("--shape", args.shape, "--holdout", args.holdout))
    feats = [f"f{j}" for j in range(args.features)]
    return train, test, feats


# --------------------------------------------------------------------------- myriad


def myriad_train(cli, train, feats, param, threads, store, seed):
    """One `myriad train` into a fresh store: (wall seconds, --json summary)."""
    remove_store(store)
    cmd = ["train", train, "--keys", ",".join(KEYS), "--label", "y",
           "--features", ",".join(feats), "--model", "forest", "--holdout", "0",
           "--threads", threads, "--seed", seed, "--store", store, "--json"]
    if param:
        cmd += ["--param", param]
    t0 = time.perf_counter()
    proc = pyhelpers.run_cli(cli, *cmd, timeout=None)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit("myriad train failed" + pyhelpers.describe(proc))
    s = json.loads(proc.stdout)
    if s["groups_failed"] or s["rows_skipped"]:
        log(f"  note: {s['groups_failed']} groups failed, {s['rows_skipped']} rows skipped")
    return wall, s


def myriad_predict(cli, test, store, out):
    t0 = time.perf_counter()
    proc = pyhelpers.run_cli(cli, "predict", test, "--store", store, "--out", out,
                             "--threads", 1, "--json", "--quiet", timeout=None)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit("myriad predict failed" + pyhelpers.describe(proc))
    s = json.loads(proc.stdout)
    if s["rows_predicted"] != s["rows_total"]:
        sys.exit(f"myriad predict left rows without a prediction: {s}")
    return wall, s


def bench_myriad(cli, args, name, train, test, test_df, feats, workdir):
    param = CONFIGS[name][0]
    store = workdir / f"models-{name}.db"
    res = {"fit": [], "wall1": [], "wall2": [], "predict": []}
    n_models = None
    for i in range(args.repeat):
        wall, s = myriad_train(cli, train, feats, param, 1, store, args.seed)
        n_models = s["groups_trained"]
        res["wall1"].append(wall)
        res["fit"].append(s["seconds_group"] + s["seconds_train"] + s["seconds_publish"])
        log(f"  myriad [{name}] train --threads 1, run {i + 1}/{args.repeat}: {wall:.2f} s "
            f"wall (group+fit+store+publish {res['fit'][-1]:.2f} s)")
    for i in range(args.repeat):
        wall, _ = myriad_train(cli, train, feats, param, 2, workdir / "models-2t.db",
                               args.seed)
        res["wall2"].append(wall)
        log(f"  myriad [{name}] train --threads 2, run {i + 1}/{args.repeat}: {wall:.2f} s")
    remove_store(workdir / "models-2t.db")
    preds = workdir / f"preds-{name}.csv"
    for i in range(args.repeat):
        wall, ps = myriad_predict(cli, test, store, preds)
        res["predict"].append(wall)
        log(f"  myriad [{name}] predict --threads 1, run {i + 1}/{args.repeat}: "
            f"{wall:.2f} s ({fmt_n(ps['rows_predicted'])} rows)")
    models = pyhelpers.current_models(store)
    res["bytes"] = float(np.mean([len(m["blob"]) for m in models.values()]))
    res["n_models"] = n_models
    out = pd.read_csv(preds, dtype={k: str for k in KEYS}, keep_default_na=False)
    out = out.sort_values("row")
    pred = out["prediction"].to_numpy(np.float64)
    y = test_df["y"].to_numpy(np.float64)
    res["r2"] = {k: r2(y[i], pred[i]) for k, i in
                 test_df.groupby(KEYS, sort=False).indices.items()}
    remove_store(store)
    preds.unlink(missing_ok=True)
    return res


# -------------------------------------------------------------------------- sklearn


def bench_sklearn(args, name, sub_train, sub_test, feats):
    kwargs = CONFIGS[name][1]
    res = {"fit": [], "predict": []}
    models = None
    for i in range(args.repeat):
        counter = iter(range(10**9))

        def fit_one(g: pd.DataFrame):
            # What a grouped-map UDF does per group: pandas -> numpy, fit, return it.
            return RandomForestRegressor(n_jobs=1, random_state=args.seed + next(counter),
                                         **kwargs).fit(g[feats].to_numpy(np.float64),
                                                       g["y"].to_numpy(np.float64))
        t0 = time.perf_counter()
        models = sub_train.groupby(KEYS, sort=False).apply(fit_one, include_groups=False)
        res["fit"].append(time.perf_counter() - t0)
        log(f"  sklearn [{name}] groupby-apply fit, run {i + 1}/{args.repeat}: "
            f"{res['fit'][-1]:.2f} s ({fmt_n(len(models))} groups)")
    preds = None
    for i in range(args.repeat):
        def predict_one(g: pd.DataFrame):
            return pd.Series(models[g.name].predict(g[feats].to_numpy(np.float64)),
                             index=g.index)
        t0 = time.perf_counter()
        preds = sub_test.groupby(KEYS, sort=False, group_keys=False).apply(
            predict_one, include_groups=False)
        res["predict"].append(time.perf_counter() - t0)
        log(f"  sklearn [{name}] groupby-apply predict, run {i + 1}/{args.repeat}: "
            f"{res['predict'][-1]:.2f} s")
    pred = preds.reindex(sub_test.index).to_numpy(np.float64)
    y = sub_test["y"].to_numpy(np.float64)
    res["r2"] = {k: r2(y[i], pred[i]) for k, i in
                 sub_test.reset_index(drop=True).groupby(KEYS, sort=False).indices.items()}
    res["bytes"] = float(np.mean([len(pickle.dumps(m, protocol=pickle.HIGHEST_PROTOCOL))
                                  for m in models]))
    res["n_models"] = len(models)
    return res


# ---------------------------------------------------------------------------- main


def main(argv=None):
    args = parse_args(argv)
    try:
        cli = pyhelpers.find_cli()
    except RuntimeError as e:
        sys.exit(str(e))
    workdir = Path(tempfile.mkdtemp(prefix="myriad-bench-forest-"))
    try:
        return run(cli, args, workdir)
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(cli, args, workdir):
    train, test, feats = prepare_data(cli, args, workdir)
    train_df = pd.read_csv(train, dtype={k: str for k in KEYS}, keep_default_na=False)
    test_df = pd.read_csv(test, dtype={k: str for k in KEYS}, keep_default_na=False)
    keys = train_df[KEYS].drop_duplicates()
    n_groups = len(keys)
    n_sub = n_groups if args.sklearn_groups == 0 else min(args.sklearn_groups, n_groups)
    pick = keys.sample(n=n_sub, random_state=args.seed) if n_sub < n_groups else keys
    sub_train = train_df.merge(pick, on=KEYS, how="inner", sort=False)
    sub_test = test_df.merge(pick, on=KEYS, how="inner", sort=False)
    subset_note = "all groups" if n_sub == n_groups else \
        f"a random {fmt_n(n_sub)} of {fmt_n(n_groups)} groups, extrapolated per model"

    results = {}
    for name in args.configs:
        log(f"configuration {name}: {CONFIGS[name][2]}")
        my = bench_myriad(cli, args, name, train, test, test_df, feats, workdir)
        sk = bench_sklearn(args, name, sub_train, sub_test, feats)
        results[name] = (my, sk)

    print()
    print(f"forest (random forest regression) per key: myriad vs scikit-learn "
          f"groupby-apply")
    print(f"data      {fmt_n(n_groups)} groups x {args.rows} rows x {len(feats)} features, "
          f"shape {args.shape}, noise 0.3; myriad gen --holdout {args.holdout:g}: "
          f"{fmt_n(len(train_df))} training rows, {fmt_n(len(test_df))} test rows")
    print(f"machine   {os.cpu_count()} CPUs, {platform.machine()}, Python "
          f"{platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
          f"scikit-learn {sklearn.__version__}")
    print(f"timings   median of {args.repeat} runs; one thread each (myriad --threads 1, "
          f"scikit-learn n_jobs=1, BLAS/OpenMP pools pinned to 1)")
    print(f"sklearn   {subset_note}")
    for name, (my, sk) in results.items():
        nm, ns = my["n_models"], sk["n_models"]
        my_fit = median(my["fit"]) / nm * 1e3
        sk_fit = median(sk["fit"]) / ns * 1e3
        my_pred = median(my["predict"]) / n_groups * 1e3
        sk_pred = median(sk["predict"]) / ns * 1e3
        sub_keys = [tuple(k) for k in pick.itertuples(index=False, name=None)]
        my_r2_sub = float(np.mean([my["r2"][k] for k in sub_keys]))
        my_r2_all = float(np.mean(list(my["r2"].values())))
        sk_r2 = float(np.mean(list(sk["r2"].values())))
        w1, w2 = median(my["wall1"]), median(my["wall2"])
        print()
        print(f"[{name}] {CONFIGS[name][2]}  (myriad --param "
              f"{CONFIGS[name][0] or '(defaults)'}; sklearn RandomForestRegressor("
              f"{', '.join(f'{k}={v}' for k, v in CONFIGS[name][1].items()) or ''}))")
        rows = [
            ("fit, ms per model", my_fit, sk_fit, ".3f",
             "myriad: group+fit+store+publish (--json); sklearn: groupby-apply fit"),
            ("predict, ms per model", my_pred, sk_pred, ".3f",
             "myriad predict wall / groups; sklearn: groupby-apply predict"),
            ("bytes per model", my["bytes"], sk["bytes"], ",.0f",
             "myriad: stored blob; sklearn: len(pickle.dumps(model))"),
        ]
        w = max(len(r[0]) for r in rows)
        print(f"  {'':{w}}  {'myriad':>12}  {'sklearn':>12}  {'sklearn/myriad':>14}  note")
        for label, a, b, spec, note in rows:
            print(f"  {label:{w}}  {a:12{spec}}  {b:12{spec}}  {b / a:13.1f}x  {note}")
        print(f"  {'held-out R^2 (mean)':{w}}  {my_r2_sub:12.4f}  {sk_r2:12.4f}  "
              f"{sk_r2 - my_r2_sub:+14.4f}  on the sklearn subset (difference, not ratio); "
              f"myriad on all groups {my_r2_all:.4f}")
        print(f"  myriad train wall: --threads 1 {w1:.2f} s, --threads 2 {w2:.2f} s: "
              f"{w1 / w2:.2f}x with 2 threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
