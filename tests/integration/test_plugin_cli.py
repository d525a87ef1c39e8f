# SPDX-License-Identifier: Apache-2.0
"""Model plugins through the real CLI: `myriad train --plugin` with the example `knn`
plugin (examples/knn), its blobs read back with the documented payload layout
(docs/plugins.md), its predictions compared with scikit-learn's KNeighborsRegressor, and
the messages a user sees when a plugin is missing or is not a plugin.

The plugin comes from $MYR_KNN_PLUGIN, else from the plugins/ folder next to the CLI
($MYR_CLI), else build/release/plugins/libmyriad_knn.so; a missing plugin fails every
test with instructions, it never skips them.
"""
import csv
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import pyhelpers as h

FEATURES = ["f0", "f1", "f2"]


def find_plugin(cli: Path) -> Path:
    env = os.environ.get("MYR_KNN_PLUGIN")
    if env:
        candidates = [Path(env)]
    else:
        candidates = [Path(cli).parent / "plugins" / "libmyriad_knn.so",
                      h.REPO / "build" / "release" / "plugins" / "libmyriad_knn.so"]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    how = f"MYR_KNN_PLUGIN={env!r}" if env else (
        "MYR_KNN_PLUGIN is unset and none of " + ", ".join(map(str, candidates)))
    raise RuntimeError(
        f"knn plugin not found: {how} is a file. Build it (`make build`, or cmake --build "
        "... --target myriad_knn) and point MYR_KNN_PLUGIN at libmyriad_knn.so.")


@pytest.fixture(scope="module")
def plugin(cli) -> Path:
    try:
        return find_plugin(cli)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def data(cli, tmp_path_factory) -> tuple[Path, Path]:
    """8 groups x ~50 rows x 3 features, with a ~20% test file of the same groups."""
    d = tmp_path_factory.mktemp("knn")
    train = h.gen(cli, d / "data.csv", groups=8, rows=50, features=3, noise=0.2, seed=5,
                  extra=("--holdout", "0.2"))
    return train, d / "data.test.csv"


def read_groups(path: Path) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """{(app, api): (X rows in file order, y)} from a `myriad gen` CSV."""
    groups: dict[tuple, list] = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            groups.setdefault((r["app"], r["api"]), []).append(
                [float(r[c]) for c in FEATURES] + [float(r["y"])])
    return {k: (np.array(v)[:, :-1], np.array(v)[:, -1]) for k, v in groups.items()}


@pytest.fixture(scope="module")
def store(cli, plugin, data, tmp_path_factory) -> Path:
    s = tmp_path_factory.mktemp("knn-store") / "s.db"
    summary = h.train_json(cli, data[0], "--plugin", plugin, "--model", "knn", "--param",
                           "k=3", "--features", ",".join(FEATURES), "--store", s)
    assert summary["groups_trained"] == 8, summary
    return s


def decode_knn(blob: bytes) -> dict:
    """The knn payload v1 of docs/plugins.md (examples/knn/knn.c), read independently."""
    b = h.decode_blob(blob)
    assert b["family"] == "knn" and b["payload_version"] == 1, b
    p, pay = b["n_features"], b["payload"]
    k, flags, n = struct.unpack_from("<IIQ", pay, 0)
    off = 16
    out = {"k": k, "flags": flags, "n_rows": n}
    if flags & 2:
        out["mean"] = struct.unpack_from(f"<{p}d", pay, off)
        out["scale"] = struct.unpack_from(f"<{p}d", pay, off + 8 * p)
        off += 16 * p
    assert len(pay) == off + 8 * n * (p + 1), "payload length does not match its header"
    out["x"] = np.array(struct.unpack_from(f"<{n * p}d", pay, off)).reshape(n, p)
    out["y"] = np.array(struct.unpack_from(f"<{n}d", pay, off + 8 * n * p))
    return out


def no_tie(knn: KNeighborsRegressor, x: np.ndarray, k: int) -> np.ndarray:
    """Rows whose k-th and (k+1)-th nearest training rows are not at equal distance
    (where they are, scikit-learn's choice depends on its search order)."""
    n_fit = knn.n_samples_fit_
    if n_fit <= k:
        return np.ones(len(x), dtype=bool)
    d, _ = knn.kneighbors(x, n_neighbors=k + 1)
    return ~np.isclose(d[:, k - 1], d[:, k], rtol=1e-12, atol=0)


def test_list_models_shows_plugin_families(cli, plugin):
    base = h.run_cli(cli, "train", "--list-models")
    assert base.returncode == 0, h.describe(base)
    assert "knn" not in base.stdout.split()
    for args in (["--plugin", plugin, "--list-models"], ["--list-models", "--plugin", plugin]):
        p = h.run_cli(cli, "train", *args)
        assert p.returncode == 0, h.describe(p)
        names = [line.split()[0] for line in p.stdout.splitlines() if line.strip()]
        assert names[0] == "linear" and "knn" in names, h.describe(p)


def test_unknown_family_without_plugin(cli, data, tmp_path):
    p = h.run_cli(cli, "train", data[0], "--keys", "app,api", "--label", "y", "--model",
                  "knn", "--store", tmp_path / "s.db")
    assert p.returncode == 1, h.describe(p)
    assert "unknown model family 'knn'" in p.stderr, h.describe(p)


@pytest.mark.parametrize("path,expect", [
    ("/nonexistent/libmyriad_nope.so", "cannot load plugin '/nonexistent/libmyriad_nope.so'"),
    ("libmyriad_nope.so", "./NAME"),
    ("libm.so.6", "'libm.so.6' is not a myriad plugin"),
])
def test_bad_plugin_is_a_clear_error(cli, data, tmp_path, path, expect):
    p = h.run_cli(cli, "train", data[0], "--keys", "app,api", "--label", "y", "--plugin",
                  path, "--store", tmp_path / "s.db")
    assert p.returncode == 2, h.describe(p)
    assert expect in p.stderr, h.describe(p)
    assert not (tmp_path / "s.db").exists(), "a failed --plugin must not create the store"


def test_blobs_hold_the_training_rows(cli, store, data):
    """Each model's payload is k=3, uniform, unscaled, and holds its group's rows."""
    groups = read_groups(data[0])
    models = h.current_models(store)
    assert set(models) == set(groups)
    for key, m in models.items():
        assert m["family"] == "knn"
        pl = decode_knn(m["blob"])
        x, y = groups[key]
        assert (pl["k"], pl["flags"], pl["n_rows"]) == (3, 0, len(y)), key
        np.testing.assert_array_equal(pl["x"], x)  # bit-exact, in input order
        np.testing.assert_array_equal(pl["y"], y)


def test_training_metrics_match_sklearn(cli, store, data):
    """train_rmse / train_r2 come from myriad's own knn predictions on the training rows:
    they must equal those of KNeighborsRegressor(n_neighbors=3)."""
    groups = read_groups(data[0])
    models = h.current_models(store)
    checked = 0
    for key, (x, y) in groups.items():
        knn = KNeighborsRegressor(n_neighbors=3).fit(x, y)
        if not no_tie(knn, x, 3).all():
            continue
        checked += 1
        pred = knn.predict(x)
        rmse = float(np.sqrt(np.mean((y - pred) ** 2)))
        r2 = 1 - float(np.sum((y - pred) ** 2)) / float(np.sum((y - y.mean()) ** 2))
        met = models[key]["metrics"]
        assert met["train_rmse"] == pytest.approx(rmse, rel=1e-9, abs=1e-12), key
        assert met["train_r2"] == pytest.approx(r2, rel=1e-9, abs=1e-12), key
    assert checked >= 4, "too few groups without distance ties to compare"


def test_models_without_plugin_names_the_family(cli, store):
    key = sorted(h.current_models(store))[0]
    p = h.run_cli(cli, "models", "--store", store, "--key", f"app={key[0]},api={key[1]}")
    out = p.stdout + p.stderr
    assert "needs family 'knn'" in out and "--plugin" in out, h.describe(p)


def predict_ready(cli) -> str | None:
    """None when `myriad predict` exists and takes --plugin, else why not."""
    p = h.run_cli(cli, "predict", "--help")
    if p.returncode != 0:
        return "myriad predict not built (predict --help failed: " + \
            (p.stderr.strip().splitlines() or ["no output"])[-1] + ")"
    if "--plugin" not in p.stdout:
        return "myriad predict not built with --plugin support"
    return None


# (--param for myriad, the scikit-learn estimator it must equal, k)
PREDICT_CASES = {
    "uniform": ("k=3", lambda: KNeighborsRegressor(n_neighbors=3), 3),
    "distance": ("k=3,weights=distance",
                 lambda: KNeighborsRegressor(n_neighbors=3, weights="distance"), 3),
    "standardize": ("k=4,standardize=true",
                    lambda: make_pipeline(StandardScaler(), KNeighborsRegressor(4)), 4),
}


@pytest.mark.parametrize("case", sorted(PREDICT_CASES))
def test_predict_matches_sklearn(cli, plugin, data, tmp_path, case):
    """Held-out rows scored by `myriad predict --plugin` equal scikit-learn's estimator
    fitted on each group's training rows."""
    why = predict_ready(cli)
    if why:
        pytest.skip(why)
    param, make, k = PREDICT_CASES[case]
    store = tmp_path / "s.db"
    h.train_json(cli, data[0], "--plugin", plugin, "--model", "knn", "--param", param,
                 "--features", ",".join(FEATURES), "--store", store)
    out = tmp_path / "pred.csv"
    p = h.run_cli(cli, "predict", data[1], "--store", store, "--plugin", plugin, "--out", out)
    assert p.returncode == 0, h.describe(p)
    with open(data[1], newline="") as f:
        test_rows = list(csv.DictReader(f))
    with open(out, newline="") as f:
        preds = list(csv.DictReader(f))
    assert len(preds) == len(test_rows), "one output row per input row"
    assert {"app", "api", "row", "prediction", "reason"} <= set(preds[0]), preds[0]
    groups = read_groups(data[0])
    checked = 0
    for key, (x, y) in groups.items():
        idx = [i for i, r in enumerate(test_rows) if (r["app"], r["api"]) == key]
        if not idx:
            continue
        xt = np.array([[float(test_rows[i][c]) for c in FEATURES] for i in idx])
        est = make().fit(x, y)
        want = est.predict(xt)
        if case == "standardize":
            ok = no_tie(est[-1], est[0].transform(xt), k)
        else:
            ok = no_tie(est, xt, k)
        for j, i in enumerate(idx):
            row = preds[i]
            assert (row["app"], row["api"], row["row"], row["reason"]) == \
                (key[0], key[1], str(i + 1), ""), row
            if ok[j]:
                assert float(row["prediction"]) == pytest.approx(want[j], rel=1e-9,
                                                                 abs=1e-12), (key, i)
                checked += 1
    assert checked >= 40, "too few held-out rows compared"
