# SPDX-License-Identifier: Apache-2.0
"""Arrow IPC input and output of the `myriad` CLI, end to end, against CSV.

The same data is written as CSV and as Arrow IPC with pyarrow (file and stream formats;
uncompressed, LZ4 and ZSTD bodies; dictionary-encoded keys; nulls in a feature and in a
key; several record batches; a slice of a bigger table) and trained with the CLI: the
stores must hold byte-identical model blobs per key, and the runs the same row and skip
counts. Keys of other types (integers, floats, bools, dates, timestamps) must give the
same keys as the CSV pyarrow writes for them. `myriad predict --out x.arrow` must hold
what the CSV predictions hold.

Every file lives under pytest's tmp directories; nothing is written into the repository.
"""
import csv
import os
import shutil
import threading

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pytest

import pyhelpers as h

N_GROUPS = 40
ROWS = 30
FEATURES = ["f0", "f1", "f2"]


def make_table(seed=5, groups=N_GROUPS, rows=ROWS):
    """Keys app (string) and shard (int64), features f0..f2 (float64, f2 from int32),
    label y; f1 null in rows 7 and 300, app null in row 11, shard null in row 500."""
    rng = np.random.default_rng(seed)
    n = groups * rows
    g = rng.integers(0, groups, n)
    app = np.array([f"app-{i % 7:02d}" for i in g], dtype=object)
    shard = (g // 7).astype(np.int64)
    f0 = rng.normal(size=n)
    f1 = rng.normal(size=n)
    f2 = rng.integers(-50, 50, n).astype(np.int32)
    y = 1.5 * f0 - 2.0 * f1 + 0.1 * f2 + g * 0.25 + rng.normal(scale=0.1, size=n)
    f1_mask = np.zeros(n, bool)
    f1_mask[[i for i in (7, 300) if i < n]] = True
    app_list = list(app)
    if n > 11:
        app_list[11] = None
    shard_mask = np.zeros(n, bool)
    shard_mask[[i for i in (500,) if i < n]] = True
    return pa.table({
        "app": pa.array(app_list, pa.string()),
        "shard": pa.array(shard, pa.int64(), mask=shard_mask),
        "f0": pa.array(f0),
        "f1": pa.array(f1, mask=f1_mask),
        "f2": pa.array(f2, pa.int32()),
        "y": pa.array(y),
    })


def write_csv(table, path):
    """CSV as a user would export it: floats in their shortest round-trip form (repr),
    nulls as empty cells."""
    cols = table.column_names
    data = [table.column(c).to_pylist() for c in cols]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for row in zip(*data):
            w.writerow(["" if v is None else repr(v) if isinstance(v, float) else v
                        for v in row])
    return path


def write_arrow(table, path, *, stream=False, compression=None, chunk=None):
    opts = ipc.IpcWriteOptions(compression=compression)
    writer = (ipc.new_stream if stream else ipc.new_file)(str(path), table.schema,
                                                           options=opts)
    with writer:
        writer.write_table(table, max_chunksize=chunk)
    return path


def train(cli, data, store, keys="app,shard", *extra):
    return h.train_json(cli, data, "--store", store, "--features", ",".join(FEATURES),
                        "--seed", "7", *extra, keys=keys)


def blobs(store):
    """{key tuple: blob} of the current models, read with sqlite3."""
    return {k: v["blob"] for k, v in h.current_models(store).items()}


def skips(summary):
    """Row accounting of a summary, without line numbers (CSV only has those)."""
    return (summary["rows_total"], summary["rows_used"], summary["groups_total"],
            {k: (v["rows"], v["first_row"], v["column"])
             for k, v in summary["skipped"].items()})


@pytest.fixture(scope="module")
def base(cli, tmp_path_factory):
    """The CSV of make_table() and its store: what every Arrow variant must match."""
    d = tmp_path_factory.mktemp("arrow_train")
    table = make_table()
    data = write_csv(table, d / "data.csv")
    store = d / "csv.db"
    summary = train(cli, data, store)
    models = blobs(store)
    assert len(models) == N_GROUPS
    assert summary["skipped"]["missing_feature"]["rows"] == 2
    assert summary["skipped"]["missing_key"]["rows"] == 2
    return dict(dir=d, table=table, csv=data, store=store, summary=summary, blobs=models)


VARIANTS = {
    "file": dict(),
    "stream": dict(stream=True),
    "file_lz4": dict(compression="lz4"),
    "stream_zstd": dict(stream=True, compression="zstd"),
    "file_zstd_batches": dict(compression="zstd", chunk=97),
    "stream_lz4_batches": dict(stream=True, compression="lz4", chunk=256),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_arrow_matches_csv(cli, base, variant):
    d = base["dir"]
    data = write_arrow(base["table"], d / f"{variant}.arrow", **VARIANTS[variant])
    store = d / f"{variant}.db"
    summary = train(cli, data, store)
    assert skips(summary) == skips(base["summary"])
    assert summary["skipped"]["missing_key"]["first_line"] == 0  # no lines in Arrow
    assert blobs(store) == base["blobs"]


def test_dictionary_keys(cli, base):
    """Keys dictionary-encoded (int8 indices for app, int32 for shard as strings)."""
    t = base["table"]
    shard_text = pa.array([None if v is None else str(v) for v in t["shard"].to_pylist()],
                          pa.string())
    table = t.set_column(0, "app", t["app"].combine_chunks().dictionary_encode()) \
             .set_column(1, "shard", shard_text.dictionary_encode()
                         .cast(pa.dictionary(pa.int32(), pa.string())))
    assert pa.types.is_dictionary(table.schema.field("app").type)
    d = base["dir"]
    for stream in (False, True):
        data = write_arrow(table, d / f"dict{int(stream)}.arrow", stream=stream, chunk=200)
        store = d / f"dict{int(stream)}.db"
        summary = train(cli, data, store)
        assert skips(summary) == skips(base["summary"])
        assert blobs(store) == base["blobs"]


def test_slice_of_bigger_table(cli, base):
    """The data as rows [100, 100 + n) of a bigger table: offsets in every buffer."""
    t = base["table"]
    n = t.num_rows
    pad = make_table(seed=99, groups=5, rows=20)
    big = pa.concat_tables([pad.slice(0, 100), t, pad.slice(0, 50)]).combine_chunks()
    sliced = big.slice(100, n)
    assert sliced.equals(t)
    d = base["dir"]
    data = write_arrow(sliced, d / "slice.arrows", stream=True, chunk=333)
    store = d / "slice.db"
    summary = train(cli, data, store)
    assert skips(summary) == skips(base["summary"])
    assert blobs(store) == base["blobs"]


def test_format_from_magic_bytes(cli, base):
    """An Arrow file named .csv, and a CSV named .arrow, are read as what they are."""
    d = base["dir"]
    arrow = write_arrow(base["table"], d / "real.arrow")
    fake_csv = d / "actually_arrow.csv"
    shutil.copy(arrow, fake_csv)
    fake_arrow = d / "actually_csv.arrow"
    shutil.copy(base["csv"], fake_arrow)
    for data, name in ((fake_csv, "m1.db"), (fake_arrow, "m2.db")):
        summary = train(cli, data, d / name)
        assert skips(summary) == skips(base["summary"])
        assert blobs(d / name) == base["blobs"]


def test_typed_keys_match_csv(cli, tmp_path):
    """Keys of int, float, bool, date and timestamp types: the same keys and models as
    the CSV pyarrow writes for the same table."""
    rng = np.random.default_rng(3)
    n = 600
    g = rng.integers(0, 6, n)
    table = pa.table({
        "i": pa.array(g * 1000 - 2500, pa.int32()),
        "u": pa.array(g.astype(np.uint64) * 7, pa.uint64()),
        "x": pa.array(g * 0.25 - 0.5),
        "b": pa.array(g % 2 == 0),
        "d": pa.array(g.astype(np.int32) * 400 - 1000, pa.date32()),
        "ts": pa.array(g.astype(np.int64) * 86_400_123_456 + 1_600_000_000_000_000,
                       pa.timestamp("us")),
        "tz": pa.array(g.astype(np.int64) * 3601 - 7200, pa.timestamp("s", tz="UTC")),
        "f0": pa.array(rng.normal(size=n)),
        "y": pa.array(rng.normal(size=n)),
    })
    keys = "i,u,x,b,d,ts,tz"
    csv_path = tmp_path / "typed.csv"
    pacsv.write_csv(table, str(csv_path))
    arrow_path = write_arrow(table, tmp_path / "typed.arrow", chunk=100)
    s1 = h.train_json(cli, csv_path, "--store", tmp_path / "c.db", "--features", "f0",
                      keys=keys)
    s2 = h.train_json(cli, arrow_path, "--store", tmp_path / "a.db", "--features", "f0",
                      keys=keys)
    assert s1["groups_total"] == s2["groups_total"] == 6
    assert skips(s1) == skips(s2)
    m1, m2 = blobs(tmp_path / "c.db"), blobs(tmp_path / "a.db")
    assert m1 == m2
    # the key text itself, for one group
    assert any(k[3] == "true" and k[4].count("-") == 2 and k[6].endswith("Z") for k in m2)


def test_arrow_features_of_other_types(cli, tmp_path):
    """int, float32 (widened exactly), bool (0/1), date (days) and timestamp (its unit)
    features and label: what the store's models saw is checked through the linear
    coefficients on data that a linear model fits exactly."""
    n = 200
    rng = np.random.default_rng(8)
    a = rng.integers(-100, 100, n).astype(np.int16)
    b = rng.integers(0, 2, n).astype(bool)
    d = rng.integers(0, 20000, n).astype(np.int32)
    t = rng.integers(0, 10**6, n).astype(np.int64)
    y = 2.0 * a + 3.0 * b + 0.5 * d - 0.25 * t + 1.0
    table = pa.table({"k": pa.array(["one"] * n), "a": pa.array(a, pa.int16()),
                      "b": pa.array(b), "d": pa.array(d, pa.date32()),
                      "t": pa.array(t, pa.timestamp("ms")), "y": pa.array(y, pa.float32())})
    path = write_arrow(table, tmp_path / "typed.arrow")
    store = tmp_path / "t.db"
    h.train_json(cli, path, "--store", store, "--param", "alpha=0", keys="k")
    (model,) = h.models_json(cli, store, "--describe")
    coef = model["model"]["model"]["coef"]
    assert np.allclose(coef, [2.0, 3.0, 0.5, -0.25], atol=1e-6), coef


def test_unsupported_column_is_named(cli, tmp_path):
    table = pa.table({"k": ["a", "b"], "tags": pa.array([[1], [2]]), "y": [1.0, 2.0],
                      "x": [3.0, 4.0]})
    path = write_arrow(table, tmp_path / "list.arrow")
    p = h.run_cli(cli, "train", path, "--keys", "k", "--label", "y", "--features",
                  "tags")
    assert p.returncode == 1, h.describe(p)
    assert "'tags'" in p.stderr and "list" in p.stderr, h.describe(p)
    assert not p.stdout, h.describe(p)


# ----------------------------------------------------------------------------- predict


def read_csv_predictions(path):
    t = pacsv.read_csv(str(path), convert_options=pacsv.ConvertOptions(
        column_types={"app": pa.string(), "shard": pa.string(), "reason": pa.string(),
                      "prediction": pa.float64()},
        strings_can_be_null=False))
    return t


def normalize(t):
    """Columns as Python lists, empty strings and nulls alike as None."""
    out = {}
    for name in t.column_names:
        vals = t.column(name).to_pylist()
        out[name] = [None if v == "" else v for v in vals]
    return out


@pytest.mark.parametrize("fmt,ext", [("arrow", "arrow"), ("arrows", "arrows"),
                                     (None, "feather")])
def test_predict_arrow_output(cli, base, fmt, ext):
    d = base["dir"]
    src = write_arrow(base["table"], d / f"pin_{ext}.arrow", stream=True, chunk=500)
    ref = d / f"pred_{ext}.csv"
    p = h.run_cli(cli, "predict", base["csv"], "--store", base["store"], "--out", ref)
    assert p.returncode == 0, h.describe(p)
    out = d / f"pred_{ext}.{ext}"
    args = ["--format", fmt] if fmt else []
    p = h.run_cli(cli, "predict", src, "--store", base["store"], "--out", out, *args)
    assert p.returncode == 0, h.describe(p)
    assert not (d / f"pred_{ext}.{ext}.tmp").exists()
    with open(out, "rb") as f:
        head = f.read(8)
    if fmt == "arrows":
        assert head[:4] == b"\xff\xff\xff\xff"
        got = ipc.open_stream(str(out)).read_all()
    else:
        assert head[:6] == b"ARROW1"
        got = feather.read_table(str(out))
    assert got.schema.names == ["app", "shard", "row", "prediction", "reason"]
    assert got.schema.field("row").type == pa.int64()
    assert got.schema.field("prediction").type == pa.float64()
    assert got.schema.field("app").type == pa.string()
    want = read_csv_predictions(ref)
    assert got.num_rows == want.num_rows == base["table"].num_rows
    a, b = normalize(got), normalize(want)
    for col in ("app", "shard", "row", "reason"):
        assert a[col] == b[col], col
    assert a["prediction"] == b["prediction"]  # the CSV's text reads back exactly
    assert a["reason"][11] == "missing_key" and a["app"][11] is None
    assert a["reason"][7] == "missing_feature" and a["prediction"][7] is None
    assert sum(r is None for r in a["reason"]) == base["table"].num_rows - 4


def test_predict_csv_input_to_arrow_and_back(cli, base, tmp_path):
    """CSV in, Arrow out, and the Arrow output's batches are at most 65536 rows."""
    out = tmp_path / "p.arrow"
    p = h.run_cli(cli, "predict", base["csv"], "--store", base["store"], "--out", out)
    assert p.returncode == 0, h.describe(p)
    reader = ipc.open_file(str(out))
    assert reader.num_record_batches >= 1
    assert all(reader.get_batch(i).num_rows <= 65536 for i in
               range(reader.num_record_batches))
    assert reader.read_all().num_rows == base["table"].num_rows


def test_predict_bad_format(cli, base, tmp_path):
    p = h.run_cli(cli, "predict", base["csv"], "--store", base["store"], "--out",
                  tmp_path / "x", "--format", "parquet")
    assert p.returncode == 2, h.describe(p)
    assert "--format" in p.stderr, h.describe(p)
    assert list(tmp_path.iterdir()) == []


def test_predict_classifier_probabilities(cli, tmp_path):
    """A classifier's predictions in Arrow: the class as float64 and the probabilities
    text, as the CSV output has them."""
    rng = np.random.default_rng(4)
    n = 400
    g = rng.integers(0, 4, n)
    x = rng.normal(size=n)
    table = pa.table({"k": pa.array([f"k{i}" for i in g]), "x": pa.array(x),
                      "c": pa.array((x + rng.normal(scale=0.5, size=n) > 0).astype(np.int64))})
    data = write_arrow(table, tmp_path / "cls.arrow")
    store = tmp_path / "cls.db"
    h.train_json(cli, data, "--store", store, "--model", "forest", "--param",
                 "task=classification,n_trees=5", "--features", "x", keys="k", label="c")
    ref, out = tmp_path / "p.csv", tmp_path / "p.arrows"
    for o in (ref, out):
        p = h.run_cli(cli, "predict", data, "--store", store, "--out", o)
        assert p.returncode == 0, h.describe(p)
    got = ipc.open_stream(str(out)).read_all()
    assert got.schema.names == ["k", "row", "prediction", "probabilities", "reason"]
    want = pacsv.read_csv(str(ref), convert_options=pacsv.ConvertOptions(
        column_types={"probabilities": pa.string(), "reason": pa.string()},
        strings_can_be_null=False))
    a, b = normalize(got), normalize(want)
    assert a["probabilities"] == b["probabilities"]
    assert a["prediction"] == b["prediction"]
    assert set(a["prediction"]) == {0.0, 1.0}
    assert all(p.startswith("0:") and ";1:" in p for p in a["probabilities"])


def _feed(path, data):
    with open(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("name", ["in.csv", "in.arrows"])
def test_pipe_input(cli, base, tmp_path, name):
    """A pipe's first bytes can be read only once: its name tells CSV from Arrow."""
    if name.endswith(".csv"):
        payload = base["csv"].read_bytes()
    else:
        payload = write_arrow(base["table"], tmp_path / "src.arrows", stream=True,
                              chunk=300).read_bytes()
    fifo = tmp_path / name
    os.mkfifo(fifo)
    writer = threading.Thread(target=_feed, args=(fifo, payload), daemon=True)
    writer.start()
    try:
        summary = train(cli, fifo, tmp_path / "pipe.db")
    finally:
        writer.join(timeout=60)
    assert skips(summary) == skips(base["summary"])
    assert blobs(tmp_path / "pipe.db") == base["blobs"]
