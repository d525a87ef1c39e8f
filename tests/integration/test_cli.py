# SPDX-License-Identifier: Apache-2.0
"""The `myriad` command line, end to end: exit statuses and messages, row and group
accounting, determinism across thread counts, and what the SQLite store holds after one
or several runs (read with Python's sqlite3 module and through `myriad models`).

Every file lives under pytest's tmp directories; nothing is written into the repository.
"""
import csv
import io
import json
import math
import random
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

import pyhelpers as h

HELP_OPTIONS = {
    "gen": ["--out", "--groups", "--rows", "--skew", "--zipf-s", "--features", "--noise",
            "--seed", "--holdout", "--test-out", "--key-columns", "--label", "--shuffle",
            "--threads", "--quiet", "--help"],
    "train": ["--keys", "--label", "--features", "--delimiter", "--model", "--param",
              "--min-rows", "--holdout", "--seed", "--store", "--threads", "--json",
              "--quiet", "--list-models", "--resume", "--memory-limit", "--spill-dir",
              "--help"],
    "models": ["--store", "--key", "--worst", "--limit", "--format", "--describe",
               "--errors", "--plugin", "--help"],
}


def train(cli, data, *args, keys="app,api", label="y"):
    return h.run_cli(cli, "train", data, "--keys", keys, "--label", label, *args)


def n_models(store):
    return h.scalar(store, "SELECT count(*) FROM models")


def snapshot(cli, store):
    """What readers see: current rows, every model's and run's row count, and the
    `myriad models` listing."""
    listing = h.run_cli(cli, "models", "--store", store, "--format", "json", "--describe")
    assert listing.returncode == 0, h.describe(listing)
    return dict(
        current=h.rows(store, "SELECT * FROM current ORDER BY key_hash, model_id"),
        models=n_models(store),
        published=h.rows(store, "SELECT run_id FROM runs WHERE status = 'published'"),
        listing=listing.stdout)


# ----------------------------------------------------------------------------- usage


def test_top_level_usage(cli):
    for args in (["--help"], ["help"]):
        p = h.run_cli(cli, *args)
        assert p.returncode == 0, h.describe(p)
        for cmd in ("gen", "train", "models", "version"):
            assert re.search(rf"^\s+{cmd}\s", p.stdout, re.M), f"{cmd} not listed" + \
                h.describe(p)
    p = h.run_cli(cli, "version")
    assert p.returncode == 0 and re.match(r"myriad \d+\.\d+\.\d+", p.stdout), h.describe(p)
    p = h.run_cli(cli)
    assert p.returncode == 2 and "Usage" in p.stderr, h.describe(p)
    p = h.run_cli(cli, "frobnicate")
    assert p.returncode == 2 and "frobnicate" in p.stderr, h.describe(p)


@pytest.mark.parametrize("cmd", sorted(HELP_OPTIONS))
def test_help_mentions_every_option(cli, cmd, tmp_path):
    p = h.run_cli(cli, cmd, "--help", cwd=tmp_path)
    assert p.returncode == 0, h.describe(p)
    assert p.stdout.startswith("Usage: myriad " + cmd), h.describe(p)
    missing = [o for o in HELP_OPTIONS[cmd] if not re.search(rf"{o}\b(?!-)", p.stdout)]
    assert not missing, f"--help of {cmd} does not mention {missing}" + h.describe(p)
    # And every option the help mentions is one the parser knows.
    for opt in sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", p.stdout))):
        q = h.run_cli(cli, cmd, opt, cwd=tmp_path)
        assert not re.search(r"unrecognized option|unknown option", q.stderr), \
            f"--help of {cmd} documents {opt}, which the parser rejects" + h.describe(q)
    assert list(tmp_path.iterdir()) == [], "option probing must not write files"


@pytest.mark.parametrize("cmd,args", [
    ("train", ["DATA", "--keys", "app,api", "--label", "y", "--store", "STORE", "--bogus"]),
    ("train", ["DATA", "--keys", "app,api", "--label", "y", "--bogus=1", "--store",
               "STORE"]),
    ("gen", ["--out", "OUT", "--groups", "3", "--bogus"]),
    ("models", ["--store", "STORE", "--bogus"]),
])
def test_unknown_option_exits_2(cli, small_data, tmp_path, cmd, args):
    out, store = tmp_path / "out.csv", tmp_path / "s.db"
    subst = {"DATA": small_data, "OUT": out, "STORE": store}
    p = h.run_cli(cli, cmd, *[subst.get(a, a) for a in args])
    assert p.returncode == 2, h.describe(p)
    assert "bogus" in p.stderr, h.describe(p)
    assert p.stdout == "", h.describe(p)
    assert not out.exists() and not store.exists(), "a usage error must not write files"


@pytest.mark.parametrize("args,needle", [
    (["--label", "y"], "--keys"),
    (["--keys", "app,api"], "--label"),
    ([], "--keys"),
])
def test_missing_required_option_exits_2(cli, small_data, args, needle):
    p = h.run_cli(cli, "train", small_data, *args)
    assert p.returncode == 2, h.describe(p)
    assert p.stderr.startswith("myriad train: ") and needle in p.stderr, h.describe(p)


def test_missing_input_argument_exits_2(cli):
    p = h.run_cli(cli, "train", "--keys", "app,api", "--label", "y")
    assert p.returncode == 2 and "INPUT" in p.stderr, h.describe(p)


@pytest.mark.parametrize("args,needle", [
    (["--holdout", "1.5"], "--holdout"),
    (["--holdout", "x"], "--holdout"),
    (["--threads", "-1"], "--threads"),
    (["--min-rows", "ten"], "--min-rows"),
    (["--seed", "1.5"], "--seed"),
    (["--delimiter", "|"], "--delimiter"),
])
def test_bad_option_value_exits_2(cli, small_data, tmp_path, args, needle):
    store = tmp_path / "s.db"
    p = train(cli, small_data, *args, "--store", store)
    assert p.returncode == 2 and needle in p.stderr, h.describe(p)
    assert not store.exists()


@pytest.mark.parametrize("args,needles", [
    (["--model", "nope"], ["nope", "linear"]),
    (["--param", "alpha=-1"], ["alpha"]),
    (["--param", "nope=1"], ["nope"]),
])
def test_bad_model_or_param_fails_with_message(cli, small_data, tmp_path, args, needles):
    store = tmp_path / "s.db"
    p = train(cli, small_data, *args, "--store", store)
    assert p.returncode in (1, 2), h.describe(p)
    assert p.stderr.startswith("myriad train: "), h.describe(p)
    for n in needles:
        assert n in p.stderr, h.describe(p)


def test_missing_input_file_exits_1(cli, tmp_path):
    missing = tmp_path / "no such dir" / "data.csv"
    p = train(cli, missing)
    assert p.returncode == 1, h.describe(p)
    assert p.stderr.startswith("myriad train: ") and str(missing) in p.stderr, \
        h.describe(p)


@pytest.mark.parametrize("args", [
    ["--keys", "app,nope"],
    ["--label", "nope"],
    ["--features", "f0,nope"],
])
def test_unknown_column_exits_1_listing_columns(cli, small_data, args):
    base = {"--keys": "app,api", "--label": "y"}
    base[args[0]] = args[1]
    flat = [x for kv in base.items() for x in kv]
    p = h.run_cli(cli, "train", small_data, *flat)
    assert p.returncode == 1, h.describe(p)
    assert "'nope'" in p.stderr, h.describe(p)
    for col in ["app", "api", "f0", "f1", "f2", "f3", "y"]:
        assert re.search(rf"\b{col}\b", p.stderr.split("nope", 1)[1]), \
            f"column {col} not listed" + h.describe(p)


def test_quiet_and_human_summary(cli, small_data, tmp_path):
    p = train(cli, small_data, "--quiet", "--store", tmp_path / "a.db")
    assert p.returncode == 0 and p.stdout == "" and p.stderr == "", h.describe(p)
    p = train(cli, small_data, "--store", tmp_path / "b.db")
    assert p.returncode == 0, h.describe(p)
    assert "published" in p.stdout and "60 total: 60 trained" in p.stdout, h.describe(p)


def test_list_models(cli):
    p = h.run_cli(cli, "train", "--list-models")
    assert p.returncode == 0 and re.search(r"^linear\s", p.stdout, re.M), h.describe(p)


# ----------------------------------------------------------------------- determinism


def store_contents(store):
    return {k: (v["blob"], v["metrics"], v["n_rows"], v["n_holdout"])
            for k, v in h.current_models(store).items()}


def test_same_seed_same_blobs_whatever_the_threads(cli, zipf_data, tmp_path):
    """--threads 1, 2 and 3 with one seed give byte-identical blobs (and metrics and
    holdout splits) for every key; another seed holds out other rows."""
    runs = {}
    for t in (1, 2, 3):
        store = tmp_path / f"t{t}.db"
        s = h.train_json(cli, zipf_data, "--holdout", "0.2", "--seed", "5", "--threads",
                         t, "--store", store)
        assert s["threads"] == t
        runs[t] = store_contents(store)
    assert len(runs[1]) == 400
    for t in (2, 3):
        assert runs[t].keys() == runs[1].keys()
        diff = [k for k in runs[1] if runs[t][k] != runs[1][k]]
        assert not diff, f"--threads {t} differs from --threads 1 for {len(diff)} keys, " \
                         f"e.g. {diff[0]}"
    other = tmp_path / "seed6.db"
    h.train_json(cli, zipf_data, "--holdout", "0.2", "--seed", "6", "--threads", "2",
                 "--store", other)
    changed = sum(store_contents(other)[k][0] != runs[1][k][0] for k in runs[1])
    assert changed > len(runs[1]) // 2, "the seed should choose the held-out rows"


# ----------------------------------------------------------------- row accounting

HEADER_COLS = ["app", "api", "f0", "f1", "y"]


def _num(v):
    return f"{v:.6f}"


def _crafted_csv(path):
    """A CSV with every kind of bad row, quoted fields (embedded delimiter, quotes and
    newline), quoted numbers, and mixed LF / CRLF line ends. Returns what a correct
    reader must report: per-reason (rows, first_row, first_line, column), the good rows
    per key, and the number of rows."""
    rng = random.Random(5)
    records = []  # (raw bytes without line end, line end, reason or None, column, key)

    def good(key, quote_numbers=False, crlf=False):
        f0, f1 = rng.uniform(-2, 2), rng.uniform(-2, 2)
        y = 1.0 + 2.0 * f0 - 0.5 * f1 + rng.gauss(0, 0.1)
        vals = [_num(f0), _num(f1), _num(y)]
        if quote_numbers:
            vals = [f'"{v}"' for v in vals]
        enc = [k if re.fullmatch(r"[\w/-]+", k) else '"' + k.replace('"', '""') + '"'
               for k in key]
        raw = ",".join(enc + vals).encode()
        records.append((raw, b"\r\n" if crlf else b"\n", None, None,
                        (key, (float(vals[0].strip('"')), float(vals[1].strip('"'))),
                         float(vals[2].strip('"')))))

    def bad(raw, reason, column=None, crlf=False):
        records.append((raw, b"\r\n" if crlf else b"\n", reason, column, None))

    k1, k2 = ("a1", "/x"), ("a2", "/y")
    k3 = ('a,"3"', "/multi\nline")  # delimiter, escaped quotes, newline inside quotes
    tiny = ("tiny", "/x")
    for i in range(6):
        good(k1, crlf=i % 3 == 0)
        good(k2, quote_numbers=i % 2 == 0)
    good(k3)
    bad(b"a1,/x,1.0,2.0", "field_count")                    # 4 fields
    good(k3, crlf=True)                                       # after a 2-line record
    bad(b"a1,/x,1.0,2.0,3.0,4.0", "field_count", crlf=True)  # 6 fields
    bad(b"a1,/x,1.0,abc,3.0", "non_numeric", "f1")
    bad(b"a2,/y,1.0,2.0,x1y", "non_numeric", "y", crlf=True)
    good(tiny)
    bad(b"a1,/x,1.0,2.0,", "missing_label", "y")
    bad(b"a1,/x,1.0,2.0,NA", "missing_label", "y", crlf=True)
    bad(b"a1,/x,NA,2.0,3.0", "missing_feature", "f0", crlf=True)
    bad(b"a2,/y,1.0,,3.0", "missing_feature", "f1")
    bad(b"a2,/y,nan,1.0,3.0", "missing_feature", "f0")
    for i in range(4):
        good(k1)
        good(k3, quote_numbers=True, crlf=i % 2 == 1)
    bad(b"a1,/x,inf,2.0,3.0", "non_finite", "f0")
    bad(b"a1,/x,1.0,2.0,-Infinity", "non_finite", "y", crlf=True)
    bad(b"a2,/y,1.0,1e999,3.0", "non_finite", "f1")
    bad(b"", "blank_line")
    good(tiny, crlf=True)
    bad(b"", "blank_line", crlf=True)
    bad(b'a1,/x,1"5,2.0,3.0', "bad_quoting", "f0")
    bad(b'"a1"x,/x,1.0,2.0,3.0', "bad_quoting", "app", crlf=True)
    bad(b"a1,/x,1.0\x002,2.0,3.0", "nul_byte", "f0")
    bad(b",/x,1.0,2.0,3.0", "missing_key", "app")
    bad(b"a1,NA,1.0,2.0,3.0", "missing_key", "api", crlf=True)
    bad(b"\xff\xfe,/x,1.0,2.0,3.0", "invalid_key", "app")
    for i in range(6):
        good(k2, crlf=i % 2 == 0)
        good(k1, quote_numbers=i == 3)
    good(k3)
    good(k3, crlf=True)

    out = bytearray(",".join(HEADER_COLS).encode() + b"\r\n")
    line = 2
    expected, goods = {}, {}
    for row, (raw, end, reason, column, g) in enumerate(records, start=1):
        out += raw + end
        if reason:
            e = expected.setdefault(reason, dict(rows=0, first_row=row, first_line=line,
                                                 column=column or ""))
            e["rows"] += 1
        else:
            goods.setdefault(g[0], []).append((g[1], g[2]))
        line += raw.count(b"\n") + 1
    path.write_bytes(bytes(out))
    return expected, goods, len(records)


def test_row_accounting_with_bad_rows(cli, tmp_path):
    data, store = tmp_path / "crafted.csv", tmp_path / "s.db"
    expected, goods, n_records = _crafted_csv(data)
    s = h.train_json(cli, data, "--features", "f0,f1", "--min-rows", "3", "--store",
                     store)
    # tiny has 2 good rows: below --min-rows 3, it fails and its rows are skipped.
    tiny = ("tiny", "/x")
    expected["group_failed"] = dict(rows=len(goods[tiny]))
    trained = {k: v for k, v in goods.items() if k != tiny}

    assert s["rows_total"] == n_records
    assert s["rows_used"] == sum(len(v) for v in trained.values())
    assert s["rows_used"] + s["rows_skipped"] == s["rows_total"]
    assert s["rows_skipped"] == sum(v["rows"] for v in s["skipped"].values())
    assert sorted(s["skipped"]) == sorted(expected), s["skipped"]
    problems = []
    for reason, want in expected.items():
        got = s["skipped"][reason]
        for field, value in want.items():
            if got.get(field) != value:
                problems.append(f"{reason}.{field}: got {got.get(field)!r}, want {value!r}")
    assert not problems, "\n".join(problems) + "\n" + json.dumps(s["skipped"], indent=1)
    assert s["skipped"]["field_count"]["detail"] == "expected 5 fields, got 4"
    assert "abc" in s["skipped"]["non_numeric"]["detail"]
    assert "tiny" in s["skipped"]["group_failed"]["detail"]

    assert s["groups_total"] == len(goods) == 4
    assert s["groups_trained"] == 3 and s["groups_failed"] == 1
    assert set(s["failed"]) == {"too_few_rows"}
    assert s["failed"]["too_few_rows"]["groups"] == 1
    assert "tiny" in s["failed"]["too_few_rows"]["first"]

    # The quoted keys and numbers were read exactly: each model is Ridge(alpha=1) on
    # that key's good rows.
    models = h.current_models(store)
    assert set(models) == set(trained), sorted(models)
    for key, rws in trained.items():
        X = np.array([x for x, _ in rws])
        y = np.array([t for _, t in rws])
        sk = Ridge(alpha=1.0).fit(X, y)
        blob = h.decode_blob(models[key]["blob"])
        assert models[key]["n_rows"] == len(rws), key
        assert np.allclose([blob["intercept"], *blob["coef"]], [sk.intercept_, *sk.coef_],
                           rtol=1e-9, atol=1e-9), key
    errs = h.rows(store, "SELECT app, api, n_rows, reason FROM errors")
    assert errs == [dict(app="tiny", api="/x", n_rows=2, reason="too_few_rows")]


def test_min_rows_failures_are_stored(cli, zipf_data, tmp_path):
    store = tmp_path / "s.db"
    sizes = pd.read_csv(zipf_data, dtype=str).groupby(["app", "api"]).size()
    small = sizes[sizes < 20]
    assert 0 < len(small) < len(sizes)
    s = h.train_json(cli, zipf_data, "--min-rows", "20", "--store", store)
    assert s["groups_total"] == len(sizes)
    assert s["groups_failed"] == len(small) and s["groups_trained"] == len(sizes) - len(small)
    assert s["failed"]["too_few_rows"]["groups"] == len(small) and len(s["failed"]) == 1
    assert s["skipped"] == {"group_failed": s["skipped"]["group_failed"]}
    assert s["skipped"]["group_failed"]["rows"] == int(small.sum())
    assert s["rows_used"] == int(sizes[sizes >= 20].sum())
    assert s["rows_used"] + s["rows_skipped"] == s["rows_total"]
    errs = h.rows(store, "SELECT app, api, n_rows, reason, message FROM errors "
                         "WHERE run_id = ?", s["run_id"])
    assert {(e["app"], e["api"]): e["n_rows"] for e in errs} == \
        {k: int(v) for k, v in small.items()}
    assert all(e["reason"] == "too_few_rows" and e["message"] for e in errs)
    assert n_models(store) == s["groups_trained"]
    assert set(h.current_models(store)) == set(sizes[sizes >= 20].index)
    # `myriad models --errors` lists the same failed groups, in every format.
    listed = h.run_cli(cli, "models", "--store", store, "--errors", "--format", "json")
    assert listed.returncode == 0, h.describe(listed)
    got = json.loads(listed.stdout)
    assert {(e["app"], e["api"]): e["n_rows"] for e in got} == \
        {k: int(v) for k, v in small.items()}
    assert all(e["reason"] == "too_few_rows" and e["run_id"] == s["run_id"] for e in got)
    as_csv = h.run_cli(cli, "models", "--store", store, "--errors", "--format", "csv")
    assert len(list(csv.DictReader(io.StringIO(as_csv.stdout)))) == len(small)
    limited = h.run_cli(cli, "models", "--store", store, "--errors", "--limit", "2",
                        "--format", "json")
    assert len(json.loads(limited.stdout)) == min(2, len(small))


# ---------------------------------------------------------------------------- store


def test_store_after_one_run(cli, small_data, tmp_path):
    store = tmp_path / "s.db"
    s = h.train_json(cli, small_data, "--holdout", "0.1", "--store", store)
    assert s["groups_trained"] == 60 and s["run_id"] >= 1
    assert n_models(store) == s["groups_trained"]
    assert h.scalar(store, "SELECT count(*) FROM current") == s["groups_trained"]
    runs = h.rows(store, "SELECT run_id, status, family, n_models, n_errors FROM runs")
    assert runs == [dict(run_id=s["run_id"], status="published", family="linear",
                         n_models=60, n_errors=0)]
    summary = json.loads(h.scalar(store, "SELECT summary FROM runs"))
    assert summary["groups_trained"] == 60 and summary["rows_used"] == s["rows_used"]
    con = h.connect(store)
    try:
        assert h.store_key_names(con) == ["app", "api"]
    finally:
        con.close()
    listed = h.models_json(cli, store)
    assert len(listed) == 60
    assert all(m["version"] == 1 and m["run_id"] == s["run_id"] for m in listed)


def test_second_run_makes_version_2(cli, small_data, tmp_path):
    store = tmp_path / "s.db"
    s1 = h.train_json(cli, small_data, "--param", "alpha=1", "--store", store)
    v1 = h.current_models(store)
    s2 = h.train_json(cli, small_data, "--param", "alpha=100", "--store", store)
    assert s2["run_id"] > s1["run_id"]
    v2 = h.current_models(store)
    assert v2.keys() == v1.keys() and len(v2) == 60
    assert n_models(store) == 120  # both runs' models are kept
    for k, m in v2.items():
        assert (m["version"], m["cur_version"], m["run_id"]) == (2, 2, s2["run_id"]), k
        assert m["blob"] != v1[k]["blob"], "alpha 100 must give other coefficients"
    listed = {(m["app"], m["api"]): m for m in h.models_json(cli, store, "--describe")}
    assert listed.keys() == v2.keys()
    for k, m in listed.items():
        assert (m["version"], m["run_id"]) == (2, s2["run_id"])
        assert m["model"]["model"]["coef"] == h.decode_blob(v2[k]["blob"])["coef"]

    # A third run over some keys only: those move to version 3, the others stay at 2.
    df = pd.read_csv(small_data, dtype={"app": str, "api": str})
    some = sorted(v2)[:20]
    part = df[[(a, b) in set(some) for a, b in zip(df.app, df.api)]]
    subset = tmp_path / "subset.csv"
    part.to_csv(subset, index=False)
    s3 = h.train_json(cli, subset, "--store", store)
    assert s3["groups_trained"] == 20
    v3 = h.current_models(store)
    assert v3.keys() == v2.keys()
    for k, m in v3.items():
        want = (3, s3["run_id"]) if k in some else (2, s2["run_id"])
        assert (m["version"], m["run_id"]) == want, k
    listed = {(m["app"], m["api"]): m for m in h.models_json(cli, store)}
    assert {k: (m["version"], m["run_id"]) for k, m in listed.items()} == \
        {k: (m["version"], m["run_id"]) for k, m in v3.items()}


@pytest.fixture(scope="module")
def holdout_store(cli, zipf_data, tmp_path_factory):
    store = tmp_path_factory.mktemp("holdout") / "s.db"
    h.train_json(cli, zipf_data, "--holdout", "0.25", "--seed", "2", "--store", store)
    return store


def test_worst_r2_limit(cli, holdout_store):
    worst = h.models_json(cli, holdout_store, "--worst", "r2", "--limit", "5")
    assert len(worst) == 5
    r2 = [m["metrics"]["r2"] for m in worst]
    assert r2 == sorted(r2), r2
    all_r2 = sorted(m["metrics"]["r2"] for m in h.current_models(holdout_store).values()
                    if "r2" in m["metrics"])
    assert r2 == all_r2[:5]
    p = h.run_cli(cli, "models", "--store", holdout_store, "--worst", "r2", "--limit", "5")
    assert p.returncode == 0 and "5 shown of 400 models" in p.stdout, h.describe(p)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("app-")]
    assert len(lines) == 5, h.describe(p)
    # rmse: higher is worse, so highest first.
    rmse = [m["metrics"]["rmse"] for m in
            h.models_json(cli, holdout_store, "--worst", "rmse", "--limit", "7")]
    assert len(rmse) == 7 and rmse == sorted(rmse, reverse=True)


def test_worst_unknown_metric_is_an_error(cli, holdout_store):
    """Ranking by a metric no model has (a typo) must not quietly list models in key
    order as if they were the worst."""
    p = h.run_cli(cli, "models", "--store", holdout_store, "--worst", "nope", "--limit",
                  "5")
    assert p.returncode != 0, h.describe(p)
    assert p.stderr.startswith("myriad models: ") and "nope" in p.stderr, h.describe(p)


def test_key_filter(cli, holdout_store):
    models = h.current_models(holdout_store)
    app, api = sorted(models)[3]
    one = h.models_json(cli, holdout_store, "--key", f"app={app},api={api}")
    assert len(one) == 1 and (one[0]["app"], one[0]["api"]) == (app, api)
    assert one[0]["n_rows"] == models[(app, api)]["n_rows"]
    p = h.run_cli(cli, "models", "--store", holdout_store, "--key", f"app={app},api={api}")
    assert p.returncode == 0 and app in p.stdout and api in p.stdout, h.describe(p)
    assert "intercept" in p.stdout and "coef" in p.stdout, h.describe(p)
    # A partial key lists that app's models.
    same_app = h.models_json(cli, holdout_store, "--key", f"app={app}")
    assert sorted((m["app"], m["api"]) for m in same_app) == \
        sorted(k for k in models if k[0] == app)
    for bad in (f"app=nope,api={api}", "app=nope"):
        p = h.run_cli(cli, "models", "--store", holdout_store, "--key", bad)
        assert p.returncode != 0, h.describe(p)
        assert p.stderr.startswith("myriad models: ") and "nope" in p.stderr, h.describe(p)
    p = h.run_cli(cli, "models", "--store", holdout_store, "--key", "f0=1")
    assert p.returncode != 0 and "f0" in p.stderr, h.describe(p)


def _csv_listing(cli, store):
    p = h.run_cli(cli, "models", "--store", store, "--format", "csv")
    assert p.returncode == 0, h.describe(p)
    return list(csv.DictReader(io.StringIO(p.stdout, newline="")))


def test_format_csv(cli, holdout_store):
    rows = _csv_listing(cli, holdout_store)
    models = h.current_models(holdout_store)
    assert len(rows) == len(models) == 400
    assert list(rows[0])[:2] == ["app", "api"]
    assert {"version", "run_id", "family", "n_rows", "n_holdout", "metrics",
            "blob_bytes"} <= set(rows[0])
    for r in rows:
        m = models[(r["app"], r["api"])]
        assert int(r["n_rows"]) == m["n_rows"] and int(r["n_holdout"]) == m["n_holdout"]
        assert int(r["version"]) == 1 and r["family"] == "linear"
        assert int(r["blob_bytes"]) == len(m["blob"])
    assert len({(r["app"], r["api"]) for r in rows}) == 400


def test_awkward_keys_round_trip_through_listings(cli, tmp_path):
    """Keys holding the delimiter, quotes and a newline come back intact in CSV and
    JSON listings and work with --key."""
    data, store = tmp_path / "crafted.csv", tmp_path / "s.db"
    _, goods, _ = _crafted_csv(data)
    h.train_json(cli, data, "--features", "f0,f1", "--store", store)
    want = set(goods)
    assert set(h.current_models(store)) == want
    assert {(r["app"], r["api"]) for r in _csv_listing(cli, store)} == want
    assert {(m["app"], m["api"]) for m in h.models_json(cli, store)} == want
    one = h.models_json(cli, store, "--key", 'app=a,"3"')
    assert [(m["app"], m["api"]) for m in one] == [('a,"3"', "/multi\nline")]


def test_failed_run_publishes_nothing(cli, small_data, tmp_path):
    store = tmp_path / "s.db"
    h.train_json(cli, small_data, "--store", store)
    before = snapshot(cli, store)
    assert before["models"] == 60

    unusable = tmp_path / "unusable.csv"
    unusable.write_text("app,api,f0,y\na,b,1,x\na,b,2,y\n")
    attempts = [
        (small_data, ["--keys", "app,nope"], "nope"),  # no such key column
        (small_data, ["--label", "nope"], "nope"),     # no such label column
        (small_data, ["--keys", "app"], "api"),        # other key columns than the store's
        (unusable, ["--keys", "app,api"], "rows"),     # every row skipped
    ]
    for data, args, needle in attempts:
        opts = {"--keys": "app,api", "--label": "y"}
        opts.update(dict(zip(args[::2], args[1::2])))
        p = h.run_cli(cli, "train", data, *[x for kv in opts.items() for x in kv],
                      "--store", store)
        assert p.returncode == 1, h.describe(p)
        assert p.stderr.startswith("myriad train: ") and needle in p.stderr, h.describe(p)
        after = snapshot(cli, store)
        assert after == before, f"a failed run changed the store: {args}" + h.describe(p)


def test_models_on_missing_store(cli, tmp_path):
    missing = tmp_path / "none.db"
    p = h.run_cli(cli, "models", "--store", missing)
    assert p.returncode == 1 and str(missing) in p.stderr, h.describe(p)
    assert not missing.exists(), "reading must not create a store"
    p = h.run_cli(cli, "models")
    assert p.returncode == 2 and "--store" in p.stderr, h.describe(p)


def test_corrupt_blob_is_reported_not_trusted(cli, small_data, tmp_path):
    store = tmp_path / "s.db"
    h.train_json(cli, small_data, "--store", store)
    models = h.current_models(store)
    victim = sorted(models)[0]
    con = h.connect(store)
    try:
        table = "models" if "blob" in {r[1] for r in con.execute(
            "PRAGMA table_info(models)")} else "blobs"
        (model_id,) = con.execute(
            "SELECT model_id FROM current WHERE app = ? AND api = ?", victim).fetchone()
        blob = bytearray(con.execute(f"SELECT blob FROM {table} WHERE model_id = ?",
                                     (model_id,)).fetchone()[0])
        blob[60] ^= 0x01  # one bit of a coefficient
        con.execute(f"UPDATE {table} SET blob = ? WHERE model_id = ?", (bytes(blob),
                                                                        model_id))
        con.commit()
    finally:
        con.close()
    with pytest.raises(h.BlobError, match="CRC32C"):
        h.decode_blob(blob)
    listed = {(m["app"], m["api"]): m for m in h.models_json(cli, store, "--describe")}
    assert listed[victim]["model"] is None, listed[victim]
    assert re.search(r"crc|checksum", listed[victim]["model_error"], re.I), listed[victim]
    others = [m for k, m in listed.items() if k != victim]
    assert all(m["model"] and m["model"]["family"] == "linear" for m in others)


def test_json_summary_invariants(cli, zipf_data):
    s = h.train_json(cli, zipf_data, "--threads", "2", "--holdout", "0.3")
    assert s["run_id"] == 0, "no --store: nothing stored"
    for k in ("run_id", "family", "n_features", "threads", "rows_total", "rows_used",
              "rows_skipped", "groups_total", "groups_trained", "groups_failed",
              "skipped", "failed", "seconds_read", "seconds_train", "seconds_publish",
              "seconds_total"):
        assert k in s, k
    assert s["threads"] == 2 and s["n_features"] == 4
    assert s["rows_used"] + s["rows_skipped"] == s["rows_total"] == 400 * 25
    assert s["groups_trained"] + s["groups_failed"] == s["groups_total"] == 400
    assert all(s[k] >= 0 and math.isfinite(s[k]) for k in s if k.startswith("seconds"))
