#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: one ridge model per key with `myriad train` against the scikit-learn code a
Spark grouped-map UDF runs (pandas groupby-apply, one Ridge fit per group).

One run: generate (or reuse with --data) a CSV of --groups x --rows rows with --features
features, time `myriad train --model linear` end to end as a subprocess and read its own
phase timings (--json), time pandas.read_csv plus groupby(["app", "api"]).apply(fit_one)
on a random subset of groups (--sklearn-groups, extrapolated per model), check that the
coefficients of that subset agree to 1e-6, and print a table of medians over --repeat
runs. Both sides use one thread by default. See bench/README.md.

Usage: MYR_CLI=build/release/myriad .venv/bin/python bench/linear_vs_sklearn.py [options]
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
import resource  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import sklearn  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402

KEYS = ["app", "api"]
TOLERANCE = 1e-6


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Time myriad's per-key linear models against pandas groupby-apply "
                    "with scikit-learn's Ridge (the work of a Spark grouped-map UDF).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--groups", type=int, default=100_000, help="groups (keys) to generate")
    p.add_argument("--rows", type=int, default=50, help="rows per group")
    p.add_argument("--features", type=int, default=8, help="feature columns f0..")
    p.add_argument("--threads", type=int, default=1, help="myriad train --threads")
    p.add_argument("--alpha", type=float, default=1.0, help="ridge penalty, both sides")
    p.add_argument("--sklearn-groups", type=int, default=5_000,
                   help="random groups fitted with scikit-learn, extrapolated per model "
                        "(0: all groups)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs of each; medians")
    p.add_argument("--seed", type=int, default=1, help="data and subset seed")
    p.add_argument("--data", type=Path,
                   help="CSV to use: reused when it exists (its shape wins over --groups/"
                        "--rows/--features), else generated there and kept")
    p.add_argument("--keep", action="store_true",
                   help="keep the working directory (generated data and stores)")
    args = p.parse_args(argv)
    for name in ("groups", "rows", "features", "threads", "repeat"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.sklearn_groups < 0:
        p.error("--sklearn-groups must be 0 (all) or more")
    if args.alpha <= 0:
        p.error("--alpha must be above 0 (the reference is Ridge)")
    return args


def median(xs):
    return statistics.median(xs)


def fmt_n(n):
    return f"{n:,}"


def fmt_s(s):
    return f"{s:.2f} s" if s >= 1 else f"{s * 1e3:.0f} ms"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- data


def prepare_data(cli, args, workdir):
    """Path of the CSV and its feature names, generating it unless --data exists."""
    if args.data and args.data.exists():
        path = args.data.resolve()
        log(f"reusing {path}")
    else:
        path = (args.data or workdir / "data.csv").resolve()
        log(f"generating {fmt_n(args.groups)} groups x {args.rows} rows x "
            f"{args.features} features -> {path}")
        t0 = time.perf_counter()
        pyhelpers.gen(cli, path, groups=args.groups, rows=args.rows,
                      features=args.features, noise=0.5, seed=args.seed)
        log(f"  generated in {time.perf_counter() - t0:.1f} s")
    header = pd.read_csv(path, nrows=0).columns.tolist()
    missing = [c for c in KEYS + ["y"] if c not in header]
    if missing:
        sys.exit(f"{path}: no column(s) {missing}; expected `myriad gen` output "
                 f"(columns: {header})")
    feats = [c for c in header if c not in KEYS and c != "y"]
    return path, feats


# --------------------------------------------------------------------------- myriad


def time_myriad(cli, data, feats, args, workdir):
    """Run `myriad train` --repeat times into fresh stores; returns the wall times, the
    --json summaries and the last store."""
    walls, summaries, store = [], [], None
    for i in range(args.repeat):
        store = workdir / f"models-{i}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store}{suffix}").unlink(missing_ok=True)
        cmd = ["train", data, "--keys", ",".join(KEYS), "--label", "y",
               "--features", ",".join(feats), "--model", "linear",
               "--param", f"alpha={args.alpha!r}", "--threads", args.threads,
               "--seed", args.seed, "--store", store, "--json"]
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = pyhelpers.run_cli(cli, *cmd, timeout=None)
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        if proc.returncode != 0:
            sys.exit("myriad train failed" + pyhelpers.describe(proc))
        s = json.loads(proc.stdout)
        if s["groups_failed"] or s["rows_skipped"]:
            log(f"  note: {s['groups_failed']} groups failed, {s['rows_skipped']} rows "
                "skipped")
        walls.append(wall)
        s["cpu_seconds"] = cpu
        summaries.append(s)
        log(f"  myriad run {i + 1}/{args.repeat}: {wall:.2f} s wall, {cpu:.2f} s CPU (read "
            f"{s['seconds_read']:.2f} s, group {s['seconds_group']:.2f} s, fit+store "
            f"{s['seconds_train']:.2f} s, publish {s['seconds_publish']:.2f} s)")
        if i + 1 < args.repeat:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{store}{suffix}").unlink(missing_ok=True)
    return walls, summaries, store


# -------------------------------------------------------------------------- sklearn


def time_read_csv(data, repeat):
    times, df = [], None
    for i in range(repeat):
        del df
        t0 = time.perf_counter()
        df = pd.read_csv(data, dtype={k: str for k in KEYS})
        times.append(time.perf_counter() - t0)
        log(f"  pandas.read_csv run {i + 1}/{repeat}: {times[-1]:.2f} s "
            f"({fmt_n(len(df))} rows)")
    return times, df


def make_fit_one(feats, alpha):
    def fit_one(g: pd.DataFrame) -> pd.Series:
        # What a grouped-map UDF does per group: pandas -> numpy, fit, return a row.
        m = Ridge(alpha=alpha).fit(g[feats].to_numpy(np.float64),
                                   g["y"].to_numpy(np.float64))
        return pd.Series([m.intercept_, *m.coef_], index=["intercept", *feats])
    return fit_one


def time_groupby_apply(df, feats, alpha, repeat):
    fit_one = make_fit_one(feats, alpha)
    times, out = [], None
    for i in range(repeat):
        t0 = time.perf_counter()
        out = df.groupby(KEYS, sort=False).apply(fit_one, include_groups=False)
        times.append(time.perf_counter() - t0)
        log(f"  groupby-apply run {i + 1}/{repeat}: {times[-1]:.2f} s "
            f"({fmt_n(len(out))} groups)")
    return times, out


# --------------------------------------------------------------------------- verify


def compare(store, sk_coefs, feats):
    """Max |myriad - sklearn| over the subset's intercepts and coefficients, read from the
    raw blobs (CRC-checked); also the number of groups beyond the tolerance."""
    models = pyhelpers.current_models(store)
    worst, bad, missing = 0.0, 0, 0
    for key, row in sk_coefs.iterrows():
        rec = models.get(tuple(key))
        if rec is None:
            missing += 1
            continue
        blob = pyhelpers.decode_blob(rec["blob"])
        got = np.array([blob["intercept"], *blob["coef"]])
        want = row[["intercept", *feats]].to_numpy(np.float64)
        worst = max(worst, float(np.max(np.abs(got - want))))
        if not np.allclose(got, want, rtol=TOLERANCE, atol=TOLERANCE):
            bad += 1
    return worst, bad, missing


# ---------------------------------------------------------------------------- main


def main(argv=None):
    args = parse_args(argv)
    try:
        cli = pyhelpers.find_cli()
    except RuntimeError as e:
        sys.exit(str(e))
    workdir = Path(tempfile.mkdtemp(prefix="myriad-bench-"))
    try:
        return run(cli, args, workdir)
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(cli, args, workdir):
    data, feats = prepare_data(cli, args, workdir)

    log(f"myriad train --threads {args.threads}, {args.repeat} runs")
    walls, summaries, store = time_myriad(cli, data, feats, args, workdir)
    s = summaries[-1]
    n_models = s["groups_trained"]
    n_groups = s["groups_total"]
    n_rows = s["rows_total"]

    log(f"scikit-learn reference (one thread), {args.repeat} runs each")
    read_times, df = time_read_csv(data, args.repeat)
    keys = df[KEYS].drop_duplicates()
    n_sub = len(keys) if args.sklearn_groups in (0, None) else \
        min(args.sklearn_groups, len(keys))
    subset_note = "all groups" if n_sub == len(keys) else \
        f"a random {fmt_n(n_sub)} of {fmt_n(len(keys))} groups, extrapolated per model"
    if n_sub < len(keys):
        pick = keys.sample(n=n_sub, random_state=args.seed)
        sub = df.merge(pick, on=KEYS, how="inner", sort=False)
    else:
        sub = df
    del df
    apply_times, sk_coefs = time_groupby_apply(sub, feats, args.alpha, args.repeat)
    assert len(sk_coefs) == n_sub

    log("checking the subset's coefficients against myriad's store")
    max_diff, n_bad, n_missing = compare(store, sk_coefs, feats)

    # ms per model, medians
    my_e2e = median(walls) / n_models * 1e3
    my_cpu = median([x["cpu_seconds"] for x in summaries]) / n_models * 1e3
    # The counterpart of groupby-apply (which groups, then fits): everything after parsing.
    my_fit = median([x["seconds_group"] + x["seconds_train"] + x["seconds_publish"]
                     for x in summaries]) / n_models * 1e3
    my_read = median([x["seconds_read"] for x in summaries])
    sk_apply = median(apply_times) / n_sub * 1e3
    sk_read = median(read_times)
    sk_e2e = sk_read / n_groups * 1e3 + sk_apply
    total = n_models  # models the totals are stated for

    size_mb = data.stat().st_size / 1e6
    print()
    print(f"linear (ridge, alpha={args.alpha:g}) per key: myriad vs scikit-learn "
          f"groupby-apply")
    print(f"data      {data} ({fmt_n(n_groups)} groups, {fmt_n(n_rows)} rows, "
          f"{len(feats)} features, {size_mb:.0f} MB)")
    print(f"machine   {os.cpu_count()} CPUs, {platform.machine()}, Python "
          f"{platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
          f"scikit-learn {sklearn.__version__}")
    print(f"timings   median of {args.repeat} runs; myriad --threads {args.threads}, "
          "scikit-learn on one thread")
    print(f"sklearn   {subset_note}")
    print()
    rows = [
        ("myriad train, end to end (wall)", my_e2e,
         "parse + group + fit + store + publish"),
        ("myriad train, end to end (CPU)", my_cpu,
         "user+sys of the process (store writes overlap fits)"),
        ("myriad group+fit+store+publish", my_fit, "everything after CSV parsing"),
        ("sklearn groupby-apply only", sk_apply, "DataFrame already in memory"),
        ("sklearn read_csv + groupby-apply", sk_e2e, "read_csv of the whole file / groups"),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"{'':{w}}  {'ms/model':>10}  {'for ' + fmt_n(total) + ' models':>18}  note")
    for name, ms, note in rows:
        print(f"{name:{w}}  {ms:10.4f}  {fmt_s(ms * total / 1e3):>18}  {note}")
    print()
    print(f"speedup   end to end:      sklearn read_csv+apply / myriad train  = "
          f"{sk_e2e / my_e2e:8.1f}x")
    print(f"          end to end, CPU: sklearn read_csv+apply / myriad CPU    = "
          f"{sk_e2e / my_cpu:8.1f}x")
    print(f"          training only:   sklearn groupby-apply / myriad group..publish = "
          f"{sk_apply / my_fit:8.1f}x")
    print(f"reading   myriad CSV parse {my_read:.2f} s; pandas.read_csv {sk_read:.2f} s "
          f"({sk_read / my_read:.1f}x)")
    ok = n_bad == 0 and n_missing == 0
    print(f"check     {fmt_n(n_sub)} groups compared with sklearn: max |diff| "
          f"{max_diff:.3g} (tolerance {TOLERANCE:g}): "
          f"{'OK' if ok else f'FAILED ({n_bad} beyond tolerance, {n_missing} missing)'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
