# SPDX-License-Identifier: Apache-2.0
"""Crash safety and `myriad train --resume`: a run killed with SIGKILL at random moments
leaves a valid store whose current models are still the previously published ones, and
resuming completes it into exactly the store an uninterrupted run gives (same models,
versions, run ids and metrics, key by key)."""
import hashlib
import json
import random
import shutil
import signal
import sqlite3
import subprocess
import time

import pytest

import pyhelpers as h

FOREST = ["--model", "forest", "--param", "n_trees=20", "--seed", "7", "--threads", "2"]


def train_args(cli, data, store, *extra):
    return [str(cli), "train", str(data), "--keys", "app,api", "--label", "y", "--store",
            str(store), "--quiet", *extra]


def current_digest(store) -> tuple[int, str]:
    """(rows, digest) of the current models: keys, version, run, metrics, blob."""
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT c.app, c.api, c.version, c.run_id, m.n_rows, m.metrics, b.blob"
            " FROM current c JOIN models m USING(model_id) JOIN blobs b USING(model_id)"
            " ORDER BY c.app, c.api").fetchall()
    finally:
        con.close()
    d = hashlib.sha256()
    for r in rows:
        d.update(repr(r).encode())
    return len(rows), d.hexdigest()


def integrity(store) -> str:
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def data(cli, tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    return h.gen(cli, d / "data.csv", groups=8000, rows=60, features=6, noise=0.3, seed=5)


@pytest.fixture(scope="module")
def base_store(cli, data, tmp_path_factory):
    """A store with one published run (linear models), the version kills must not touch."""
    store = tmp_path_factory.mktemp("base") / "base.db"
    proc = subprocess.run(train_args(cli, data, store), capture_output=True, text=True)
    assert proc.returncode == 0, h.describe(proc)
    return store


def test_kill_at_random_moments_then_resume(cli, data, base_store, tmp_path):
    ref = tmp_path / "ref.db"
    shutil.copy(base_store, ref)
    before = current_digest(base_store)
    t0 = time.monotonic()
    proc = subprocess.run(train_args(cli, data, ref, *FOREST), capture_output=True, text=True)
    full = time.monotonic() - t0
    assert proc.returncode == 0, h.describe(proc)
    want = current_digest(ref)
    assert want[0] == before[0] == 8000 and want != before

    rng = random.Random(20261201)
    kills = completed = resumed_groups = 0
    store = None
    while kills < 20:
        if store is None:  # a fresh copy of the base store for each completed cycle
            store = tmp_path / f"s{completed}.db"
            shutil.copy(base_store, store)
        p = subprocess.Popen(train_args(cli, data, store, *FOREST, "--resume", "--json"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = p.communicate(timeout=rng.uniform(0.02, 1.2 * full))
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.communicate()
            kills += 1
            assert integrity(store) == "ok"
            got = current_digest(store)
            # The previous version stays readable until the run publishes as a whole.
            assert got in (before, want), f"kill {kills}: current is a mix"
            statuses = {s for (s,) in sqlite3.connect(store).execute(
                "SELECT status FROM runs")}
            assert statuses <= {"published", "running"}
            continue
        assert p.returncode == 0, f"exit {p.returncode}\n{err}"
        summary = json.loads(out)
        if not summary.get("already_published"):
            assert summary["groups_trained"] == 8000
            assert summary["rows_used"] == summary["rows_total"]
            resumed_groups += summary["groups_resumed"]
        assert current_digest(store) == want
        completed += 1
        store = None
    # Finish the last cycle: resuming until it completes gives the uninterrupted store.
    if store is not None:
        proc = subprocess.run(train_args(cli, data, store, *FOREST, "--resume", "--json"),
                              capture_output=True, text=True)
        assert proc.returncode == 0, h.describe(proc)
        assert current_digest(store) == want
    assert resumed_groups > 0, "no completed attempt reused an earlier attempt's models"


def test_resume_needs_a_store(cli, data):
    proc = h.run_cli(cli, "train", data, "--keys", "app,api", "--label", "y", "--resume")
    assert proc.returncode == 1
    assert "needs a store" in proc.stderr


def test_resume_without_an_earlier_run_trains(cli, data, tmp_path):
    store = tmp_path / "new.db"
    proc = h.run_cli(cli, "train", data, "--keys", "app,api", "--label", "y", "--store",
                     store, "--resume", "--json")
    assert proc.returncode == 0, h.describe(proc)
    s = json.loads(proc.stdout)
    assert s["groups_trained"] == 8000 and s["groups_resumed"] == 0
    # Once published, the same command has nothing to do and says so.
    proc = h.run_cli(cli, "train", data, "--keys", "app,api", "--label", "y", "--store",
                     store, "--resume")
    assert proc.returncode == 0, h.describe(proc)
    assert "nothing to resume: run 1" in proc.stdout
    assert h.scalar(store, "SELECT count(*) FROM runs") == 1


def test_resume_retries_failed_groups_once(cli, data, tmp_path):
    """A run that failed after storing its failed groups is resumed: they are tried
    again and stored once, not twice."""
    store = tmp_path / "part.db"
    args = ["train", data, "--keys", "app,api", "--label", "y", "--store", store,
            "--min-rows", "61"]  # every group fails: errors are stored, then retried
    proc = h.run_cli(cli, *args)
    assert proc.returncode == 0, h.describe(proc)
    con = sqlite3.connect(store)
    con.execute("UPDATE runs SET status = 'failed', message = 'x'")
    con.commit()
    con.close()
    proc = h.run_cli(cli, *args, "--resume", "--json")
    s = json.loads(proc.stdout)
    assert s["groups_failed"] == 8000 and s["groups_resumed"] == 0
    assert h.scalar(store, "SELECT count(*) FROM errors") == 8000  # not doubled
    assert h.scalar(store, "SELECT status FROM runs") == "published"
