# SPDX-License-Identifier: Apache-2.0
"""Helpers shared by the Python tests (tests/integration, tests/python) and bench/.

They drive the real `myriad` binary and read what it writes with nothing but the standard
library: the SQLite store through the sqlite3 module, model blobs through the byte layout
in docs/internals/model-format.md (including a from-scratch CRC32C), so that a test
checks the documented formats rather than trusting myriad to read its own output.
"""
from __future__ import annotations

import json
import os
import sqlite3
import struct
import subprocess
from pathlib import Path

BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def pin_one_thread() -> None:
    """Pin every BLAS / OpenMP pool to one thread, as one Spark task runs scikit-learn.
    Call before numpy is imported: the pools read these variables when they load."""
    for var in BLAS_THREAD_VARS:
        os.environ[var] = "1"


REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLI = REPO / "build" / "release" / "myriad"

# --------------------------------------------------------------------------- the CLI


def find_cli() -> Path:
    """The myriad binary: $MYR_CLI, else build/release/myriad. Raises RuntimeError with
    instructions when it is missing, so no test is skipped silently."""
    env = os.environ.get("MYR_CLI")
    path = Path(env) if env else DEFAULT_CLI
    if not path.is_file() or not os.access(path, os.X_OK):
        how = f"MYR_CLI={env!r}" if env else f"MYR_CLI is unset and the default {path}"
        raise RuntimeError(
            f"myriad CLI not found: {how} is not an executable file. Build it "
            "(`make build`, or cmake --build ... --target myriad_cli) and point MYR_CLI "
            "at the binary.")
    return path.resolve()


def run_cli(cli: Path, *args, cwd=None, timeout: float = 900,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `myriad ARGS...`, capturing text stdout/stderr; never raises on exit status."""
    return subprocess.run([str(cli), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, errors="replace", timeout=timeout, env=env)


def describe(proc: subprocess.CompletedProcess) -> str:
    """The command, exit status and output of a finished process, for assertion
    messages (and for bug reports: they show the exact command and what it printed)."""
    cmd = " ".join(proc.args) if isinstance(proc.args, list) else str(proc.args)
    return (f"\n$ {cmd}\nexit status {proc.returncode}\n--- stdout ---\n"
            f"{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}")


def gen(cli: Path, out: Path, *, groups: int, rows: int, features: int,
        noise: float = 0.1, seed: int = 1, skew: str | None = None,
        extra: tuple = ()) -> Path:
    """`myriad gen` into out; asserts success."""
    args = ["gen", "--out", out, "--groups", groups, "--rows", rows, "--features",
            features, "--noise", noise, "--seed", seed, "--quiet"]
    if skew:
        args += ["--skew", skew]
    proc = run_cli(cli, *args, *extra)
    if proc.returncode != 0 or not out.is_file():
        raise AssertionError("myriad gen failed" + describe(proc))
    return out


def train_json(cli: Path, data: Path, *args, keys: str = "app,api",
               label: str = "y") -> dict:
    """`myriad train DATA --keys .. --label .. ARGS --json`; asserts exit 0 and returns
    the parsed summary."""
    proc = run_cli(cli, "train", data, "--keys", keys, "--label", label, *args, "--json")
    if proc.returncode != 0:
        raise AssertionError("myriad train failed" + describe(proc))
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"--json output is not one JSON object: {e}"
                             + describe(proc)) from None


def published_runs(store) -> int:
    """How many runs of a store are published (read with the sqlite3 module)."""
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM runs WHERE status = 'published'"
                           ).fetchone()[0]
    finally:
        con.close()


# --------------------------------------------------------------------------- CRC32C

def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, init and final xor
    0xFFFFFFFF. crc32c(b"123456789") == 0xE3069283."""
    crc = 0xFFFFFFFF
    t = _CRC32C
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# --------------------------------------------------------------------------- model blobs

BLOB_MAGIC = b"MYRB"
BLOB_HEADER = 48
BLOB_TRAILER = 4


class BlobError(ValueError):
    """A blob that does not follow docs/internals/model-format.md."""


def decode_blob(blob: bytes) -> dict:
    """Parse and check a format-v1 blob: magic, format version, header size, family name
    padding, payload length against the blob length, and the CRC32C trailer. Returns the
    header fields and the payload; for family `linear` also intercept and coef."""
    blob = bytes(blob)
    if len(blob) < BLOB_HEADER + BLOB_TRAILER:
        raise BlobError(f"blob of {len(blob)} bytes is shorter than header + CRC (52)")
    if blob[:4] != BLOB_MAGIC:
        raise BlobError(f"magic {blob[:4]!r} != {BLOB_MAGIC!r}")
    fmt_version, header_size = struct.unpack_from("<HH", blob, 4)
    if fmt_version != 1:
        raise BlobError(f"format version {fmt_version} != 1")
    if header_size != BLOB_HEADER:
        raise BlobError(f"header size {header_size} != {BLOB_HEADER}")
    raw_family = blob[8:24]
    family = raw_family.split(b"\0", 1)[0]
    if not family or raw_family[len(family):].strip(b"\0"):
        raise BlobError(f"family name field {raw_family!r} is not NUL-padded text")
    payload_version, n_features, schema_hash, payload_len = struct.unpack_from(
        "<IIQQ", blob, 24)
    if payload_len != len(blob) - BLOB_HEADER - BLOB_TRAILER:
        raise BlobError(f"payload length {payload_len} != blob length {len(blob)} - 52")
    (stored_crc,) = struct.unpack_from("<I", blob, BLOB_HEADER + payload_len)
    actual_crc = crc32c(blob[:BLOB_HEADER + payload_len])
    if stored_crc != actual_crc:
        raise BlobError(f"CRC32C {stored_crc:#010x} != computed {actual_crc:#010x}")
    out = {
        "family": family.decode("ascii"),
        "format_version": fmt_version,
        "payload_version": payload_version,
        "n_features": n_features,
        "schema_hash": schema_hash,
        "payload": blob[BLOB_HEADER:BLOB_HEADER + payload_len],
    }
    if out["family"] == "linear":
        if payload_version != 1:
            raise BlobError(f"linear payload version {payload_version} != 1")
        if payload_len != 8 * (1 + n_features):
            raise BlobError(f"linear payload of {payload_len} bytes for {n_features} "
                            "features (expected 8 x (1 + p))")
        values = struct.unpack_from(f"<{1 + n_features}d", blob, BLOB_HEADER)
        out["intercept"] = values[0]
        out["coef"] = list(values[1:])
    return out


# --------------------------------------------------------------------------- the store

def connect(store: Path) -> sqlite3.Connection:
    """Open an existing store with Python's sqlite3 (never creates one)."""
    if not Path(store).is_file():
        raise AssertionError(f"store {store} does not exist")
    con = sqlite3.connect(f"file:{store}?mode=rw", uri=True)
    con.row_factory = sqlite3.Row
    return con


def store_key_names(con: sqlite3.Connection) -> list[str]:
    row = con.execute("SELECT value FROM meta WHERE name = 'key_names'").fetchone()
    if row is None:
        raise AssertionError("store has no meta.key_names")
    return json.loads(row[0])


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in con.execute(f"PRAGMA table_info({table})")}


def _blob_source(con: sqlite3.Connection) -> tuple[str, str]:
    """(join clause, blob expression): blobs live in models.blob or in a blobs table."""
    if "blob" in _columns(con, "models"):
        return "", "m.blob"
    return "JOIN blobs b ON b.model_id = m.model_id", "b.blob"


def _qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def current_models(store: Path) -> dict[tuple, dict]:
    """The current model of every key, read straight from SQLite:
    {key tuple: {version, run_id, family, n_rows, n_holdout, metrics, blob}}."""
    con = connect(store)
    try:
        keys = store_key_names(con)
        join, blob = _blob_source(con)
        kcols = ", ".join(f"m.{_qi(k)}" for k in keys)
        sql = (f"SELECT {kcols}, c.version AS cur_version, m.version AS version, "
               f"m.run_id AS run_id, m.family AS family, m.n_rows AS n_rows, "
               f"m.n_holdout AS n_holdout, m.metrics AS metrics, {blob} AS blob "
               f"FROM current c JOIN models m ON m.model_id = c.model_id {join}")
        out = {}
        for r in con.execute(sql):
            key = tuple(r[i] for i in range(len(keys)))
            assert key not in out, f"key {key} has two current models"
            out[key] = {
                "version": r["version"], "cur_version": r["cur_version"],
                "run_id": r["run_id"], "family": r["family"], "n_rows": r["n_rows"],
                "n_holdout": r["n_holdout"],
                "metrics": json.loads(r["metrics"]) if r["metrics"] else {},
                "blob": bytes(r["blob"]),
            }
        return out
    finally:
        con.close()


def scalar(store: Path, sql: str, *params):
    con = connect(store)
    try:
        return con.execute(sql, params).fetchone()[0]
    finally:
        con.close()


def rows(store: Path, sql: str, *params) -> list[dict]:
    con = connect(store)
    try:
        return [dict(r) for r in con.execute(sql, params)]
    finally:
        con.close()


def models_json(cli: Path, store: Path, *args) -> list[dict]:
    """`myriad models --store STORE --format json ARGS`; asserts exit 0."""
    proc = run_cli(cli, "models", "--store", store, "--format", "json", *args)
    if proc.returncode != 0:
        raise AssertionError("myriad models failed" + describe(proc))
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"models --format json is not JSON: {e}" + describe(proc)) \
            from None
    if not isinstance(out, list):
        raise AssertionError("models --format json is not an array" + describe(proc))
    return out
