# SPDX-License-Identifier: Apache-2.0
"""Writes the small Arrow IPC files the reader's unit tests (tests/unit/test_ipc_read.c)
read, with pyarrow (26). Run from anywhere: `.venv/bin/python tests/data/arrow/make.py`.
The files are committed; rerun only when changing them, and update the expected values in
test_ipc_read.c to match (they are spelled out there, not read from here).

all*.{stream,arrow}: one schema holding every type the reader decodes, three batches:
the 5 rows of ALL below, an empty slice, and the slice of rows 2..4 (pyarrow writes
slices with offsets normalised). Written uncompressed, LZ4_FRAME, ZSTD, as a pre-0.15
("legacy") stream and with V4 metadata.
delta.stream: a dictionary grown by delta batches (emit_dictionary_deltas).
delta_large.stream: deltas of a large_utf8 dictionary with a null value.
long.stream: 1000 rows in one batch (x = 7 i - 3000, null when i % 3 == 0; s = str(i),
null when i % 5 == 0), for full 64-bit words of validity bitmaps.
replace.stream: a dictionary replaced between batches (stream format only).
unsup_*.stream: one column of a type the reader refuses each.
empty.{stream,arrow}: a schema and no batches.

It also writes the seed corpus of the fuzz target (tests/fuzz/corpus/fuzz_ipc/seed_*):
small files of both formats, compressed and not, with dictionaries and deltas, and a
few truncated copies.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1] / "fuzz" / "corpus" / "fuzz_ipc"


def all_types() -> pa.RecordBatch:
    mask = np.array([False, False, True, False, False])
    cols = {
        "n": pa.nulls(5),
        "b": pa.array([True, False, None, True, False]),
        "i8": pa.array([1, -2, None, 127, -128], pa.int8()),
        "i16": pa.array([1000, -2, None, 32767, -32768], pa.int16()),
        "i32": pa.array([100000, -2, None, 2**31 - 1, -2**31], pa.int32()),
        "i64": pa.array([10**12, -2, None, 2**63 - 1, -2**63], pa.int64()),
        "u8": pa.array([1, 2, None, 255, 0], pa.uint8()),
        "u16": pa.array([1, 2, None, 65535, 0], pa.uint16()),
        "u32": pa.array([1, 2, None, 2**32 - 1, 0], pa.uint32()),
        "u64": pa.array([1, 2, None, 2**64 - 1, 0], pa.uint64()),
        "f16": pa.array(np.array([1.5, -2.0, 0.0, 0.25, 65504.0], np.float16), mask=mask),
        "f32": pa.array([1.5, -2.25, None, 3.0e38, 0.0], pa.float32()),
        "f64": pa.array([1.5, -2.25, None, 1e300, -0.0], pa.float64()),
        "s": pa.array(["a", "", None, "h\u00e9llo", "xyz"], pa.utf8()),
        "ls": pa.array(["a", "", None, "h\u00e9llo", "xyz"], pa.large_utf8()),
        "bin": pa.array([b"\x00\x01", b"", None, b"\xff", b"abc"], pa.binary()),
        "lbin": pa.array([b"\x00\x01", b"", None, b"\xff", b"abc"], pa.large_binary()),
        "d32": pa.array([0, 19000, None, -1, 365], pa.date32()),
        "d64": pa.array([0, 86400000, None, -86400000, 1], pa.date64()),
    }
    ints = [0, 1, None, -1, 1700000000]
    for unit in ("s", "ms", "us", "ns"):
        cols[f"ts_{unit}"] = pa.array(ints, pa.timestamp(unit))
    cols["ts_us_utc"] = pa.array(ints, pa.timestamp("us", tz="UTC"))
    cols["ts_ns_ny"] = pa.array(ints, pa.timestamp("ns", tz="America/New_York"))
    cols["t32_s"] = pa.array([0, 1, None, 86399, 3600], pa.time32("s"))
    cols["t32_ms"] = pa.array([0, 1, None, 86399999, 5], pa.time32("ms"))
    cols["t64_us"] = pa.array([0, 1, None, 86399999999, 5], pa.time64("us"))
    cols["t64_ns"] = pa.array([0, 1, None, 86399999999999, 5], pa.time64("ns"))
    for unit in ("s", "ms", "us", "ns"):
        cols[f"dur_{unit}"] = pa.array([0, 1, None, -1, 10**12], pa.duration(unit))
    cols["dict_s"] = pa.DictionaryArray.from_arrays(   # ordered: tests the flag
        pa.array([0, 1, None, 0, 2], pa.int8()), pa.array(["x", "y", "zz"]), ordered=True)
    cols["dict_i"] = pa.DictionaryArray.from_arrays(
        pa.array([1, 0, 1, None, 2], pa.uint16()), pa.array([10, 20, 30], pa.int64()))
    cols["dict_ls"] = pa.DictionaryArray.from_arrays(
        pa.array([3, None, 2, 1, 0], pa.int64()),
        pa.array(["p", None, "q", "rr"], pa.large_utf8()))
    fields = [pa.field(name, arr.type) for name, arr in cols.items()]
    fields.append(pa.field("nn", pa.int32(), nullable=False))
    arrays = list(cols.values()) + [pa.array([5, 6, 7, 8, 9], pa.int32())]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def write(path: Path, schema: pa.Schema, batches, file_format: bool, **opts) -> None:
    options = ipc.IpcWriteOptions(**opts)
    with pa.OSFile(str(path), "wb") as sink:
        writer = (ipc.new_file if file_format else ipc.new_stream)(sink, schema,
                                                                   options=options)
        for b in batches:
            writer.write_batch(b)
        writer.close()


def main() -> None:
    rb = all_types()
    batches = [rb, rb.slice(0, 0), rb.slice(2, 3)]
    s = rb.schema
    write(HERE / "all.stream", s, batches, False)
    write(HERE / "all.arrow", s, batches, True)
    write(HERE / "all_lz4.stream", s, batches, False, compression="lz4")
    write(HERE / "all_lz4.arrow", s, batches, True, compression="lz4")
    write(HERE / "all_zstd.stream", s, batches, False, compression="zstd")
    write(HERE / "all_zstd.arrow", s, batches, True, compression="zstd")
    write(HERE / "all_legacy.stream", s, batches, False, use_legacy_format=True)
    write(HERE / "all_v4.arrow", s, batches, True,
          metadata_version=ipc.MetadataVersion.V4)
    write(HERE / "empty.stream", s, [], False)
    write(HERE / "empty.arrow", s, [], True)

    # Dictionary deltas: each batch's dictionary extends the previous one.
    dschema = pa.schema([pa.field("k", pa.dictionary(pa.int16(), pa.utf8())),
                         pa.field("v", pa.dictionary(pa.int8(), pa.int32())),
                         pa.field("w", pa.dictionary(pa.int32(), pa.bool_()))])
    sv = [["a", "b"], ["a", "b", "c", "d"], ["a", "b", "c", "d", "e"]]
    iv = [[7, None], [7, None, 9], [7, None, 9]]
    bv = [[True], [True, None, False], [True, None, False]]
    idx = [[0, 1, 1], [3, None, 2, 0], [4]]
    delta = []
    for k in range(3):
        ix = idx[k]
        vi = [None if i is None else i % len(iv[k]) for i in ix]
        wi = [None if i is None else i % len(bv[k]) for i in ix]
        delta.append(pa.record_batch([
            pa.DictionaryArray.from_arrays(pa.array(ix, pa.int16()), pa.array(sv[k])),
            pa.DictionaryArray.from_arrays(pa.array(vi, pa.int8()),
                                           pa.array(iv[k], pa.int32())),
            pa.DictionaryArray.from_arrays(pa.array(wi, pa.int32()),
                                           pa.array(bv[k], pa.bool_()))], schema=dschema))
    write(HERE / "delta.stream", dschema, delta, False, emit_dictionary_deltas=True)
    write(HERE / "delta_zstd.arrow", dschema, delta, True, emit_dictionary_deltas=True,
          compression="zstd")

    lschema = pa.schema([pa.field("k", pa.dictionary(pa.int32(), pa.large_utf8()))])
    lv = [["\u03b1\u03b2", None], ["\u03b1\u03b2", None, "", "xyz"]]
    li = [[1, 0, None], [3, 2, 0]]
    write(HERE / "delta_large.stream", lschema,
          [pa.record_batch([pa.DictionaryArray.from_arrays(pa.array(li[k], pa.int32()),
                                                           pa.array(lv[k], pa.large_utf8()))],
                           schema=lschema) for k in range(2)],
          False, emit_dictionary_deltas=True)

    n = 1000
    long = pa.record_batch([
        pa.array([None if i % 3 == 0 else 7 * i - 3000 for i in range(n)], pa.int64()),
        pa.array([None if i % 5 == 0 else str(i) for i in range(n)], pa.utf8())],
        names=["x", "s"])
    write(HERE / "long.stream", long.schema, [long], False)

    # Dictionary replacement (stream only): unrelated dictionaries.
    rschema = pa.schema([pa.field("k", pa.dictionary(pa.int32(), pa.utf8()))])
    rep = [pa.record_batch([pa.DictionaryArray.from_arrays(pa.array(i, pa.int32()),
                                                           pa.array(d))], schema=rschema)
           for i, d in (([0, 1], ["p", "q"]), ([1, 0, 1], ["r", "s"]))]
    write(HERE / "replace.stream", rschema, rep, False)

    unsupported = {
        "list": pa.array([[1], [2, 3]], pa.list_(pa.int32())),
        "decimal": pa.array([1, 2], pa.decimal128(10, 2)),
        "struct": pa.array([{"a": 1}, {"a": 2}], pa.struct([("a", pa.int32())])),
        "fsb": pa.array([b"ab", b"cd"], pa.binary(2)),
        "ext": pa.ExtensionArray.from_storage(
            pa.uuid(), pa.array([b"0123456789abcdef"] * 2, pa.binary(16))),
        "view": pa.array(["a", "b"], pa.string_view()),
        "dictlist": pa.DictionaryArray.from_arrays(
            pa.array([0, 0], pa.int32()), pa.array([[1]], pa.list_(pa.int32()))),
    }
    for name, arr in unsupported.items():
        t = pa.table({"ok": pa.array([1, 2], pa.int32()), f"bad_{name}": arr})
        write(HERE / f"unsup_{name}.stream", t.schema, t.to_batches(), False)


def corpus() -> None:
    CORPUS.mkdir(parents=True, exist_ok=True)
    for old in CORPUS.glob("seed_*"):
        old.unlink()
    t = pa.table({
        "i": pa.array([1, None, 3], pa.int32()),
        "s": pa.array(["a", None, "ccc"]),
        "d": pa.array(["x", "y", "x"]).dictionary_encode(),
        "b": pa.array([True, None, False]),
        "f": pa.array([0.5, 1.5, None]),
        "t": pa.array([1, 2, None], pa.timestamp("ms", tz="UTC")),
        "lb": pa.array([b"", b"z", None], pa.large_binary()),
    })
    seeds = {}
    for comp in (None, "lz4", "zstd"):
        for file_format in (False, True):
            name = f"seed_{'file' if file_format else 'stream'}_{comp or 'plain'}"
            path = CORPUS / name
            write(path, t.schema, t.to_batches(max_chunksize=2), file_format,
                  compression=comp)
            seeds[name] = path.read_bytes()
    write(CORPUS / "seed_legacy", t.schema, t.to_batches(), False, use_legacy_format=True)
    d1 = pa.record_batch([pa.DictionaryArray.from_arrays(pa.array([0, 1], pa.int8()),
                                                         pa.array(["a", "b"]))], ["k"])
    d2 = pa.record_batch([pa.DictionaryArray.from_arrays(pa.array([2, None], pa.int8()),
                                                         pa.array(["a", "b", "c"]))],
                         ["k"])
    write(CORPUS / "seed_delta", d1.schema, [d1, d2], False, emit_dictionary_deltas=True)
    write(CORPUS / "seed_replace", d1.schema,
          [d1, pa.record_batch([pa.DictionaryArray.from_arrays(
              pa.array([0], pa.int8()), pa.array(["q"]))], ["k"])], False)
    for name in ("seed_stream_plain", "seed_file_plain", "seed_stream_zstd"):
        data = seeds[name]
        for frac in (0.3, 0.6, 0.9):
            (CORPUS / f"{name}_cut{int(frac * 100)}").write_bytes(data[:int(len(data) * frac)])


if __name__ == "__main__":
    main()
    corpus()
