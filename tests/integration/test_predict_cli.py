# SPDX-License-Identifier: Apache-2.0
"""`myriad predict`, end to end: generate data with a held-out test file, train on the
training file, score the test file, and check the output against the input (every row
once, in order, joined back by `row`) and against the models themselves (the linear
coefficients read through `myriad models --describe`, applied in Python).

Every file lives under pytest's tmp directories; nothing is written into the repository.
"""
import csv
import io
import json
import random

import pytest

import pyhelpers as h

KEYS = ["app", "api"]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained(cli, tmp_path_factory):
    """data.csv / data.test.csv (60 groups x 30 rows x 3 features, 20% held out) and a
    linear store trained on data.csv."""
    d = tmp_path_factory.mktemp("predict")
    data = h.gen(cli, d / "data.csv", groups=60, rows=30, features=3, noise=0.3, seed=21,
                 extra=("--holdout", "0.2"))
    test = d / "data.test.csv"
    assert test.is_file(), "gen --holdout 0.2 did not write data.test.csv"
    store = d / "models.db"
    h.train_json(cli, data, "--store", store, "--features", "f0..f2")
    models = {}
    for m in h.models_json(cli, store, "--describe"):
        desc = m["model"]
        assert desc["family"] == "linear"
        models[(m["app"], m["api"])] = desc["model"]
    return dict(dir=d, data=data, test=test, store=store, models=models)


def linear(model, row):
    value = model["intercept"]
    for j, c in enumerate(model["coef"]):
        value += c * float(row[f"f{j}"])
    return value


def predict(cli, trained, inp, out, *args):
    return h.run_cli(cli, "predict", inp, "--store", trained["store"], "--out", out, *args)


# ----------------------------------------------------------------------------- usage


def test_help(cli):
    p = h.run_cli(cli, "predict", "--help")
    assert p.returncode == 0, h.describe(p)
    for opt in ["--store", "--out", "--delimiter", "--threads", "--plugin", "--json",
                "--quiet", "--help"]:
        assert opt in p.stdout, f"--help does not explain {opt}" + h.describe(p)
    for word in ["row", "prediction", "probabilities", "reason", "no_model", "bad_row",
                 "missing_key", "missing_feature", "non_numeric", "model_error",
                 "Example"]:
        assert word in p.stdout, f"--help does not mention {word}" + h.describe(p)


def test_usage_errors(cli, trained, tmp_path):
    out = tmp_path / "p.csv"
    p = h.run_cli(cli, "predict", trained["test"], "--out", out)
    assert p.returncode == 2 and "--store" in p.stderr, h.describe(p)
    p = h.run_cli(cli, "predict", trained["test"], "--store", trained["store"])
    assert p.returncode == 2 and "--out" in p.stderr, h.describe(p)
    p = h.run_cli(cli, "predict", "--store", trained["store"], "--out", out)
    assert p.returncode == 2 and "INPUT" in p.stderr, h.describe(p)
    p = h.run_cli(cli, "predict", trained["test"], "--store", trained["store"], "--out",
                  out, "--delimiter", "x")
    assert p.returncode == 2, h.describe(p)
    assert not out.exists()


def test_missing_store_fails(cli, trained, tmp_path):
    out = tmp_path / "p.csv"
    p = h.run_cli(cli, "predict", trained["test"], "--store", tmp_path / "nope.db",
                  "--out", out)
    assert p.returncode == 1, h.describe(p)
    assert p.stderr.startswith("myriad predict: "), h.describe(p)
    assert not out.exists()


def test_missing_key_column_fails(cli, trained, tmp_path):
    inp = tmp_path / "nokey.csv"
    inp.write_text("app,f0,f1,f2\napp-0000,1,2,3\n")
    out = tmp_path / "p.csv"
    p = predict(cli, trained, inp, out)
    assert p.returncode == 1, h.describe(p)
    assert "api" in p.stderr and "app, f0, f1, f2" in p.stderr, h.describe(p)
    assert not out.exists()


def test_missing_feature_columns_fail(cli, trained, tmp_path):
    inp = tmp_path / "nofeat.csv"
    inp.write_text("app,api,f0,f1\napp-0000,/api/v1/ep-0000,1,2\n")
    out = tmp_path / "p.csv"
    p = predict(cli, trained, inp, out)
    assert p.returncode == 1, h.describe(p)
    assert "f2" in p.stderr, h.describe(p)
    assert not out.exists()


# ----------------------------------------------------------------------------- scoring


def test_predicts_every_held_out_row(cli, trained, tmp_path):
    # The held-out rows plus rows of keys the store has never seen.
    text = trained["test"].read_text()
    unknown = [f"app-9999,/api/v1/ep-{i:04d},0.5,-0.25,1.0,0\n" for i in range(3)]
    inp = tmp_path / "in.csv"
    inp.write_text(text + "".join(unknown))
    out = tmp_path / "pred.csv"
    p = predict(cli, trained, inp, out, "--json")
    assert p.returncode == 0, h.describe(p)
    summary = json.loads(p.stdout)

    rows_in = read_csv(inp)
    rows_out = read_csv(out)
    with open(out, newline="") as f:
        header = next(csv.reader(f))
    assert header == KEYS + ["row", "prediction", "reason"]
    assert len(rows_out) == len(rows_in), "every input row appears exactly once"
    assert [int(r["row"]) for r in rows_out] == list(range(1, len(rows_in) + 1)), \
        "output rows are in input order, numbered from 1"

    n_unknown = 0
    for r in rows_out:
        src = rows_in[int(r["row"]) - 1]  # join back by row
        key = (src["app"], src["api"])
        assert (r["app"], r["api"]) == key
        if key in trained["models"]:
            assert r["reason"] == "", r
            want = linear(trained["models"][key], src)
            assert abs(float(r["prediction"]) - want) <= 1e-9 * max(1.0, abs(want)), \
                (r, want)
        else:
            n_unknown += 1
            assert r["reason"] == "no_model" and r["prediction"] == "", r
    assert n_unknown == len(unknown)

    assert summary["rows_total"] == len(rows_in)
    assert summary["rows_predicted"] == len(rows_in) - n_unknown
    assert summary["missed"]["no_model"]["rows"] == n_unknown
    assert summary["missed"]["no_model"]["first_row"] == len(rows_in) - n_unknown + 1
    known = {(r["app"], r["api"]) for r in rows_in} & set(trained["models"])
    assert summary["models_loaded"] == len(known), "one load per key, not per row"
    assert summary["keys_seen"] == len(known) + n_unknown


def test_bad_rows_are_kept_and_explained(cli, trained, tmp_path):
    inp = tmp_path / "bad.csv"
    inp.write_text(
        "app,api,f0,f1,f2\n"
        "app-0000,/api/v1/ep-0000,1,2,3\n"      # 1 predicted
        "app-0000,/api/v1/ep-0000,1,2\n"        # 2 bad_row (4 fields)
        "app-0000,/api/v1/ep-0000,1,NA,3\n"     # 3 missing_feature
        "app-0000,/api/v1/ep-0000,1,x,3\n"      # 4 non_numeric
        ",/api/v1/ep-0000,1,2,3\n"              # 5 missing_key
        "app-0000,/api/v1/ep-0000,1,\"2\"x,3\n"  # 6 bad_row (quoting)
        "app-0001,/api/v1/ep-0001,0,0,0\n")     # 7 predicted
    out = tmp_path / "p.csv"
    p = predict(cli, trained, inp, out)
    assert p.returncode == 0, h.describe(p)
    got = read_csv(out)
    assert [r["reason"] for r in got] == ["", "bad_row", "missing_feature", "non_numeric",
                                          "missing_key", "bad_row", ""]
    assert [r["row"] for r in got] == [str(i) for i in range(1, 8)]
    assert got[1]["app"] == "app-0000"  # a ragged row keeps the keys it has
    for line in ["bad_row", "missing_feature", "non_numeric", "missing_key",
                 "first: row 2"]:
        assert line in p.stdout, h.describe(p)


def test_threads_and_stdout_agree(cli, trained, tmp_path):
    outs = []
    for threads in (1, 3):
        out = tmp_path / f"p{threads}.csv"
        p = predict(cli, trained, trained["test"], out, "--threads", threads, "--quiet")
        assert p.returncode == 0 and p.stdout == "", h.describe(p)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    p = predict(cli, trained, trained["test"], "-", "--json")
    assert p.returncode == 0, h.describe(p)
    assert p.stdout.encode() == outs[0], "--out - writes the same CSV to stdout"
    assert json.loads(p.stderr)["rows_total"] == len(read_csv(trained["test"]))


def test_semicolon_input(cli, trained, tmp_path):
    src = read_csv(trained["test"])[:5]
    inp = tmp_path / "semi.csv"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(src[0]), delimiter=";")
    w.writeheader()
    w.writerows(src)
    inp.write_text(buf.getvalue())
    out = tmp_path / "p.csv"
    p = predict(cli, trained, inp, out, "--delimiter", ";", "--quiet")
    assert p.returncode == 0, h.describe(p)
    got = read_csv(out)
    for r, s in zip(got, src):
        want = linear(trained["models"][(s["app"], s["api"])], s)
        assert abs(float(r["prediction"]) - want) <= 1e-9 * max(1.0, abs(want))


def test_forest_classifier_probabilities(cli, tmp_path):
    listing = h.run_cli(cli, "train", "--list-models")
    if "forest" not in listing.stdout.split():
        pytest.skip("this build has no forest family")
    # Per group, the class is decided by f0 alone: g1 two classes, g2 three.
    rng = random.Random(5)
    lines = ["g,f0,f1,y"]
    for g in ("g1", "g2"):
        for _ in range(300):
            a, b = rng.uniform(-1, 1), rng.uniform(-1, 1)
            y = int(a > 0) if g == "g1" else (2 if a > 0.3 else 1 if a > -0.3 else 0)
            lines.append(f"{g},{a:.4f},{b:.4f},{y}")
    data = tmp_path / "cls.csv"
    data.write_text("\n".join(lines) + "\n")
    store = tmp_path / "cls.db"
    h.train_json(cli, data, "--model", "forest", "--param", "task=classification",
                 "--store", store, keys="g")
    inp = tmp_path / "q.csv"
    inp.write_text("g,f0,f1\ng1,0.8,0\ng1,-0.8,0\ng2,-0.9,0\ng2,0,0\ng2,0.9,0\nzz,0,0\n")
    out = tmp_path / "q.out"
    p = h.run_cli(cli, "predict", inp, "--store", store, "--out", out, "--quiet")
    assert p.returncode == 0, h.describe(p)
    with open(out, newline="") as f:
        assert next(csv.reader(f)) == ["g", "row", "prediction", "probabilities", "reason"]
    got = read_csv(out)
    assert [r["prediction"] for r in got] == ["1", "0", "0", "1", "2", ""]
    for r in got[:5]:
        pairs = [kv.split(":") for kv in r["probabilities"].split(";")]
        classes = [float(c) for c, _ in pairs]
        probs = [float(v) for _, v in pairs]
        assert classes == sorted(classes)
        assert len(classes) == (2 if r["g"] == "g1" else 3)
        assert abs(sum(probs) - 1) < 1e-9
        best = classes[probs.index(max(probs))]  # ties: the first
        assert float(r["prediction"]) == best
    assert got[5]["reason"] == "no_model" and got[5]["probabilities"] == ""
