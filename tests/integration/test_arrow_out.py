# SPDX-License-Identifier: Apache-2.0
"""`myriad gen` Arrow output, read by pyarrow (and polars): the IPC file and stream formats,
uncompressed, LZ4 and ZSTD, hold exactly the rows and values of the CSV that the same
arguments write (keys as utf8, features and label as float64 bit for bit), in record
batches of at most 65536 rows; the format follows the --out extension unless --format
says otherwise; bad combinations are usage errors that write nothing.

Every file lives under pytest's tmp directories; nothing is written into the repository.
"""
import io
import subprocess

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

import pyhelpers as h

BATCH_ROWS = 65536


def gen(cli, out, *args):
    p = h.run_cli(cli, "gen", "--out", out, "--quiet", *args)
    assert p.returncode == 0, h.describe(p)
    return out


def read_arrow(path, stream):
    """The table and its record batches, through the reader the format calls for."""
    with open(path, "rb") as f:
        if stream:
            batches = list(ipc.open_stream(f))
        else:
            r = ipc.open_file(f)
            batches = [r.get_batch(i) for i in range(r.num_record_batches)]
    table = pa.Table.from_batches(batches)
    table.validate(full=True)
    return table, batches


def assert_same_as_csv(table, csv_path):
    """Column for column: names, types, and values equal to what pandas reads from the
    CSV text, bit for bit for the numbers."""
    df = pd.read_csv(csv_path, dtype={"app": str, "api": str, "host": str})
    assert table.column_names == list(df.columns)
    assert table.num_rows == len(df)
    for name in df.columns:
        col = table.column(name)
        if name in ("app", "api", "host"):
            assert col.type == pa.string(), name
            assert col.null_count == 0
            assert col.to_pylist() == df[name].tolist(), name
        else:
            assert col.type == pa.float64(), name
            assert col.null_count == 0
            got = col.to_numpy()
            want = df[name].to_numpy(dtype=np.float64)
            assert np.array_equal(got.view(np.uint64), want.view(np.uint64)), name


@pytest.fixture(scope="module")
def csv_70k(cli, tmp_path_factory):
    """70,000 rows (two record batches in Arrow), 4 features, seed 21."""
    d = tmp_path_factory.mktemp("csv70k")
    return gen(cli, d / "data.csv", "--groups", 700, "--rows", 100, "--features", 4,
               "--noise", 0.7, "--seed", 21)


@pytest.mark.parametrize("fmt", ["arrow", "arrows"])
@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
def test_arrow_equals_csv(cli, csv_70k, tmp_path, fmt, compression):
    out = gen(cli, tmp_path / f"data.{fmt}", "--groups", 700, "--rows", 100,
              "--features", 4, "--noise", 0.7, "--seed", 21, "--compression", compression)
    table, batches = read_arrow(out, stream=fmt == "arrows")
    assert [b.num_rows for b in batches] == [BATCH_ROWS, 70000 - BATCH_ROWS]
    assert_same_as_csv(table, csv_70k)


def test_compression_makes_files_smaller(cli, tmp_path):
    sizes = {}
    for c in ("none", "lz4", "zstd"):
        out = gen(cli, tmp_path / f"{c}.arrow", "--groups", 300, "--rows", 100,
                  "--seed", 4, "--compression", c)
        sizes[c] = out.stat().st_size
    assert sizes["lz4"] < sizes["none"] and sizes["zstd"] < sizes["lz4"], sizes


def test_holdout_shuffle_zipf_classification(cli, tmp_path):
    """Every option that changes which rows go where: both files of the holdout split
    equal their CSV twins."""
    args = ["--groups", 500, "--rows", 150, "--skew", "zipf", "--holdout", 0.25,
            "--shuffle", "--key-columns", 3, "--task", "classification", "--classes", 4,
            "--shape", "piecewise", "--features", 3, "--seed", 8]
    gen(cli, tmp_path / "d.csv", *args)
    gen(cli, tmp_path / "d.arrow", *args, "--compression", "lz4")
    for stem in ("d", "d.test"):
        table, batches = read_arrow(tmp_path / f"{stem}.arrow", stream=False)
        assert all(b.num_rows <= BATCH_ROWS for b in batches)
        assert_same_as_csv(table, tmp_path / f"{stem}.csv")
        labels = set(table.column("y").to_pylist())
        assert labels <= {0.0, 1.0, 2.0, 3.0} and len(labels) == 4
    rows = sum(read_arrow(tmp_path / f"{s}.arrow", False)[0].num_rows for s in ("d", "d.test"))
    assert rows == 500 * 150


def test_same_file_whatever_the_threads(cli, tmp_path):
    outs = [gen(cli, tmp_path / f"t{t}.arrows", "--groups", 900, "--rows", 100,
                "--features", 2, "--threads", t, "--compression", "zstd")
            for t in (1, 3)]
    assert outs[0].read_bytes() == outs[1].read_bytes()


@pytest.mark.parametrize("name,fmt_args,stream", [
    ("x.feather", [], False),
    ("x.ipc", [], False),
    ("x.arrows", [], True),
    ("x.csv", ["--format", "arrow"], False),
    ("x.arrow", ["--format", "arrows"], True),
])
def test_format_from_extension_or_option(cli, tmp_path, name, fmt_args, stream):
    out = gen(cli, tmp_path / name, "--groups", 5, "--rows", 3, "--seed", 2, *fmt_args)
    magic = out.read_bytes()[:8]
    if stream:
        assert magic[:4] == b"\xff\xff\xff\xff"
    else:
        assert magic == b"ARROW1\0\0"
    table, _ = read_arrow(out, stream)
    assert table.num_rows == 15


def test_csv_stays_the_default(cli, tmp_path):
    out = gen(cli, tmp_path / "x.txt", "--groups", 2, "--rows", 2)
    assert out.read_text().startswith("app,api,f0,")
    p = h.run_cli(cli, "gen", "--out", "-", "--groups", 2, "--rows", 2, "--quiet")
    assert p.returncode == 0 and p.stdout.startswith("app,api,f0,"), h.describe(p)


def test_arrow_stream_to_stdout(cli, tmp_path):
    csv = gen(cli, tmp_path / "s.csv", "--groups", 40, "--rows", 10, "--seed", 6)
    p = subprocess.run([str(cli), "gen", "--out", "-", "--format", "arrows", "--groups", "40",
                        "--rows", "10", "--seed", "6", "--quiet"], capture_output=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    table = ipc.open_stream(io.BytesIO(p.stdout)).read_all()
    assert_same_as_csv(table, csv)


def test_polars_reads_it(cli, tmp_path):
    import polars as pl
    out = gen(cli, tmp_path / "p.arrow", "--groups", 20, "--rows", 10, "--seed", 3,
              "--compression", "zstd")
    df = pl.read_ipc(out)
    assert df.shape == (200, 2 + 8 + 1)
    assert df.schema["app"] == pl.String and df.schema["y"] == pl.Float64


@pytest.mark.parametrize("args,needle", [
    (["--compression", "zstd"], "--compression"),                 # CSV output
    (["--format", "parquet"], "--format"),
    (["--format", "arrow", "--compression", "gzip"], "--compression"),
])
def test_bad_format_options_exit_2(cli, tmp_path, args, needle):
    out = tmp_path / "x.csv"
    p = h.run_cli(cli, "gen", "--out", out, "--groups", 2, *args)
    assert p.returncode == 2 and needle in p.stderr, h.describe(p)
    assert not out.exists()


def test_unwritable_arrow_path_exits_1(cli, tmp_path):
    out = tmp_path / "no such dir" / "x.arrow"
    p = h.run_cli(cli, "gen", "--out", out, "--groups", 2)
    assert p.returncode == 1, h.describe(p)
    assert str(out) in p.stderr and "No such file or directory" in p.stderr, h.describe(p)


def test_help_documents_the_formats(cli):
    p = h.run_cli(cli, "gen", "--help")
    assert p.returncode == 0, h.describe(p)
    for needle in ("--format", "--compression", "arrows", "lz4", "zstd", ".feather"):
        assert needle in p.stdout, needle + h.describe(p)
