# SPDX-License-Identifier: Apache-2.0
"""myriad.spark with a real local Spark (local[2]): training, determinism across the CLI,
myriad.train and Spark, groups spanning Arrow batches, failed groups as error rows,
prediction, and bringing Spark-trained models into a store."""
import os
import signal
import sqlite3
import sys

import pyarrow as pa
import pyarrow.csv
import pytest

import myriad
import myriad.spark
import pyhelpers as h



FOREST = {"n_trees": 5, "max_depth": 6}


@pytest.fixture(scope="module")
def spark():
    # Executors run this interpreter (the venv with myriad and pyarrow).
    os.environ["PYSPARK_PYTHON"] = sys.executable
    # SparkContext installs its own SIGINT handler and leaves it after stop(); keep the
    # process's handler for the tests that send SIGINT (test_package's Ctrl-C test).
    sigint = signal.getsignal(signal.SIGINT)
    from pyspark.sql import SparkSession
    s = (SparkSession.builder.master("local[2]").appName("myriad-tests")
         .config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "4")
         # small batches: every group of 40 rows spans batches
         .config("spark.sql.execution.arrow.maxRecordsPerBatch", "16")
         .getOrCreate())
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()
    signal.signal(signal.SIGINT, sigint)


@pytest.fixture(scope="module")
def data(cli, tmp_path_factory):
    """A shuffled CSV (each key's rows spread over the file) with one key too small to
    train and one row with a bad label."""
    d = tmp_path_factory.mktemp("spark")
    src = h.gen(cli, d / "clean.csv", groups=200, rows=40, features=4, noise=0.2, seed=4,
                extra=("--shuffle",))
    text = src.read_text().rstrip("\n").split("\n")
    n_cols = text[0].count(",") + 1
    text.insert(5, "app-tiny,/api/v1/ep-0000," + ",".join(["1.5"] * (n_cols - 2)))
    text.insert(9, "app-0001,/api/v1/ep-0001," + ",".join(["2.5"] * (n_cols - 3)) + ",")
    out = d / "data.csv"
    out.write_text("\n".join(text) + "\n")
    return out


def read_df(spark, path):
    # Typed like the CLI reads them: keys as text, the rest as doubles.
    from pyspark.sql import types as T
    header = open(path).readline().strip().split(",")
    schema = T.StructType([T.StructField(c, T.StringType() if c in ("app", "api")
                                         else T.DoubleType()) for c in header])
    return spark.read.csv(str(path), header=True, schema=schema)


def blobs_of_store(store):
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return {(a, b): bytes(m) for a, b, m in con.execute(
            "SELECT c.app, c.api, b.blob FROM current c JOIN blobs b USING(model_id)")}
    finally:
        con.close()


@pytest.fixture(scope="module")
def spark_models(spark, data):
    df = read_df(spark, data)
    models = myriad.spark.train(df, keys=["app", "api"], label="y", model="forest",
                                params=FOREST, seed=9, num_partitions=3, chunk_rows=300,
                                min_rows=10)
    return models.toPandas()


def test_train_one_row_per_key_and_error_rows(spark_models):
    m = spark_models
    assert len(m) == 201 and m.groupby(["app", "api"]).size().max() == 1
    tiny = m[m.app == "app-tiny"].iloc[0]
    assert tiny.status == "too_few_rows" and tiny.model is None
    assert "1 rows" in tiny.error
    ok = m[m.status == "trained"]
    assert len(ok) == 200 and ok.model.notna().all()
    # the extra row with a missing label is skipped, not counted in its key's rows
    assert (ok.n_rows == 40).all()


def test_blobs_equal_cli_and_python(cli, data, spark_models, tmp_path):
    store = tmp_path / "cli.db"
    h.train_json(cli, data, "--model", "forest", "--param", "n_trees=5,max_depth=6",
                 "--seed", "9", "--min-rows", "10", "--store", store)
    cli_blobs = blobs_of_store(store)
    py = myriad.train(str(data), keys=["app", "api"], label="y", model="forest",
                      params=FOREST, seed=9, min_rows=10).to_pandas()
    py_blobs = {(a, b): m for a, b, m in zip(py.app, py.api, py.model) if m is not None}
    sp = spark_models
    sp_blobs = {(a, b): m for a, b, m in zip(sp.app, sp.api, sp.model) if m is not None}
    assert len(cli_blobs) == 200
    assert sp_blobs == cli_blobs == py_blobs


def test_predict_matches_local_predict(spark, data, spark_models):
    df = read_df(spark, data)
    models_df = spark.createDataFrame(spark_models)
    preds = myriad.spark.predict(df, models_df, num_partitions=3).toPandas()
    assert len(preds) == df.count()
    local = myriad.predict(str(data), models=pa.Table.from_pandas(
        spark_models, preserve_index=False)).to_pandas()
    got = sorted(zip(preds.app, preds.api, preds.prediction.round(12).fillna(-1e300)))
    want = sorted(zip(local.app, local.api, local.prediction.round(12).fillna(-1e300)))
    assert got == want
    # the tiny key has no model; a row with a missing feature has no prediction
    assert set(preds[preds.app == "app-tiny"].reason) == {"no_model"}
    assert preds.row.is_unique


def test_save_into_a_store_serves_the_same(cli, spark, spark_models, data, tmp_path):
    models_df = spark.createDataFrame(spark_models)
    store = tmp_path / "imported.db"
    s = myriad.spark.save(models_df, store, seed=9)
    assert s["models"] == 200 and s["errors"] == 1 and s["family"] == "forest"
    sp = {(a, b): m for a, b, m in zip(spark_models.app, spark_models.api,
                                      spark_models.model) if m is not None}
    assert blobs_of_store(store) == sp
    # `myriad predict` scores from the imported store as from the table
    out = tmp_path / "p.csv"
    p = h.run_cli(cli, "predict", data, "--store", store, "--out", out)
    assert p.returncode == 0, h.describe(p)
    cli_preds = pa.csv.read_csv(out).to_pandas()
    local = myriad.predict(str(data), models=pa.Table.from_pandas(
        spark_models, preserve_index=False)).to_pandas()
    assert cli_preds.prediction.fillna(-1).round(9).tolist() == \
        local.prediction.fillna(-1).round(9).tolist()
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        assert con.execute("SELECT reason FROM errors").fetchall() == [("too_few_rows",)]
    finally:
        con.close()


def test_import_refuses_bad_tables(spark_models, tmp_path):
    t = pa.Table.from_pandas(spark_models, preserve_index=False)
    good = [i for i, s in enumerate(spark_models.status) if s == "trained"]
    blobs = t.column("model").to_pylist()
    bad = list(blobs)
    bad[good[3]] = bad[good[3]][:-1] + bytes([bad[good[3]][-1] ^ 1])  # CRC breaks
    corrupt = t.set_column(t.schema.get_field_index("model"), "model",
                           pa.array(bad, pa.binary()))
    with pytest.raises(myriad.MyriadError, match=r"row \d+ \(key app-"):
        myriad.import_models(corrupt, tmp_path / "a.db")
    no_feats = t.drop_columns(["features"])
    with pytest.raises(myriad.MyriadError, match="no features"):
        myriad.import_models(no_feats, tmp_path / "b.db")
    # nothing was published by the failed imports
    assert h.published_runs(tmp_path / "a.db") == h.published_runs(tmp_path / "b.db") == 0
