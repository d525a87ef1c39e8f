#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: training from Arrow IPC against training from CSV, end to end.

One run: `myriad gen` writes the same data set (--groups keys x --rows rows x --features
features; 10 million rows by default) as CSV and as an Arrow IPC file (and, with
--compression, a compressed IPC file too). Then, each --repeat times, interleaved:
- `myriad train FILE --model linear` from each file (read + group + fit, no store: the
  store costs both inputs the same), wall time of the whole command;
- pyarrow's own readers on the same files for reference: pyarrow.csv.read_csv and
  pyarrow.ipc.open_file(...).read_all() (multi-threaded, as pyarrow does by default).
The table gives medians and the ratios. The check trains each file once more into a store
(untimed) and compares every model blob: they must be byte-identical. See bench/README.md.

Usage: MYR_CLI=build/release/myriad .venv/bin/python bench/arrow_ingest.py [options]
"""
import argparse
import hashlib
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import pyhelpers  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Time myriad train from Arrow IPC against the same from CSV.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--groups", type=int, default=100_000, help="keys")
    p.add_argument("--rows", type=int, default=100, help="rows per key")
    p.add_argument("--features", type=int, default=8, help="feature columns")
    p.add_argument("--threads", type=int, default=0, help="myriad train --threads (0: all)")
    p.add_argument("--compression", default="lz4", choices=["none", "lz4", "zstd"],
                   help="also time a compressed IPC file ('none': skip)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs of each; medians")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--dir", default=None,
                   help="working directory (kept; data reused when present)")
    return p.parse_args(argv)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def blob_digest(store: Path) -> tuple[int, str]:
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        h = hashlib.sha256()
        n = 0
        for (b,) in con.execute("select b.blob from current c join models m on "
                                "m.model_id = c.model_id join blobs b on "
                                "b.model_id = m.model_id order by m.key_hash, 1"):
            h.update(bytes(b))
            n += 1
        return n, h.hexdigest()
    finally:
        con.close()


def main(argv=None) -> int:
    args = parse_args(argv)
    cli = pyhelpers.find_cli()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="myr-arrow-"))
    work.mkdir(parents=True, exist_ok=True)
    n_rows = args.groups * args.rows
    files = {"csv": work / "data.csv", "arrow": work / "data.arrow"}
    if args.compression != "none":
        files[f"arrow+{args.compression}"] = work / f"data.{args.compression}.arrow"
    gen = ["gen", "--groups", args.groups, "--rows", args.rows, "--features",
           args.features, "--seed", args.seed, "--quiet"]
    for name, path in files.items():
        if not path.exists():
            extra = ["--compression", name.split("+")[1]] if "+" in name else []
            print(f"generating {path.name} ({n_rows:,} rows)", file=sys.stderr)
            proc = pyhelpers.run_cli(cli, *gen, "--out", path, *extra)
            if proc.returncode != 0:
                print(pyhelpers.describe(proc), file=sys.stderr)
                return 1

    # The check: one untimed run per file into a store; every blob must be identical.
    digests = {}
    for name, path in files.items():
        store = work / f"{name}.db"
        for p in work.glob(f"{name}.db*"):
            p.unlink()
        proc = pyhelpers.run_cli(cli, "train", path, "--keys", "app,api", "--label", "y",
                                 "--model", "linear", "--threads", args.threads,
                                 "--store", store, "--quiet")
        if proc.returncode != 0:
            print(pyhelpers.describe(proc), file=sys.stderr)
            return 1
        digests[name] = blob_digest(store)

    # Timed: read + group + train (no store, so that the input path is what differs;
    # writing the store costs both the same), interleaved.
    times: dict[str, list[float]] = {}
    for rep in range(args.repeat):
        for name, path in files.items():
            cmd = [str(cli), "train", str(path), "--keys", "app,api", "--label", "y",
                   "--model", "linear", "--threads", str(args.threads), "--quiet"]
            t, proc = timed(lambda: subprocess.run(cmd, capture_output=True, text=True))
            if proc.returncode != 0:
                print(f"myriad train {path.name} failed:\n{proc.stderr}", file=sys.stderr)
                return 1
            times.setdefault(f"myriad train {name}", []).append(t)
            print(f"  run {rep + 1}: myriad train {name}: {t:.2f} s", file=sys.stderr)
        t, _ = timed(lambda: pacsv.read_csv(files["csv"]))
        times.setdefault("pyarrow.csv.read_csv", []).append(t)
        t, _ = timed(lambda: ipc.open_file(files["arrow"]).read_all())
        times.setdefault("pyarrow.ipc read_all", []).append(t)

    med = {k: statistics.median(v) for k, v in times.items()}
    size = {n: p.stat().st_size for n, p in files.items()}
    print(f"\n{n_rows:,} rows ({args.groups:,} keys x {args.rows} rows x "
          f"{args.features} features), myriad --threads {args.threads or os.cpu_count()}, "
          f"medians of {args.repeat}")
    print(f"  {'':34} {'seconds':>8} {'Mrows/s':>8}")
    for k, v in med.items():
        print(f"  {k:34} {v:8.2f} {n_rows / v / 1e6:8.2f}")
    print("  file sizes: " + ", ".join(f"{n} {s / 1e6:,.0f} MB" for n, s in size.items()))
    base = med["myriad train csv"]
    for name in files:
        if name != "csv":
            print(f"  speedup, train from {name} vs from CSV: "
                  f"{base / med[f'myriad train {name}']:.2f}x")
    print(f"  reference: pyarrow reads the CSV in {med['pyarrow.csv.read_csv']:.2f} s and "
          f"the IPC file in {med['pyarrow.ipc read_all']:.2f} s")
    ok = len({d for d in digests.values()}) == 1 and digests["csv"][0] == args.groups
    print(f"  check: {digests['csv'][0]:,} models from each file, blobs "
          f"{'identical' if ok else 'DIFFERENT'}")
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
