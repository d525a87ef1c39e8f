#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""myriad.spark.train against the grouped-map pattern it replaces, in one Spark session
(local[2] by default): bench/README.md ("spark_vs_applyinpandas.py") says what is
measured.

    MYR_CLI=build/release/myriad .venv/bin/python bench/spark_vs_applyinpandas.py \\
        [--groups 5000] [--rows 100] [--features 8] [--repeat 3]
"""
import argparse
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import pyhelpers  # noqa: E402

pyhelpers.pin_one_thread()  # one core per Spark task, as on a cluster

N_TREES, MAX_DEPTH = 20, 8


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=5000)
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--features", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--master", default="local[2]")
    args = ap.parse_args()
    cli = os.environ.get("MYR_CLI", os.path.join(ROOT, "build", "release", "myriad"))
    os.environ["PYSPARK_PYTHON"] = sys.executable

    import numpy as np
    import pandas as pd
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.metrics import r2_score

    import myriad.spark

    work = tempfile.mkdtemp(prefix="myriad-spark-bench-")
    data = os.path.join(work, "train.csv")
    subprocess.run([cli, "gen", "--out", data, "--groups", str(args.groups), "--rows",
                    str(args.rows), "--features", str(args.features), "--shape", "smooth",
                    "--noise", "0.3", "--holdout", "0.25", "--quiet"], check=True)
    test = os.path.join(work, "train.test.csv")

    spark = (SparkSession.builder.master(args.master).appName("myriad-vs-applyInPandas")
             .config("spark.ui.enabled", "false")
             .config("spark.driver.memory", "4g")
             .config("spark.sql.shuffle.partitions", "8")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    feats = [f"f{i}" for i in range(args.features)]
    schema = T.StructType([T.StructField("app", T.StringType()),
                           T.StructField("api", T.StringType())] +
                          [T.StructField(c, T.DoubleType()) for c in feats + ["y"]])
    train_df = spark.read.csv(data, header=True, schema=schema).cache()
    test_df = spark.read.csv(test, header=True, schema=schema).cache()
    n_train, n_test = train_df.count(), test_df.count()
    print(f"{args.groups:,} groups, {n_train:,} training rows, {n_test:,} held-out rows, "
          f"{args.features} features, Spark {spark.version} {args.master}", flush=True)

    # ---- the pattern it replaces: a pandas DataFrame, a fit and a pickle per group
    def fit_pickle(pdf):
        model = RandomForestRegressor(n_estimators=N_TREES, max_depth=MAX_DEPTH,
                                      random_state=0, n_jobs=1)
        model.fit(pdf[feats].to_numpy(), pdf["y"].to_numpy())
        return pd.DataFrame({"app": [pdf["app"].iloc[0]], "api": [pdf["api"].iloc[0]],
                             "model": [pickle.dumps(model)]})

    pickles = "app string, api string, model binary"

    def run_sklearn():
        (train_df.groupBy("app", "api").applyInPandas(fit_pickle, pickles)
         .write.format("noop").mode("overwrite").save())

    def run_myriad():
        (myriad.spark.train(train_df, keys=["app", "api"], label="y", features=feats,
                            model="forest",
                            params={"n_trees": N_TREES, "max_depth": MAX_DEPTH})
         .write.format("noop").mode("overwrite").save())

    times = {"applyInPandas + scikit-learn": [], "myriad.spark": []}
    for i in range(args.repeat):  # interleaved: the machine is noisy
        for name, fn in (("applyInPandas + scikit-learn", run_sklearn),
                         ("myriad.spark", run_myriad)):
            t = time.monotonic()
            fn()
            times[name].append(time.monotonic() - t)
            print(f"  run {i + 1} {name}: {times[name][-1]:.2f} s", flush=True)

    # ---- held-out R^2 of each (untimed): per group, then the mean over groups
    flagged = (train_df.withColumn("_test", F.lit(False))
               .unionByName(test_df.withColumn("_test", F.lit(True))))

    def fit_score(pdf):
        tr, te = pdf[~pdf["_test"]], pdf[pdf["_test"]]
        model = RandomForestRegressor(n_estimators=N_TREES, max_depth=MAX_DEPTH,
                                      random_state=0, n_jobs=1)
        model.fit(tr[feats].to_numpy(), tr["y"].to_numpy())
        r2 = r2_score(te["y"], model.predict(te[feats].to_numpy())) if len(te) > 1 else None
        return pd.DataFrame({"r2": [r2]})

    sk_r2 = (flagged.groupBy("app", "api").applyInPandas(fit_score, "r2 double")
             .toPandas()["r2"].dropna())
    models = myriad.spark.train(train_df, keys=["app", "api"], label="y", features=feats,
                                model="forest",
                                params={"n_trees": N_TREES, "max_depth": MAX_DEPTH})
    preds = myriad.spark.predict(test_df.withColumn("_id", F.monotonically_increasing_id()),
                                 models).toPandas()
    truth = test_df.withColumn("_id", F.monotonically_increasing_id()).toPandas()
    both = preds.merge(truth[["_id", "y"]], left_on="row", right_on="_id")
    my_r2 = both.groupby(["app", "api"]).apply(
        lambda g: r2_score(g["y"], g["prediction"]) if len(g) > 1 else np.nan,
        include_groups=False).dropna()

    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["applyInPandas + scikit-learn"] / med["myriad.spark"]
    print()
    print(f"{'':32}{'median s':>10}{'groups/s':>10}{'held-out R^2':>14}")
    for name, r2 in (("applyInPandas + scikit-learn", sk_r2), ("myriad.spark", my_r2)):
        print(f"{name:32}{med[name]:10.2f}{args.groups / med[name]:10.0f}"
              f"{r2.mean():14.4f}")
    print(f"\nmyriad.spark is {ratio:.1f}x faster (medians of {args.repeat}); "
          f"R^2 difference {my_r2.mean() - sk_r2.mean():+.4f} over {len(my_r2):,} groups")
    spark.stop()
    if abs(my_r2.mean() - sk_r2.mean()) > 0.01:
        sys.exit("held-out R^2 differs by more than 0.01")


if __name__ == "__main__":
    main()
