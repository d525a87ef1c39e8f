# SPDX-License-Identifier: Apache-2.0
"""Family `forest` against scikit-learn's RandomForestRegressor / RandomForestClassifier.

Random forests are random, so the two cannot agree model by model; they must agree on
average. For each of five generated data sets (1,000 groups each; regression on the
smooth, piecewise and interactions shapes, binary classification on piecewise, 3-class
classification on smooth), `myriad gen --holdout 0.8` writes a training file and a test
file (every group has about 200 training rows and 800 test rows). myriad trains every key
on the training file (`--holdout 0 --param n_trees=20,max_depth=8[,task=classification]`)
and `myriad predict` scores the test file; scikit-learn fits the same training rows of
each group with the same hyperparameters (n_estimators=20, max_depth=8, everything else
at its default, n_jobs=1) and predicts the same test rows. The test asserts, on the mean
over groups of each group's held-out metric:
  - regression: R^2 within 0.01;
  - classification: accuracy within 0.01 and log-loss within 0.01, the log-loss computed
    as sklearn.metrics.log_loss does (probabilities clipped to [eps, 1 - eps], eps the
    float64 machine epsilon);
and that `myriad predict` gave every test row a prediction.

Why the test set is four times the training set, and why myriad runs several seeds: a
20-tree forest's held-out log-loss is noisy (a row whose true class gets probability 0
costs -log(eps) = 36), so with 1,000 groups x 25 test rows its mean moves by about 0.008
from one set of seeds to the next, as much as the tolerance. With 800 test rows per group
the spread of one run is about 0.002-0.003; myriad (fast) is run with several --seed
values and its metrics averaged, scikit-learn once with a different random_state per
group (one shared random_state gives every group the same bootstrap draws and shifts all
groups together, by up to 0.02 in accuracy). The difference of the two means then has a
standard deviation of about 0.003 for log-loss and about 0.001 for accuracy and R^2, so
the 0.01 tolerances are at least 3.5 standard deviations, while a real difference in the
algorithm (max_features, bootstrap, split rule, probability estimate) shows up as a bias
beyond them.

scikit-learn is the slow side (about 30 ms per 20-tree fit); its groups are spread over
worker processes (one model per process at a time, n_jobs=1). MYR_TEST_JOBS caps them.
"""
from __future__ import annotations

import io
import json
import math
import multiprocessing
import os
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.metrics import log_loss as sk_log_loss

import pyhelpers as h

KEYS = ["app", "api"]
N_GROUPS = 1000
ROWS = 1000          # per group, before the split
HOLDOUT = 0.8        # fraction of each group's rows in the test file
N_FEATURES = 6
N_TREES = 20
MAX_DEPTH = 8
TOL = 0.01
EPS = float(np.finfo(np.float64).eps)

# name: (gen options, task, myriad seeds averaged)
DATASETS = {
    "smooth": (["--shape", "smooth"], "regression", 2),
    "piecewise": (["--shape", "piecewise"], "regression", 2),
    "interactions": (["--shape", "interactions"], "regression", 2),
    "piecewise-binary": (["--shape", "piecewise", "--task", "classification",
                          "--classes", "2"], "classification", 4),
    "smooth-3class": (["--shape", "smooth", "--task", "classification", "--classes", "3"],
                      "classification", 4),
}
REGRESSION = [k for k, v in DATASETS.items() if v[1] == "regression"]
CLASSIFICATION = [k for k, v in DATASETS.items() if v[1] == "classification"]


def n_jobs() -> int:
    env = os.environ.get("MYR_TEST_JOBS")
    if env:
        return max(1, int(env))
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


# --------------------------------------------------------------------------- metrics

def r2(y, pred) -> float:
    """R^2 as sklearn.metrics.r2_score (1 - SS_res / SS_tot; 0 if y is constant and the
    fit perfect is not a case these data produce)."""
    y = np.asarray(y, np.float64)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - pred) ** 2)) / ss_tot


def clipped_log_loss(y, proba, classes) -> float:
    """Mean -log p(true class), p clipped to [eps, 1 - eps] as sklearn.metrics.log_loss
    clips; a true class the model never saw has p = 0 (so -log(eps))."""
    classes = np.asarray(classes, np.float64)
    idx = np.searchsorted(classes, y)
    ok = (idx < len(classes)) & (classes[np.minimum(idx, len(classes) - 1)] == y)
    p = np.where(ok, proba[np.arange(len(y)), np.minimum(idx, len(classes) - 1)], 0.0)
    return float(np.mean(-np.log(np.clip(p, EPS, 1 - EPS))))


# --------------------------------------------------------------------------- data

def split_groups(df: pd.DataFrame, feats: list[str]) -> dict:
    """{(app, api): (X, y)} in file order."""
    return {k: (g[feats].to_numpy(np.float64), g["y"].to_numpy(np.float64))
            for k, g in df.groupby(KEYS, sort=False)}


def read_csv(path):
    return pd.read_csv(path, dtype={k: str for k in KEYS}, keep_default_na=False)


def generate(cli, name, d):
    """One data set: d/train.csv and d/train.test.csv."""
    extra, _, _ = DATASETS[name]
    train = d / "train.csv"
    h.gen(cli, train, groups=N_GROUPS, rows=ROWS, features=N_FEATURES, noise=0.3,
          seed=17 + list(DATASETS).index(name), extra=("--holdout", HOLDOUT, *extra))
    test = d / "train.test.csv"
    assert test.is_file()
    return train, test


# --------------------------------------------------------------------------- myriad

def parse_probabilities(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """'c1:p1;c2:p2;...' per row -> (classes ascending, rows x classes matrix); a class
    a row's model does not have gets probability 0. The text is reparsed as CSV (fast:
    pandas' C parser) with ':' and ';' as separators."""
    text = "\n".join(col.to_numpy(dtype=object).tolist())
    text = text.replace(":", ",").replace(";", ",")
    flat = pd.read_csv(io.StringIO(text), header=None, dtype=np.float64).to_numpy()
    assert len(flat) == len(col) and flat.shape[1] % 2 == 0
    cls_cols, p_cols = flat[:, 0::2], flat[:, 1::2]
    cls = np.unique(cls_cols[~np.isnan(cls_cols)])
    out = np.zeros((len(col), len(cls)))
    for j in range(cls_cols.shape[1]):
        has = ~np.isnan(cls_cols[:, j])
        out[np.flatnonzero(has), np.searchsorted(cls, cls_cols[has, j])] = p_cols[has, j]
    return cls, out


def run_myriad(cli, d, name, seed, test_df, groups) -> dict:
    """Train on the training file with --seed seed and predict the test file; returns
    the per-group metrics, the predict summary and the row checks' failures."""
    task = DATASETS[name][1]
    store, preds = d / f"models-{seed}.db", d / f"preds-{seed}.csv"
    params = f"n_trees={N_TREES},max_depth={MAX_DEPTH}"
    if task == "classification":
        params += ",task=classification"
    t0 = time.perf_counter()
    s = h.train_json(cli, d / "train.csv", "--features", f"f0..f{N_FEATURES - 1}",
                     "--model", "forest", "--param", params, "--holdout", "0",
                     "--seed", seed, "--store", store)
    assert s["family"] == "forest", s
    assert s["groups_trained"] == N_GROUPS and s["groups_failed"] == 0, s
    assert s["rows_skipped"] == 0, s
    proc = h.run_cli(cli, "predict", d / "train.test.csv", "--store", store, "--out",
                     preds, "--json", "--quiet")
    assert proc.returncode == 0, "myriad predict failed" + h.describe(proc)
    summary = json.loads(proc.stdout)
    seconds = time.perf_counter() - t0
    out = read_csv(preds).sort_values("row", kind="stable")
    for p in d.glob(f"models-{seed}.db*"):
        p.unlink()
    preds.unlink()
    classes = proba = None
    if task == "classification" and len(out) == len(test_df):
        classes, proba = parse_probabilities(out["probabilities"])
    return dict(summary=summary, seconds=seconds,
                classes=None if classes is None else classes.tolist(),
                row_problems=row_problems(task, test_df, out, proba),
                metrics=myriad_metrics(task, test_df, out, groups, classes, proba))


def row_problems(task, test_df, out, proba) -> list[str]:
    """What is wrong with the predictions as rows: every test row must have exactly one
    output row, for its own key, with a finite prediction and no reason; a classifier's
    probabilities must sum to 1."""
    n, bad = len(test_df), []
    if len(out) != n:
        return [f"{len(out)} output rows for {n} test rows"]
    if not np.array_equal(out["row"].to_numpy(), np.arange(1, n + 1)):
        return ["column row is not 1..n once each"]
    if (out["reason"] != "").any():
        bad.append(f"{int((out['reason'] != '').sum())} rows with a reason, e.g. "
                   f"{out[out['reason'] != ''].iloc[0].to_dict()}")
    for k in KEYS:
        if not (out[k].to_numpy() == test_df[k].to_numpy()).all():
            bad.append(f"key column {k} differs from the test file's")
    if not np.isfinite(out["prediction"].to_numpy(np.float64)).all():
        bad.append("non-finite predictions")
    if task == "classification":
        if not np.allclose(proba.sum(axis=1), 1.0, atol=1e-9):
            bad.append("probabilities that do not sum to 1")
        if not ((proba >= 0) & (proba <= 1)).all():
            bad.append("probabilities outside [0, 1]")
    return bad


def myriad_metrics(task, test_df, out, groups, classes, proba) -> dict:
    """{key: metric tuple}; out is sorted by `row`, so aligned with the test rows."""
    y = test_df["y"].to_numpy(np.float64)
    pred = out["prediction"].to_numpy(np.float64)
    res = {}
    if task == "regression":
        for k, i in groups.items():
            res[k] = (r2(y[i], pred[i]),)
        return res
    # The predicted class is the most probable one (ties: the first, as sklearn's).
    assert np.array_equal(classes[np.argmax(proba, axis=1)], pred)
    for k, i in groups.items():
        res[k] = (float(np.mean(pred[i] == y[i])), clipped_log_loss(y[i], proba[i], classes))
    return res


# --------------------------------------------------------------------------- sklearn

_WORK: dict = {}  # filled before the pool forks; read by the workers


def _sk_chunk(args) -> list:
    task, keys, base_seed = args
    train, test = _WORK["train"], _WORK["test"]
    out = []
    for gi, k in keys:
        X, y = train[k]
        Xt, yt = test[k]
        if task == "regression":
            m = RandomForestRegressor(n_estimators=N_TREES, max_depth=MAX_DEPTH, n_jobs=1,
                                      random_state=base_seed + gi).fit(X, y)
            out.append((k, (r2(yt, m.predict(Xt)),)))
        else:
            m = RandomForestClassifier(n_estimators=N_TREES, max_depth=MAX_DEPTH,
                                       n_jobs=1, random_state=base_seed + gi).fit(X, y)
            proba = m.predict_proba(Xt)
            pred = m.classes_[np.argmax(proba, axis=1)]
            out.append((k, (float(np.mean(pred == yt)),
                            clipped_log_loss(yt, proba, m.classes_))))
    return out


def run_sklearn(task, train, test, base_seed=1000) -> tuple[dict, float]:
    _WORK["train"], _WORK["test"] = train, test
    keys = list(enumerate(train))
    jobs = n_jobs()
    chunks = [(task, keys[i::jobs * 4], base_seed) for i in range(jobs * 4)]
    t0 = time.perf_counter()
    try:
        if jobs > 1 and "fork" in multiprocessing.get_all_start_methods():
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                parts = pool.map(_sk_chunk, chunks)
        else:
            parts = [_sk_chunk(c) for c in chunks]
    finally:
        _WORK.clear()
    return {k: v for part in parts for k, v in part}, time.perf_counter() - t0


# --------------------------------------------------------------------------- both

_RESULTS: dict = {}


def compared(cli, tmp_path_factory, name) -> dict:
    """Both sides' metrics on data set name, computed once per module (the data files
    are deleted once both have run: about 70 MB each)."""
    if name in _RESULTS:
        return _RESULTS[name]
    _, task, seeds = DATASETS[name]
    d = tmp_path_factory.mktemp(f"forest-{name}")
    train_path, test_path = generate(cli, name, d)
    feats = [f"f{j}" for j in range(N_FEATURES)]
    try:
        train_df, test_df = read_csv(train_path), read_csv(test_path)
        groups = {k: np.asarray(v) for k, v in
                  test_df.groupby(KEYS, sort=False).indices.items()}
        runs = [run_myriad(cli, d, name, seed, test_df, groups) for seed in range(seeds)]
        train = split_groups(train_df, feats)
        test = split_groups(test_df, feats)
        del train_df
        assert len(train) == N_GROUPS and set(test) == set(train)
        sk, sk_seconds = run_sklearn(task, train, test)
    finally:
        for p in d.iterdir():
            p.unlink()
    names = ["r2"] if task == "regression" else ["accuracy", "log_loss"]
    per_seed = [np.mean(list(r["metrics"].values()), axis=0) for r in runs]
    my = dict(zip(names, np.mean(per_seed, axis=0)))
    skm = dict(zip(names, np.mean(list(sk.values()), axis=0)))
    fmt = lambda m: ", ".join(f"{k} {v:.4f}" for k, v in m.items())  # noqa: E731
    report = (f"{name} ({len(test_df):,} test rows): myriad {fmt(my)} (mean of "
              f"{len(runs)} seeds: " + "; ".join(fmt(dict(zip(names, x))) for x in per_seed)
              + f"; {np.mean([r['seconds'] for r in runs]):.1f} s per train+predict); "
              f"scikit-learn {fmt(skm)} ({sk_seconds:.1f} s on {n_jobs()} processes)")
    print(report)
    _RESULTS[name] = dict(task=task, n_test=len(test_df), runs=runs, my=my, sk=skm,
                          report=report)
    return _RESULTS[name]


# --------------------------------------------------------------------------- tests

def test_log_loss_is_sklearns():
    """The clipped log-loss used here is sklearn.metrics.log_loss, including a
    probability of exactly 0 and 1 for the true class."""
    y = np.array([0.0, 1.0, 2.0, 1.0, 0.0])
    p = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [0.3, 0.3, 0.4],
                  [1.0, 0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            want = sk_log_loss(y, y_proba=p, labels=[0.0, 1.0, 2.0])
        except TypeError:  # scikit-learn before 1.9
            want = sk_log_loss(y, p, labels=[0.0, 1.0, 2.0])
    assert math.isclose(clipped_log_loss(y, p, [0.0, 1.0, 2.0]), want, rel_tol=1e-12)
    assert want > 7  # the zero-probability row dominates: -log(eps) / 5


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_test_row_predicted(cli, tmp_path_factory, name):
    """Every row of the test file got exactly one prediction, for its own key, with no
    reason; classifiers give probabilities that sum to 1."""
    c = compared(cli, tmp_path_factory, name)
    for r in c["runs"]:
        s = r["summary"]
        assert s["rows_total"] == c["n_test"] and s["rows_predicted"] == c["n_test"], s
        assert s["rows_missed"] == 0 and s["missed"] == {}, s
        assert r["row_problems"] == []
    if c["task"] == "classification":
        # Every model knows every class (about 200 training rows per group).
        k = 3 if name.endswith("3class") else 2
        for r in c["runs"]:
            assert r["classes"] == [float(i) for i in range(k)]


@pytest.mark.parametrize("name", REGRESSION)
def test_regression_matches_sklearn(cli, tmp_path_factory, name):
    """Mean held-out R^2 within 0.01 of RandomForestRegressor's."""
    c = compared(cli, tmp_path_factory, name)
    assert abs(c["my"]["r2"] - c["sk"]["r2"]) <= TOL, c["report"]
    # The comparison means something only if the forests learn: the shapes are not noise.
    assert c["sk"]["r2"] > 0.3, c["report"]


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_classification_matches_sklearn(cli, tmp_path_factory, name):
    """Mean held-out accuracy and log-loss each within 0.01 of RandomForestClassifier's."""
    c = compared(cli, tmp_path_factory, name)
    assert abs(c["my"]["accuracy"] - c["sk"]["accuracy"]) <= TOL, c["report"]
    assert abs(c["my"]["log_loss"] - c["sk"]["log_loss"]) <= TOL, c["report"]
    k = 3 if name.endswith("3class") else 2
    assert c["sk"]["accuracy"] > 1.0 / k + 0.2, c["report"]  # well above chance
