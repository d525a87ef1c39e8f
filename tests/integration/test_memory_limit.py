# SPDX-License-Identifier: Apache-2.0
"""`myriad train --memory-limit`: past half the limit, rows are spilled by key hash to a
compressed temporary file and trained a load of partitions at a time. The store must end
with the same models, metrics and errors as a run without a limit, the summary must
count every row the same way, and a spilled run must survive a kill and --resume."""
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import time

import pytest

import pyhelpers as h

FOREST = ["--model", "forest", "--param", "n_trees=5", "--holdout", "0.2", "--seed", "3",
          "--min-rows", "8"]


def store_digest(store):
    """(models, errors, digest) of the latest published run: current models key by key
    (version, rows, metrics, blob) and its error rows."""
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        models = con.execute(
            "SELECT c.app, c.api, c.version, m.n_rows, m.n_holdout, m.metrics, b.blob"
            " FROM current c JOIN models m USING(model_id) JOIN blobs b USING(model_id)"
            " ORDER BY c.app, c.api").fetchall()
        errors = con.execute(
            "SELECT app, api, n_rows, reason, message FROM errors WHERE run_id ="
            " (SELECT max(run_id) FROM runs WHERE status = 'published')"
            " ORDER BY app, api").fetchall()
    finally:
        con.close()
    d = hashlib.sha256()
    for r in models + errors:
        d.update(repr(r).encode())
    return len(models), len(errors), d.hexdigest()


def counts(summary):
    """The parts of a summary that must not depend on the memory limit."""
    keep = ("rows_total", "rows_used", "rows_skipped", "groups_total", "groups_trained",
            "groups_failed", "skipped", "failed", "n_features")
    return {k: summary[k] for k in keep}


@pytest.fixture(scope="module")
def data(cli, tmp_path_factory):
    """A shuffled CSV (every key's rows spread over the whole file) with bad rows of
    several kinds and a group too small to train, so skips and failures are counted
    while spilling."""
    d = tmp_path_factory.mktemp("memlimit")
    src = h.gen(cli, d / "clean.csv", groups=3000, rows=40, features=5, noise=0.3, seed=11,
                extra=("--shuffle",))
    lines = src.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    n_cols = header.count(",") + 1
    rng = random.Random(5)
    bad = ["app-bad,/api/v1/ep-0001," + ",".join(["x"] * (n_cols - 2)),   # non-numeric
           ",/api/v1/ep-0002," + ",".join(["1"] * (n_cols - 2)),         # missing key
           "app-0001,/api/v1/ep-0001",                                   # field count
           "app-small,/api/v1/ep-9999," + ",".join(["0.5"] * (n_cols - 2))]
    for b in bad * 5:
        rows.insert(rng.randrange(len(rows)), b)
    out = d / "data.csv"
    out.write_text("\n".join([header] + rows) + "\n")
    return out


@pytest.fixture(scope="module")
def unlimited(cli, data, tmp_path_factory):
    store = tmp_path_factory.mktemp("unlimited") / "m.db"
    s = h.train_json(cli, data, *FOREST, "--store", store)
    assert "spill" not in s, s
    return s, store_digest(store)


@pytest.mark.parametrize("limit,threads", [("1M", "2"), ("3M", "1"), ("6M", "2")])
def test_same_models_and_counts(cli, data, unlimited, tmp_path, limit, threads):
    s0, digest0 = unlimited
    store = tmp_path / "m.db"
    s = h.train_json(cli, data, *FOREST, "--store", store, "--memory-limit", limit,
                     "--threads", threads, "--spill-dir", tmp_path)
    assert "spill" in s, f"--memory-limit {limit} did not spill: {s}"
    sp = s["spill"]
    assert sp["rows"] == s["rows_total"] - sum(
        v["rows"] for k, v in s["skipped"].items() if k != "group_failed")
    assert sp["partitions"] >= 2 and sp["loads"] >= 2, sp
    assert 0 < sp["bytes"] < sp["rows"] * (8 * 7 + 40), sp
    assert counts(s) == counts(s0)
    assert s["groups_failed"] >= 1 and s["skipped"]["non_numeric"]["rows"] == 5
    assert store_digest(store) == digest0
    # the spill file is unlinked at once: nothing is left in the spill directory
    assert sorted(p.name for p in tmp_path.iterdir() if "spill" in p.name) == []


def test_arrow_input_spills_the_same(cli, tmp_path):
    """Arrow float64 columns are read in place; spilling copies them out of the batch."""
    data = h.gen(cli, tmp_path / "d.arrow", groups=2000, rows=30, features=4, seed=2,
                 extra=("--shuffle",))
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    sa = h.train_json(cli, data, "--store", a)
    sb = h.train_json(cli, data, "--store", b, "--memory-limit", "1M")
    assert "spill" in sb and "spill" not in sa
    assert counts(sa) == counts(sb)
    assert store_digest(a) == store_digest(b)
    # the summary reports the store's size and current models, as SQLite counts them
    con = sqlite3.connect(f"file:{b}?mode=ro", uri=True)
    try:
        size = con.execute("PRAGMA page_count").fetchone()[0] * \
            con.execute("PRAGMA page_size").fetchone()[0]
    finally:
        con.close()
    assert sb["store"] == {"bytes": size, "models": 2000}


def test_killed_spilled_run_resumes(cli, data, unlimited, tmp_path):
    _, digest0 = unlimited
    store = tmp_path / "m.db"
    args = [str(cli), "train", str(data), "--keys", "app,api", "--label", "y", *FOREST,
            "--store", str(store), "--memory-limit", "2M", "--quiet", "--resume"]
    full = time.monotonic()
    subprocess.run(args + ["--threads", "1"], check=True,
                   env={**os.environ}, capture_output=True)
    full = time.monotonic() - full
    os.remove(store)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(str(store) + suffix):
            os.remove(str(store) + suffix)
    rng = random.Random(9)
    for _ in range(3):
        p = subprocess.Popen(args + ["--threads", "1"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 0.9) * full)
        p.send_signal(signal.SIGKILL)
        p.wait()
    done = subprocess.run(args[:-2] + ["--json", "--resume"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    s = json.loads(done.stdout)
    assert s.get("already_published") or s["groups_trained"] > 0
    assert store_digest(store) == digest0


@pytest.mark.parametrize("value,message", [
    ("lots", "must be a size such as"),
    ("-1G", "must be a size such as"),
    ("4X", "must be a size such as"),
    ("G", "must be a size such as"),
    ("1000", "at least 1M"),
])
def test_bad_limit_is_a_usage_error(cli, data, tmp_path, value, message):
    p = h.run_cli(cli, "train", data, "--keys", "app,api", "--label", "y",
                  "--memory-limit", value, cwd=tmp_path)
    assert p.returncode == 2 and message in p.stderr, h.describe(p)


def test_unusable_spill_dir_fails_cleanly(cli, data, tmp_path):
    store = tmp_path / "m.db"
    missing = tmp_path / "no" / "such" / "dir"
    p = h.run_cli(cli, "train", data, "--keys", "app,api", "--label", "y", "--store", store,
                  "--memory-limit", "1M", "--spill-dir", missing)
    assert p.returncode == 1, h.describe(p)
    assert f"spill file in {missing}" in p.stderr, h.describe(p)
    assert h.published_runs(store) == 0


def test_predict_with_memory_limit_writes_the_same(cli, data, tmp_path):
    """predict --memory-limit forgets keys past a quarter of the limit and looks them up
    again: same output, same keys_seen, more models loaded."""
    store = tmp_path / "m.db"
    h.train_json(cli, data, "--store", store, "--min-rows", "8")
    out = {}
    for name, extra in (("free", ()), ("limited", ("--memory-limit", "1M"))):
        path = tmp_path / f"{name}.csv"
        p = h.run_cli(cli, "predict", data, "--store", store, "--out", path, "--json",
                      *extra)
        assert p.returncode == 0, h.describe(p)
        out[name] = (path.read_bytes(), json.loads(p.stdout))
    (free, sf), (limited, sl) = out["free"], out["limited"]
    assert free == limited
    assert sl["keys_seen"] == sf["keys_seen"] == 3000 + 2  # bad and small keys included
    assert sl["models_loaded"] > sf["models_loaded"], (sl, sf)
    for k in ("rows_total", "rows_predicted", "missed"):
        assert sl[k] == sf[k]
