# SPDX-License-Identifier: Apache-2.0
"""The Python package `myriad` (python/, installed into .venv by `make deps`):
myriad.train and myriad.predict on pyarrow, pandas and polars data, against the CLI on
the same CSV (byte-identical model blobs), results and prediction tables, errors,
a stream that fails half-way, the GIL released while C works, Ctrl-C, and the README's
Python example."""
import re
import threading
import _thread
import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

import pyhelpers

import myriad  # noqa: E402 - make deps installs it into .venv; missing is a failure

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["app", "api"]


@pytest.fixture(scope="module")
def data(cli, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pkg")
    return pyhelpers.gen(cli, d / "data.csv", groups=120, rows=40, features=4, noise=0.2,
                         seed=11)


@pytest.fixture(scope="module")
def cli_store(cli, data, tmp_path_factory) -> dict:
    """The CLI's models for data (forest, seed 5), by key."""
    store = tmp_path_factory.mktemp("clistore") / "m.db"
    pyhelpers.train_json(cli, data, "--model", "forest", "--param", "n_trees=10",
                         "--seed", "5", "--store", store)
    return {k: v["blob"] for k, v in pyhelpers.current_models(store).items()}


def blobs(results: pa.Table) -> dict:
    d = results.to_pydict()
    return {(a, b): m for a, b, m in zip(d["app"], d["api"], d["model"])}


def read_pandas(path: Path) -> pd.DataFrame:
    # The same doubles as the C parser: pandas before 3.0 needs round_trip (its default
    # parser may differ in the last bit); 3.0 parses exactly and deprecates the option.
    if int(pd.__version__.split(".")[0]) < 3:
        return pd.read_csv(path, float_precision="round_trip")
    return pd.read_csv(path)


@pytest.mark.parametrize("kind", ["pyarrow", "pandas", "polars", "reader", "path"])
def test_inputs_give_the_cli_models(kind, data, cli_store):
    if kind == "pyarrow":
        src = pacsv.read_csv(data)
    elif kind == "pandas":
        src = read_pandas(data)
    elif kind == "polars":
        src = pl.read_csv(data)
    elif kind == "reader":
        t = pacsv.read_csv(data)
        src = pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=333))
    else:
        src = str(data)
    res = myriad.train(src, keys=KEYS, label="y", model="forest",
                       params={"n_trees": 10}, seed=5, threads=2)
    got = blobs(res)
    assert len(got) == len(cli_store) == 120
    assert got == cli_store, "blobs differ from the CLI's on the same data and seed"
    s = myriad.summary(res)
    assert s["groups_trained"] == 120 and s["rows_used"] == 120 * 40


def test_results_table(data):
    t = pacsv.read_csv(data)
    # Key (app, api) of the first row gets only 2 rows: it fails with too_few_rows.
    first = t.slice(0, 1).to_pylist()[0]
    mask = pa.compute.and_(pa.compute.equal(t["app"], first["app"]),
                           pa.compute.equal(t["api"], first["api"]))
    idx = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    keep = np.ones(t.num_rows, bool)
    keep[idx[2:]] = False
    res = myriad.train(t.filter(pa.array(keep)), keys=KEYS, label="y", min_rows=5)
    assert res.column_names[:2] == KEYS
    for col in ["model", "n_rows", "metrics", "status", "error"]:
        assert col in res.column_names
    rows = {(r["app"], r["api"]): r for r in res.to_pylist()}
    bad = rows[(first["app"], first["api"])]
    assert bad["status"] == "too_few_rows" and bad["model"] is None
    assert bad["n_rows"] == 2 and bad["error"]
    good = [r for r in rows.values() if r["status"] == "trained"]
    assert len(good) == 119
    assert all(r["model"][:4] == b"MYRB" and r["error"] is None for r in good)
    assert all(r["n_rows"] == 40 for r in good)
    s = myriad.summary(res)
    assert s["groups_failed"] == 1 and s["groups_trained"] == 119


def test_store_and_predict(cli, data, tmp_path):
    store = tmp_path / "m.db"
    df = read_pandas(data)
    res = myriad.train(df, keys=KEYS, label="y", store=store, seed=3)
    assert pyhelpers.scalar(store, "select count(*) from current") == 120
    by_store = myriad.predict(df, store=store)
    by_table = myriad.predict(pl.from_pandas(df), models=res)
    assert by_store.num_rows == by_table.num_rows == len(df)
    assert by_store.column("row").to_pylist() == list(range(1, len(df) + 1))
    assert by_store.column("prediction").equals(by_table.column("prediction"))
    assert by_store.column("prediction").null_count == 0
    # The CLI scores the CSV with the same numbers.
    out = tmp_path / "p.csv"
    proc = pyhelpers.run_cli(cli, "predict", data, "--store", store, "--out", out)
    assert proc.returncode == 0, pyhelpers.describe(proc)
    ref = read_pandas(out)
    np.testing.assert_array_equal(ref["prediction"].to_numpy(),
                                  by_store.column("prediction").to_numpy())


def test_errors_carry_the_message(data):
    df = read_pandas(data)
    with pytest.raises(myriad.MyriadError, match="no key column 'nope'") as e:
        myriad.train(df, keys=["nope"], label="y")
    assert e.value.status == "MYR_ENOTFOUND" and e.value.code < 0
    with pytest.raises(myriad.MyriadError, match="unknown|family"):
        myriad.train(df, keys=KEYS, label="y", model="no_such_family")
    with pytest.raises(TypeError, match="__arrow_c_stream__"):
        myriad.train(object(), keys=KEYS, label="y")
    with pytest.raises(ValueError, match="exactly one"):
        myriad.predict(df)


def test_stream_failing_half_way_surfaces_its_error(data):
    t = pacsv.read_csv(data)
    batches = t.to_batches(max_chunksize=500)

    def gen():
        yield batches[0]
        yield batches[1]
        raise ValueError("the upstream source broke at batch 3")

    reader = pa.RecordBatchReader.from_batches(t.schema, gen())
    with pytest.raises(myriad.MyriadError, match="the upstream source broke at batch 3"):
        myriad.train(reader, keys=KEYS, label="y")


@pytest.fixture(scope="module")
def big(cli, tmp_path_factory) -> pa.Table:
    d = tmp_path_factory.mktemp("big")
    path = pyhelpers.gen(cli, d / "big.csv", groups=3000, rows=60, features=8, seed=2)
    return pacsv.read_csv(path)


def test_gil_is_released(big):
    done = threading.Event()
    out = {}

    def work():
        out["res"] = myriad.train(big, keys=KEYS, label="y", model="forest",
                                  params={"n_trees": 30}, threads=1)
        done.set()

    th = threading.Thread(target=work)
    th.start()
    spins = 0
    while not done.is_set():
        spins += 1
        time.sleep(0)
    th.join()
    assert out["res"].num_rows == 3000
    # With the GIL held for the whole call, this thread could not have run meanwhile.
    assert spins > 100


def test_ctrl_c_stops_training(big, tmp_path):
    store = tmp_path / "m.db"
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            myriad.train(big, keys=KEYS, label="y", model="forest",
                         params={"n_trees": 200}, threads=1, store=store)
    finally:
        timer.cancel()
    # Nothing was published.
    if store.exists():
        assert pyhelpers.scalar(store, "select count(*) from current") == 0


def test_readme_example(tmp_path, monkeypatch):
    """The README's Python example runs as written."""
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- python-example -->\s*```python\n(.*?)```", readme, re.S)
    assert m, "README.md has no python example marked <!-- python-example -->"
    monkeypatch.chdir(tmp_path)
    code = compile(m.group(1), "README.md", "exec")
    exec(code, {"__name__": "readme"})  # noqa: S102 - our own README


def test_train_store_with_a_memory_limit_and_resume(data, cli_store, tmp_path):
    """train_store: no results table, so a memory limit and resume are allowed; the
    spilled run stores the CLI's models, and resuming a published spec does nothing."""
    store = tmp_path / "m.db"
    s = myriad.train_store(pacsv.read_csv(data), store, keys=KEYS, label="y",
                           model="forest", params={"n_trees": 10}, seed=5,
                           memory_limit="200K", spill_dir=tmp_path)
    assert s["groups_trained"] == 120 and s["spill"]["loads"] >= 2, s
    got = {k: v["blob"] for k, v in pyhelpers.current_models(store).items()}
    assert got == cli_store
    again = myriad.train_store(pacsv.read_csv(data), store, keys=KEYS, label="y",
                               model="forest", params={"n_trees": 10}, seed=5,
                               resume=True)
    assert again.get("already_published") is True and again["run_id"] == s["run_id"]
    with pytest.raises(ValueError, match="memory_limit"):
        myriad.train_store(data, store, keys=KEYS, label="y", memory_limit="lots")
    # the table-returning path (myriad.train) refuses a limit: the table holds everything
    with pytest.raises(myriad.MyriadError, match="cannot return results"):
        myriad._core.train(None, str(data), KEYS, "y", None, "linear", None, None, 0, 0,
                           0.0, 0, None, True, False, 1 << 20, None)
