# SPDX-License-Identifier: Apache-2.0
"""myriad inside Apache Spark: one model per key on a cluster, with the same C core.

Replaces the grouped-map pattern (``groupBy(keys).applyInPandas(fit_one)``: a Python
call, a pandas DataFrame and a pickle per group; one bad group fails the task)::

    import myriad.spark
    models = myriad.spark.train(df, keys=["store", "item"], label="units",
                                model="forest", params={"n_trees": 20, "max_depth": 8})
    models.write.parquet("models/")                      # or keep the DataFrame
    preds = myriad.spark.predict(new_rows, models)
    myriad.spark.save(models, "models.db")               # for `myriad predict` and serve

How: rows are repartitioned by the key columns and sorted within each partition by key
and by their original position, and ``mapInArrow`` streams each partition's Arrow
batches through the C core. A group may span any number of batches; rows are trained a
chunk at a time (about ``chunk_rows`` rows, cut at a key boundary), so a task holds one
chunk and its largest group, not its whole partition. A group that cannot be trained is
an error row (``status``, ``error``), never a failed task.

Rows of a group reach the C core in their order in ``df`` (a column of
``monotonically_increasing_id`` taken before the shuffle), so the models are
byte-identical to ``myriad train`` and :func:`myriad.train` on the same rows and seed.

The executors need the ``myriad`` package (``pip install`` it into their Python, or ship
the wheel with ``--py-files``/``spark.archives``); see docs/spark.md.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import pyarrow as pa

ROW_COLUMN = "_myriad_row"
KIND_COLUMN = "_myriad_kind"
RESULT_COLUMNS = ("model", "n_rows", "metrics", "status", "error", "features")
DEFAULT_CHUNK_ROWS = 1_000_000

__all__ = ["train", "predict", "save"]


def _keys(keys: Union[str, Sequence[str]]) -> list:
    return [keys] if isinstance(keys, str) else list(keys)


def _numeric(dtype) -> bool:
    from pyspark.sql import types as T
    return isinstance(dtype, (T.ByteType, T.ShortType, T.IntegerType, T.LongType,
                              T.FloatType, T.DoubleType, T.DecimalType, T.BooleanType))


def _default_parallelism(df) -> int:
    try:
        return max(1, df.sparkSession.sparkContext.defaultParallelism)
    except Exception:  # noqa: BLE001 - Spark Connect has no SparkContext
        return int(df.sparkSession.conf.get("spark.sql.shuffle.partitions", "200"))


def _cut(table: pa.Table, keys: list) -> int:
    """Rows of table before its last key's first row: complete groups (the rows are
    sorted by key, so only the last key may go on in the next batch)."""
    import pyarrow.compute as pc
    n = table.num_rows
    same = None
    for k in keys:
        col = table.column(k)
        last = col[n - 1]
        eq = pc.fill_null(pc.equal(col, last), False) if last.is_valid else pc.is_null(col)
        same = eq if same is None else pc.and_(same, eq)
    differs = pc.invert(same).to_numpy(zero_copy_only=False)
    idx = differs.nonzero()[0]
    return int(idx[-1]) + 1 if len(idx) else 0


def _chunks(batches: Iterator[pa.RecordBatch], keys: list,
            chunk_rows: int) -> Iterator[pa.Table]:
    """Tables of whole groups, each of at least chunk_rows rows (but the last)."""
    pending, n = [], 0
    for b in batches:
        if b.num_rows == 0:
            continue
        pending.append(b)
        n += b.num_rows
        if n < chunk_rows:
            continue
        table = pa.Table.from_batches(pending)
        cut = _cut(table, keys)
        if cut == 0:  # one group so far: keep reading
            continue
        yield table.slice(0, cut)
        rest = table.slice(cut)
        pending, n = rest.to_batches(), rest.num_rows
    if n:
        yield pa.Table.from_batches(pending)


def _arrow_type(column: str) -> pa.DataType:
    """Arrow type of a models table column: keys and the rest are text."""
    return {"model": pa.binary(), "n_rows": pa.int64()}.get(column, pa.string())


def _arrow_result_schema(keys: list) -> pa.Schema:
    return pa.schema([pa.field(c, _arrow_type(c)) for c in keys + list(RESULT_COLUMNS)])


def _result_schema(keys: list):
    """The Spark schema of train's output, the same as _arrow_result_schema."""
    from pyspark.sql import types as T
    spark_type = {pa.binary(): T.BinaryType(), pa.int64(): T.LongType(),
                  pa.string(): T.StringType()}
    return T.StructType([T.StructField(f.name, spark_type[f.type])
                         for f in _arrow_result_schema(keys)])


def train(df, keys: Union[str, Sequence[str]], label: Optional[str] = None,
          features: Optional[Sequence[str]] = None, model: str = "linear",
          params: Optional[Union[str, Mapping[str, Any]]] = None, seed: int = 0,
          num_partitions: Optional[int] = None, holdout: float = 0.0, min_rows: int = 0,
          threads_per_task: int = 1, chunk_rows: int = DEFAULT_CHUNK_ROWS):
    """Train one model per distinct key of a Spark DataFrame.

    Args:
        df: the rows: key columns, the label and the features.
        keys, label, features, model, params, seed, holdout, min_rows: as
            :func:`myriad.train`. ``features`` defaults to every numeric column that is
            neither a key nor the label, in ``df``'s column order.
        num_partitions: partitions the rows are hashed into by key (default: the
            context's default parallelism).
        threads_per_task: C threads per Spark task (Spark already runs one task per
            core; raise it when tasks get several cores, ``spark.task.cpus``).
        chunk_rows: rows a task trains at a time (cut at a key boundary).

    Returns:
        A DataFrame of one row per key: the key columns (as text, as myriad stores
        them), ``model`` (binary blob), ``n_rows``, ``metrics`` (JSON), ``status``
        ("trained" or why not), ``error`` and ``features`` (JSON list).
    """
    from pyspark.sql import functions as F
    import myriad
    keys = _keys(keys)
    if label is None:
        raise ValueError("train needs label=")
    cols = df.columns
    for c in keys + [label] + list(features or []):
        if c not in cols:
            raise ValueError(f"no column {c!r} in the DataFrame (columns: {cols})")
    if features is None:
        features = [f.name for f in df.schema.fields
                    if f.name not in keys and f.name != label and _numeric(f.dataType)]
        if not features:
            raise ValueError("no numeric feature columns besides the keys and the label")
    features = list(features)
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    n = num_partitions or _default_parallelism(df)
    params_s = myriad._params(params)
    rows = (df.withColumn(ROW_COLUMN, F.monotonically_increasing_id())
              .repartition(n, *keys)
              .sortWithinPartitions(*keys, ROW_COLUMN)
              .select(*keys, label, *features))
    out_schema = _arrow_result_schema(keys)

    def fit(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import myriad as m
        for chunk in _chunks(batches, keys, chunk_rows):
            try:
                res = m.train(chunk, keys=keys, label=label, features=features,
                              model=model, params=params_s, threads=threads_per_task,
                              seed=seed, holdout=holdout, min_rows=min_rows)
            except m.MyriadError as e:
                if getattr(e, "status", "") == "MYR_ENODATA":
                    continue  # every row of the chunk was skipped: no key to report
                raise
            yield from res.select(out_schema.names).cast(out_schema).to_batches()

    return rows.mapInArrow(fit, _result_schema(keys))


def predict(df, models_df, keys: Optional[Union[str, Sequence[str]]] = None,
            num_partitions: Optional[int] = None, threads_per_task: int = 1,
            chunk_rows: int = DEFAULT_CHUNK_ROWS):
    """Score every row of ``df`` with the model of its key from ``models_df`` (as
    :func:`train` returns it).

    Model rows and data rows are hashed together by key and sorted so that each key's
    model comes just before its rows; each chunk is scored by the C core from its own
    models, so no task holds more than a chunk of rows and their models.

    Returns:
        A DataFrame of one row per input row: the key columns (text), ``row`` (the
        row's ``monotonically_increasing_id`` in ``df``, to join back), ``prediction``
        (null when none), ``probabilities`` (classifiers: "class:p;...") and
        ``reason`` (why there is no prediction: no_model, missing_feature ...).
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    import myriad
    model_cols = [c for c in models_df.columns if c not in RESULT_COLUMNS]
    keys = _keys(keys) if keys is not None else model_cols
    for k in keys:
        if k not in df.columns:
            raise ValueError(f"no key column {k!r} in the DataFrame (columns: {df.columns})")
    n = num_partitions or _default_parallelism(df)
    data = (df.withColumn(ROW_COLUMN, F.monotonically_increasing_id())
              .withColumn(KIND_COLUMN, F.lit(1)))
    for k in keys:
        data = data.withColumn(k, F.col(k).cast("string"))
    mods = (models_df.where(F.col("model").isNotNull())
                     .select(*keys, "model", "features")
                     .withColumn(ROW_COLUMN, F.lit(-1).cast("long"))
                     .withColumn(KIND_COLUMN, F.lit(0)))
    rows = (data.unionByName(mods, allowMissingColumns=True)
                .repartition(n, *keys)
                .sortWithinPartitions(*keys, KIND_COLUMN, ROW_COLUMN))
    # probabilities is always a column: a classifier may be among the models
    schema = T.StructType(
        [T.StructField(k, T.StringType()) for k in keys] +
        [T.StructField("row", T.LongType()), T.StructField("prediction", T.DoubleType()),
         T.StructField("probabilities", T.StringType()),
         T.StructField("reason", T.StringType())])
    data_cols = [c for c in df.columns if c not in keys]

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc
        import myriad as m
        for chunk in _chunks(batches, keys, chunk_rows):
            kind = chunk.column(KIND_COLUMN)
            models = chunk.filter(pc.equal(kind, 0)).select(keys + ["model", "features"])
            rows_t = chunk.filter(pc.equal(kind, 1))
            if rows_t.num_rows == 0:
                continue
            ids = rows_t.column(ROW_COLUMN)
            inputs = rows_t.select(keys + data_cols)
            if models.num_rows == 0:
                out = pa.table({**{k: inputs.column(k) for k in keys},
                                "prediction": pa.nulls(inputs.num_rows, pa.float64()),
                                "probabilities": pa.nulls(inputs.num_rows, pa.string()),
                                "reason": pa.array(["no_model"] * inputs.num_rows)})
            else:
                out = m.predict(inputs, models=models, threads=threads_per_task)
            cols = {k: out.column(k).cast(pa.string()) for k in keys}
            cols["row"] = ids
            cols["prediction"] = out.column("prediction")
            cols["probabilities"] = (out.column("probabilities")
                                     if "probabilities" in out.column_names
                                     else pa.nulls(out.num_rows, pa.string()))
            cols["reason"] = out.column("reason")
            yield from pa.table(cols).to_batches()

    return rows.mapInArrow(score, schema)


def save(models_df, store, source: str = "spark", seed: int = 0) -> dict:
    """Bring models trained by :func:`train` into a local store (one published run),
    for ``myriad predict``, ``myriad models`` and serving. Streams the DataFrame to the
    driver batch by batch (``toLocalIterator``), so the driver holds one partition at a
    time, not every model. Returns :func:`myriad.import_models`'s summary."""
    import myriad
    cols = [c for c in models_df.columns if c not in RESULT_COLUMNS] + \
        [c for c in RESULT_COLUMNS if c in models_df.columns]
    ordered = models_df.select(*cols)

    def batches():
        rows = []
        for r in ordered.toLocalIterator(prefetchPartitions=True):
            rows.append(r)
            if len(rows) == 4096:
                yield _rows_to_batch(rows, cols)
                rows = []
        if rows:
            yield _rows_to_batch(rows, cols)

    first = _rows_to_batch([], cols)
    reader = pa.RecordBatchReader.from_batches(first.schema, batches())
    return myriad.import_models(reader, store, source=source, seed=seed)


def _rows_to_batch(rows, cols) -> pa.RecordBatch:
    arrays = [pa.array([r[i] for r in rows], type=_arrow_type(c))
              for i, c in enumerate(cols)]
    return pa.RecordBatch.from_arrays(arrays, names=cols)
