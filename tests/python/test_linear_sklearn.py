# SPDX-License-Identifier: Apache-2.0
"""Family `linear` against scikit-learn, group by group.

For each generated data set (equal groups, and Zipf-skewed groups down to one row) and
each alpha (1.0, 0.1, and 0 = least squares), `myriad train --holdout 0` fits every key;
the test fits the same rows of each key with scikit-learn's Ridge(alpha) (alpha 0:
LinearRegression) and requires intercept and coefficients to agree to 1e-6 (np.allclose,
rtol = atol = 1e-6). Coefficients are read twice: from the raw blobs in the SQLite store,
decoded by the documented byte layout with the CRC32C checked here, and from
`myriad models --format json --describe`; the two must be identical.
"""
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, Ridge

import pyhelpers as h

KEYS = ["app", "api"]
N_FEATURES = 5
ALPHAS = [1.0, 0.1, 0.0]
TOL = dict(rtol=1e-6, atol=1e-6)


def read_groups(path):
    """{(app, api): (X, y)} with each group's rows in file order, parsed by pandas."""
    df = pd.read_csv(path, dtype={k: str for k in KEYS}, keep_default_na=False)
    feats = [f"f{j}" for j in range(N_FEATURES)]
    assert list(df.columns) == KEYS + feats + ["y"], df.columns
    return {k: (g[feats].to_numpy(np.float64), g["y"].to_numpy(np.float64))
            for k, g in df.groupby(KEYS, sort=False)}


def sk_model(alpha):
    # Ridge's default solver for dense X is Cholesky on the centered data, as myriad's.
    return LinearRegression() if alpha == 0 else Ridge(alpha=alpha)


def ols_needs(n_features):
    return n_features + 1  # centered least squares: rows >= unknowns incl. intercept


@pytest.fixture(scope="module", params=["uniform", "zipf"])
def groups(request, uniform_data, zipf_data):
    path = uniform_data if request.param == "uniform" else zipf_data
    return request.param, path, read_groups(path)


@pytest.fixture(scope="module", params=ALPHAS, ids=lambda a: f"alpha{a:g}")
def trained(request, cli, groups, tmp_path_factory):
    """One `myriad train` run per (data set, alpha), with --holdout 0."""
    name, path, grp = groups
    alpha = request.param
    store = tmp_path_factory.mktemp(f"store-{name}-{alpha:g}") / "models.db"
    summary = h.train_json(cli, path, "--features", f"f0..f{N_FEATURES - 1}",
                           "--model", "linear", "--param", f"alpha={alpha:g}",
                           "--holdout", "0", "--seed", "3", "--threads", "2",
                           "--store", store)
    models = h.current_models(store)
    fits = {}
    for key, (X, y) in grp.items():
        if alpha == 0 and len(y) < ols_needs(N_FEATURES):
            continue
        fits[key] = sk_model(alpha).fit(X, y)
    return dict(name=name, alpha=alpha, store=store, summary=summary, groups=grp,
                models=models, fits=fits)


def test_crc32c_check_value():
    # The test's own CRC32C must be the Castagnoli CRC the format documents.
    assert h.crc32c(b"123456789") == 0xE3069283
    assert h.crc32c(b"") == 0


def test_every_group_accounted_for(trained):
    s, grp, models = trained["summary"], trained["groups"], trained["models"]
    n_rows = sum(len(y) for _, y in grp.values())
    assert s["family"] == "linear" and s["n_features"] == N_FEATURES
    assert s["rows_total"] == n_rows
    assert s["rows_used"] + s["rows_skipped"] == s["rows_total"]
    assert s["groups_total"] == len(grp)
    assert s["groups_trained"] == len(trained["fits"]) == len(models)
    assert s["groups_trained"] + s["groups_failed"] == s["groups_total"]
    assert set(models) == set(trained["fits"])
    # Only least squares on groups smaller than p + 1 rows may fail, as too_few_rows.
    small = {k for k, (_, y) in grp.items() if len(y) < ols_needs(N_FEATURES)}
    if trained["alpha"] == 0 and small:
        assert set(s["failed"]) == {"too_few_rows"}, s["failed"]
        assert s["failed"]["too_few_rows"]["groups"] == len(small)
        assert s["skipped"]["group_failed"]["rows"] == sum(len(grp[k][1]) for k in small)
        err_keys = {(r["app"], r["api"]): r for r in h.rows(
            trained["store"], "SELECT app, api, n_rows, reason FROM errors "
            "WHERE run_id = ?", s["run_id"])}
        assert set(err_keys) == small
        for k, r in err_keys.items():
            assert r["reason"] == "too_few_rows"
            assert r["n_rows"] == len(grp[k][1])
    else:
        assert s["groups_failed"] == 0 and s["failed"] == {}
        assert s["rows_skipped"] == 0 and s["skipped"] == {}


def test_blobs_match_sklearn(trained):
    """Every group's intercept and coefficients, decoded from the raw blob, against
    scikit-learn fitted on the same rows."""
    schema_hashes = set()
    bad = []
    worst = (0.0, None)
    for key, sk in trained["fits"].items():
        rec = trained["models"][key]
        blob = h.decode_blob(rec["blob"])  # checks magic, sizes and CRC32C
        assert blob["family"] == "linear" and rec["family"] == "linear"
        assert blob["payload_version"] == 1 and blob["n_features"] == N_FEATURES
        assert len(rec["blob"]) == 48 + 8 * (1 + N_FEATURES) + 4
        schema_hashes.add(blob["schema_hash"])
        got = np.array([blob["intercept"], *blob["coef"]])
        want = np.array([sk.intercept_, *sk.coef_])
        diff = float(np.max(np.abs(got - want)))
        if diff > worst[0]:
            worst = (diff, key)
        if not np.allclose(got, want, **TOL):
            bad.append((key, len(trained["groups"][key][1]), got.tolist(), want.tolist()))
    assert not bad, (f"{len(bad)} of {len(trained['fits'])} groups differ from "
                     f"scikit-learn beyond 1e-6; first: key, rows, myriad, sklearn = "
                     f"{bad[0]}")
    assert len(schema_hashes) == 1, "one run, one feature list: one schema hash"
    print(f"{trained['name']} alpha={trained['alpha']}: max |diff| {worst[0]:.3g} "
          f"at {worst[1]}")


def test_describe_matches_blobs(cli, trained):
    """`models --format json --describe` shows exactly the stored blobs' values and the
    store's rows."""
    listed = h.models_json(cli, trained["store"], "--describe")
    models = trained["models"]
    assert len(listed) == len(models)
    seen = set()
    for m in listed:
        key = (m["app"], m["api"])
        assert key not in seen
        seen.add(key)
        rec = models[key]
        blob = h.decode_blob(rec["blob"])
        assert m["family"] == "linear"
        assert m["version"] == rec["version"] == 1
        assert m["run_id"] == rec["run_id"] == trained["summary"]["run_id"]
        assert m["n_rows"] == rec["n_rows"] and m["n_holdout"] == rec["n_holdout"] == 0
        assert m["metrics"] == rec["metrics"]
        assert m["blob_bytes"] == len(rec["blob"])
        d = m["model"]
        assert d["family"] == "linear" and d["n_features"] == N_FEATURES
        # Numbers are printed so that they read back to the same double: exact equality.
        assert d["model"]["intercept"] == blob["intercept"], key
        assert d["model"]["coef"] == blob["coef"], key
    assert seen == set(models)


def test_train_metrics_match_sklearn(trained):
    """With no holdout, each model has train_r2 (= sklearn's score on the training rows,
    to 1e-9) and train_rmse, and no validation metrics."""
    bad = []
    for key, sk in trained["fits"].items():
        X, y = trained["groups"][key]
        rec = trained["models"][key]
        assert rec["n_rows"] == len(y) and rec["n_holdout"] == 0
        assert set(rec["metrics"]) == {"train_r2", "train_rmse"}, rec["metrics"]
        r2 = sk.score(X, y)
        rmse = math.sqrt(float(np.mean((y - sk.predict(X)) ** 2)))
        if abs(rec["metrics"]["train_r2"] - r2) > 1e-9 or \
                not math.isclose(rec["metrics"]["train_rmse"], rmse, rel_tol=1e-9,
                                 abs_tol=1e-12):
            bad.append((key, rec["metrics"], r2, rmse))
    assert not bad, f"{len(bad)} groups' train metrics differ; first: {bad[0]}"


@pytest.mark.parametrize("dataset", ["uniform", "zipf"])
def test_holdout_split(cli, dataset, uniform_data, zipf_data, tmp_path):
    """--holdout 0.25: ceil(0.25 n) rows of each group are held out, the rest fitted, and
    the stored metrics are those of the stored model on that split."""
    path = uniform_data if dataset == "uniform" else zipf_data
    grp = read_groups(path)
    store = tmp_path / "models.db"
    s = h.train_json(cli, path, "--features", "f0..f4", "--holdout", "0.25", "--seed",
                     "9", "--store", store)
    models = h.current_models(store)
    assert s["groups_trained"] == len(grp) == len(models)
    need = 1  # ridge (alpha 1) fits a single row
    bad_split, bad_ss = [], []
    for key, (X, y) in grp.items():
        n = len(y)
        rec = models[key]
        expect_hold = math.ceil(0.25 * n)
        if dataset == "zipf":
            # A group keeps at least the rows the family needs to fit.
            expect_hold = min(expect_hold, n - need)
        if rec["n_holdout"] != expect_hold or rec["n_rows"] + rec["n_holdout"] != n:
            bad_split.append((key, n, rec["n_rows"], rec["n_holdout"]))
            continue
        met = rec["metrics"]
        if rec["n_holdout"] > 0:
            assert {"r2", "rmse", "mae", "train_r2", "train_rmse"} <= set(met), met
        else:
            assert "r2" not in met and {"train_r2", "train_rmse"} <= set(met), met
        # The stored model's squared residuals over all n rows split into the training
        # part (n_rows * train_rmse^2) and the held-out part (n_holdout * rmse^2).
        blob = h.decode_blob(rec["blob"])
        resid = y - (blob["intercept"] + X @ np.array(blob["coef"]))
        total = float(np.sum(resid ** 2))
        parts = rec["n_rows"] * met["train_rmse"] ** 2 + \
            rec["n_holdout"] * met.get("rmse", 0.0) ** 2
        if not math.isclose(total, parts, rel_tol=1e-9, abs_tol=1e-12):
            bad_ss.append((key, total, parts))
    assert not bad_split, (f"{len(bad_split)} groups with a wrong split; first "
                           f"(key, rows, n_rows, n_holdout): {bad_split[0]}")
    assert not bad_ss, f"metrics do not match the stored models; first: {bad_ss[0]}"
    if dataset == "uniform":
        # Held-out rows differ by key: the models are not the fit on all rows.
        key, (X, y) = next(iter(grp.items()))
        full = Ridge(alpha=1.0).fit(X, y)
        blob = h.decode_blob(models[key]["blob"])
        assert not np.allclose(blob["coef"], full.coef_, rtol=1e-9, atol=1e-9)
